//! The command line of `vswitch`.

use anyhow::{Context, bail, ensure};

use super::switch::Mode;

/// Where a port's frames come from and go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A UDP tunnel on 127.0.0.1: the switch binds `local`, sends to `remote`.
    Udp {
        /// Port the switch receives on (QEMU's `udp=` / `remote.port`).
        local: u16,
        /// Port the switch sends to (QEMU's `localaddr=` / `local.port`).
        remote: u16,
    },
    /// An existing tap device in the switch's network namespace.
    Tap(String),
}

/// One `--port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Where the frames go.
    pub endpoint: Endpoint,
    /// VLAN handling (default: access to VLAN 1).
    pub mode: Mode,
    /// The name (LLDP port id, logs).
    pub name: String,
}

/// The whole command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The ports, in order (port numbers in logs are indices here).
    pub ports: Vec<PortSpec>,
    /// VLAN of untagged frames on trunks (default: untagged frames on trunks are dropped).
    pub native_vlan: Option<u16>,
    /// VLANs announced by LLDP on trunks (empty: no LLDP).
    pub lldp: Vec<u16>,
    /// Log file.
    pub log: Option<String>,
}

/// Usage text.
pub const USAGE: &str = "usage: vswitch --port SPEC [--port SPEC ...] [--native-vlan VID] \
[--lldp VID[,VID...]] [--log FILE]
  SPEC: udp:LOCAL_PORT:REMOTE_PORT[,trunk|,access=VID][,name=NAME]
        tap:IFNAME[,trunk|,access=VID][,name=NAME]        (default access=1)";

fn vid(s: &str) -> anyhow::Result<u16> {
    let v: u16 = s.parse().with_context(|| format!("bad VLAN id {s:?}"))?;
    ensure!((1..=4094).contains(&v), "VLAN id {v} not in 1..=4094");
    Ok(v)
}

impl PortSpec {
    /// Parses one `--port` value.
    pub fn parse(spec: &str) -> anyhow::Result<PortSpec> {
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default();
        let (endpoint, default_name) = match head.split(':').collect::<Vec<_>>()[..] {
            ["udp", local, remote] => {
                let local: u16 = local.parse().context("udp LOCAL_PORT")?;
                let remote: u16 = remote.parse().context("udp REMOTE_PORT")?;
                (Endpoint::Udp { local, remote }, format!("udp{local}"))
            }
            ["tap", name] if !name.is_empty() && name.len() < 16 => {
                (Endpoint::Tap(name.to_string()), name.to_string())
            }
            _ => bail!("bad port {spec:?}\n{USAGE}"),
        };
        let mut port = PortSpec {
            endpoint,
            mode: Mode::Access(1),
            name: default_name,
        };
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "trunk" => port.mode = Mode::Trunk,
                Some(("access", v)) => port.mode = Mode::Access(vid(v)?),
                Some(("name", n)) if !n.is_empty() && n.len() <= 255 => port.name = n.into(),
                _ => bail!("bad port option {opt:?} in {spec:?}\n{USAGE}"),
            }
        }
        Ok(port)
    }
}

impl Config {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Config> {
        let mut config = Config::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = || args.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--port" => config.ports.push(PortSpec::parse(&value()?)?),
                "--native-vlan" => config.native_vlan = Some(vid(&value()?)?),
                "--lldp" => {
                    for v in value()?.split(',') {
                        config.lldp.push(vid(v)?);
                    }
                }
                "--log" => config.log = Some(value()?),
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other}\n{USAGE}"),
            }
        }
        ensure!(!config.ports.is_empty(), "no --port\n{USAGE}");
        Ok(config)
    }
}
