//! Agent configuration, layered as IPA's: built-in defaults < kernel command line <
//! `parameters.txt` on virtual media < configuration files < command-line flags.

pub mod cmdline;
pub mod early;
pub mod files;
pub mod ini;
pub mod lookup;
pub mod options;
pub mod vmedia;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use crate::media::Notes;

pub use self::cmdline::KernelParams;
pub use self::early::EarlyLog;
pub use self::files::ConfValues;

/// Default agent API port (IPA's).
pub const DEFAULT_PORT: u16 = 9999;

/// How the agent performs power actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerMode {
    /// Really call `poweroff`/`reboot` (only inside a ramdisk; see `power`).
    System,
    /// Append the requested action to a file and do nothing else (tests, dry runs).
    Record(PathBuf),
}

/// Command-line flags. Every flag overrides the matching kernel parameter.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ironic-agent",
    version,
    about = "Bare-metal deploy agent, wire-compatible with ironic-python-agent"
)]
pub struct Flags {
    /// Ironic API URL(s), comma separated (kernel: ipa-api-url).
    #[arg(long, value_name = "URL[,URL]")]
    pub api_url: Option<String>,
    /// Inspection callback URL(s) (kernel: ipa-inspection-callback-url).
    #[arg(long, value_name = "URL")]
    pub inspection_callback_url: Option<String>,
    /// Address the REST API listens on (kernel: ipa-listen-host/ipa-listen-port).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Host put in the callback URL (kernel: ipa-advertise-host); default: the source address
    /// of the route towards the conductor.
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// Port put in the callback URL (kernel: ipa-advertise-port).
    #[arg(long)]
    pub advertise_port: Option<u16>,
    /// Node UUID sent with lookup (normally learnt from inspection).
    #[arg(long)]
    pub node_uuid: Option<String>,
    /// File holding the kernel command line.
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// A device the agent may write to (repeatable). When set, nothing else is ever opened for
    /// writing, and loop devices become eligible install targets.
    #[arg(long = "allow-device", value_name = "PATH")]
    pub allow_device: Vec<PathBuf>,
    /// Serve plain HTTP even when the Ironic API supports auto-TLS.
    #[arg(long)]
    pub no_auto_tls: bool,
    /// Do not verify TLS certificates of outbound connections (kernel: ipa-insecure).
    #[arg(long)]
    pub insecure: bool,
    /// CA bundle for outbound TLS.
    #[arg(long, value_name = "PEM")]
    pub cafile: Option<PathBuf>,
    /// Directory of executable hardware-manager plug-ins.
    #[arg(long, default_value = hardware_managers::plugin::DEFAULT_PLUGIN_DIR)]
    pub hardware_managers_dir: PathBuf,
    /// Power actions: `system` (poweroff/reboot, ramdisk only) or `record:PATH`.
    #[arg(long, default_value = "system", value_parser = parse_power_mode)]
    pub power: PowerMode,
    /// How `system.lockdown` takes the NICs down: `system` (`ip link set NIC down`, ramdisk
    /// only) or `record:PATH` (tests, dry runs).
    #[arg(long, default_value = "system", value_parser = parse_network_mode)]
    pub network: NetworkMode,
    /// Root directory under which `rescue.finalize_rescue` writes
    /// `etc/ipa-rescue-config/ipa-rescue-password` and `etc/.rescued` (tests).
    #[arg(long, default_value = "/", hide = true, value_name = "DIR")]
    pub rescue_root: PathBuf,
    /// Debug logging (kernel: ipa-debug).
    #[arg(long)]
    pub debug: bool,
    /// Let `install_bootloader` run the image's GRUB in a chroot (partition images); the
    /// conductor can also turn it on at lookup (kernel: ipa-enable-bios-bootloader-install).
    #[arg(long)]
    pub enable_bios_bootloader_install: bool,
    /// Bootloader failures do not fail `install_bootloader` unless the conductor asks
    /// otherwise (kernel: ipa-ignore-bootloader-failure).
    #[arg(long)]
    pub ignore_bootloader_failure: bool,
    /// An IPA configuration file (repeatable; later files win). Replaces the default file
    /// (`~/ironic-python-agent.conf` or `/etc/ironic-python-agent.conf`).
    #[arg(long, value_name = "PATH")]
    pub config_file: Vec<PathBuf>,
    /// A directory of IPA configuration files, its `*.conf` read in name order (repeatable).
    /// Replaces the default directories (`ironic-python-agent.conf.d` in `~` or `/etc`, and
    /// `/etc/ironic-python-agent.d`).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
    /// Root of the default configuration paths and of where virtual-media configuration is
    /// copied to (tests; `$HOME` is not searched unless this is `/`).
    #[arg(long, default_value = "/", hide = true, value_name = "DIR")]
    pub etc_root: PathBuf,
    /// The sysfs root scanned for virtual media (tests).
    #[arg(long, default_value = "/sys", hide = true, value_name = "DIR")]
    pub sys_root: PathBuf,
    /// The device directory scanned for virtual media (tests).
    #[arg(long, default_value = "/dev", hide = true, value_name = "DIR")]
    pub dev_root: PathBuf,
    /// Loop devices may be virtual media (tests).
    #[arg(long, hide = true)]
    pub vmedia_allow_loop: bool,
    /// A one-shot task instead of the agent.
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
}

/// One-shot tasks of the agent binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AgentCommand {
    /// Configures what DHCP cannot, before the DHCP clients and the agent start: a config
    /// drive's or virtual-media ISO's network_data.json (bonds, VLANs, static addresses,
    /// routes, DNS) and the VLANs of ipa-enable-vlan-interfaces. Prints `dhcp IFACE` for each
    /// interface left to DHCP; logs go to stderr.
    NetworkSetup(NetworkSetupArgs),
}

/// Options of `network-setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkSetupArgs {
    /// Record the configuration steps to this file (JSON lines) instead of applying them.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// The state file written at the end.
    #[arg(long, value_name = "PATH", default_value = crate::netsetup::DEFAULT_STATE)]
    pub state: PathBuf,
}

fn parse_power_mode(s: &str) -> Result<PowerMode, String> {
    match s {
        "system" => Ok(PowerMode::System),
        _ => match s.strip_prefix("record:") {
            Some(p) if !p.is_empty() => Ok(PowerMode::Record(PathBuf::from(p))),
            _ => Err(format!("expected `system` or `record:PATH`, got `{s}`")),
        },
    }
}

/// How the agent takes its network interfaces down (`system.lockdown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Really run `ip link set NIC down` (only inside a ramdisk; see `network`).
    System,
    /// Append what would be done to a file and touch no interface (tests, dry runs).
    Record(PathBuf),
}

fn parse_network_mode(s: &str) -> Result<NetworkMode, String> {
    match parse_power_mode(s)? {
        PowerMode::System => Ok(NetworkMode::System),
        PowerMode::Record(p) => Ok(NetworkMode::Record(p)),
    }
}

/// The agent's effective configuration. `Debug` never shows the agent token.
#[derive(Clone)]
pub struct Config {
    /// Ironic API URLs (trailing `/` removed), in preference order.
    pub api_urls: Vec<String>,
    /// Inspection callback URLs.
    pub inspection_callback_urls: Vec<String>,
    /// Inspection collectors (`default`, `logs`).
    pub inspection_collectors: Vec<String>,
    /// Whether collectors were set explicitly (IPA then inspects even without a callback URL).
    pub inspection_collectors_explicit: bool,
    /// Seconds to wait for an IPv4 address on the PXE NIC before inspecting (0 = don't wait).
    pub inspection_dhcp_wait_timeout: Duration,
    /// API listen address.
    pub listen: SocketAddr,
    /// Whether `listen` was chosen explicitly (no IPv4 fall-back then).
    pub listen_explicit: bool,
    /// Advertised host, if fixed.
    pub advertise_host: Option<String>,
    /// Advertised port when set explicitly; otherwise the port the API is bound to.
    pub advertise_port: Option<u16>,
    /// `http` or `https` when fixed by `ipa-advertise-protocol`.
    pub advertise_protocol: Option<String>,
    /// Node UUID to send with lookup.
    pub node_uuid: Option<String>,
    /// Pre-generated agent token (`ipa-agent-token`).
    pub agent_token: Option<String>,
    /// `ipa-global-request-id`, sent as `X-OpenStack-Request-ID`.
    pub global_request_id: Option<String>,
    /// Raw `BOOTIF`.
    pub bootif: Option<String>,
    /// Disk-guard allow-list.
    pub allow_devices: Vec<PathBuf>,
    /// Auto-TLS enabled.
    pub auto_tls: bool,
    /// Skip outbound TLS verification.
    pub insecure: bool,
    /// Outbound CA bundle.
    pub cafile: Option<PathBuf>,
    /// Pinned Ironic API version (`ipa-ironic-api-version`).
    pub ironic_api_version: Option<(u32, u32)>,
    /// Total lookup retry budget.
    pub lookup_timeout: Duration,
    /// Initial lookup back-off.
    pub lookup_interval: Duration,
    /// Timeout of Ironic API and inspection calls.
    pub http_request_timeout: Duration,
    /// Sleep before anything (`ipa-hardware-initialization-delay`).
    pub hardware_initialization_delay: Duration,
    /// NIC whose IPv4 is advertised (`ipa-network-interface`).
    pub network_interface: Option<String>,
    /// Plug-in manager directory.
    pub hardware_managers_dir: PathBuf,
    /// Power action mode.
    pub power: PowerMode,
    /// How `system.lockdown` takes the NICs down.
    pub network: NetworkMode,
    /// Root of the files `rescue.finalize_rescue` writes (`/` in a ramdisk).
    pub rescue_root: PathBuf,
    /// Debug logging.
    pub debug: bool,
    /// `enable_bios_bootloader_install` (default off: GRUB from the image runs as root in the
    /// ramdisk; CVE-2026-43003).
    pub enable_bios_bootloader_install: bool,
    /// `ignore_bootloader_failure`: `None` when not configured.
    pub ignore_bootloader_failure: Option<bool>,
    /// `ipa-api-url=mdns`: the API URL is to be discovered by mDNS (`api_urls` is empty).
    pub api_url_mdns: bool,
    /// Client certificate presented to the Ironic API (`certfile`; only with `keyfile`).
    pub certfile: Option<PathBuf>,
    /// Its private key (`keyfile`).
    pub keyfile: Option<PathBuf>,
    /// NTP servers (`ntp_server`, comma separated).
    pub ntp_server: Vec<String>,
    /// Fail when the clock cannot be synchronised (`fail_if_clock_not_set`).
    pub fail_if_clock_not_set: bool,
    /// Checks for a suitable disk before giving up (`disk_wait_attempts`).
    pub disk_wait_attempts: u32,
    /// Pause between those checks (`disk_wait_delay`).
    pub disk_wait_delay: Duration,
    /// Attempts at finding the IPv4 address to advertise (`ip_lookup_attempts`).
    pub ip_lookup_attempts: u32,
    /// Pause between them (`ip_lookup_sleep`, kernel: ipa-ip-lookup-timeout).
    pub ip_lookup_sleep: Duration,
    /// Wait for DHCP on every NIC, not only the PXE one (`inspection_dhcp_all_interfaces`).
    pub inspection_dhcp_all_interfaces: bool,
    /// How long to listen for LLDP (`lldp_timeout`).
    pub lldp_timeout: Duration,
    /// Collect LLDP for the inventory (`collect_lldp`).
    pub collect_lldp: bool,
    /// VLAN interfaces to bring up (`enable_vlan_interfaces`), raw; `None` when empty.
    pub enable_vlan_interfaces: Option<String>,
    /// Booted with `boot_method=vmedia`.
    pub boot_method_vmedia: bool,
    /// What the configuration was read from, in order (for the logs).
    pub sources: Vec<String>,
    /// Kernel parameters, for anything read directly: the command line with `parameters.txt`
    /// and the configuration files' values of options that have a kernel parameter merged over
    /// it.
    pub kernel: KernelParams,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field is named so that a new one cannot be printed by accident: list it here,
        // redacted if it is a secret.
        let Config {
            api_urls,
            inspection_callback_urls,
            inspection_collectors,
            inspection_collectors_explicit,
            inspection_dhcp_wait_timeout,
            listen,
            listen_explicit,
            advertise_host,
            advertise_port,
            advertise_protocol,
            node_uuid,
            agent_token,
            global_request_id,
            bootif,
            allow_devices,
            auto_tls,
            insecure,
            cafile,
            ironic_api_version,
            lookup_timeout,
            lookup_interval,
            http_request_timeout,
            hardware_initialization_delay,
            network_interface,
            hardware_managers_dir,
            power,
            network,
            rescue_root,
            debug,
            enable_bios_bootloader_install,
            ignore_bootloader_failure,
            api_url_mdns,
            certfile,
            keyfile,
            ntp_server,
            fail_if_clock_not_set,
            disk_wait_attempts,
            disk_wait_delay,
            ip_lookup_attempts,
            ip_lookup_sleep,
            inspection_dhcp_all_interfaces,
            lldp_timeout,
            collect_lldp,
            enable_vlan_interfaces,
            boot_method_vmedia,
            sources,
            kernel,
        } = self;
        f.debug_struct("Config")
            .field("api_urls", api_urls)
            .field("inspection_callback_urls", inspection_callback_urls)
            .field("inspection_collectors", inspection_collectors)
            .field(
                "inspection_collectors_explicit",
                inspection_collectors_explicit,
            )
            .field("inspection_dhcp_wait_timeout", inspection_dhcp_wait_timeout)
            .field("listen", listen)
            .field("listen_explicit", listen_explicit)
            .field("advertise_host", advertise_host)
            .field("advertise_port", advertise_port)
            .field("advertise_protocol", advertise_protocol)
            .field("node_uuid", node_uuid)
            .field("agent_token", &agent_token.as_ref().map(|_| "***"))
            .field("global_request_id", global_request_id)
            .field("bootif", bootif)
            .field("allow_devices", allow_devices)
            .field("auto_tls", auto_tls)
            .field("insecure", insecure)
            .field("cafile", cafile)
            .field("ironic_api_version", ironic_api_version)
            .field("lookup_timeout", lookup_timeout)
            .field("lookup_interval", lookup_interval)
            .field("http_request_timeout", http_request_timeout)
            .field(
                "hardware_initialization_delay",
                hardware_initialization_delay,
            )
            .field("network_interface", network_interface)
            .field("hardware_managers_dir", hardware_managers_dir)
            .field("power", power)
            .field("network", network)
            .field("rescue_root", rescue_root)
            .field("debug", debug)
            .field(
                "enable_bios_bootloader_install",
                enable_bios_bootloader_install,
            )
            .field("ignore_bootloader_failure", ignore_bootloader_failure)
            .field("api_url_mdns", api_url_mdns)
            .field("certfile", certfile)
            .field("keyfile", keyfile)
            .field("ntp_server", ntp_server)
            .field("fail_if_clock_not_set", fail_if_clock_not_set)
            .field("disk_wait_attempts", disk_wait_attempts)
            .field("disk_wait_delay", disk_wait_delay)
            .field("ip_lookup_attempts", ip_lookup_attempts)
            .field("ip_lookup_sleep", ip_lookup_sleep)
            .field(
                "inspection_dhcp_all_interfaces",
                inspection_dhcp_all_interfaces,
            )
            .field("lldp_timeout", lldp_timeout)
            .field("collect_lldp", collect_lldp)
            .field("enable_vlan_interfaces", enable_vlan_interfaces)
            .field("boot_method_vmedia", boot_method_vmedia)
            .field("sources", sources)
            .field("kernel", kernel)
            .finish()
    }
}

impl Config {
    /// Loads the configuration as IPA does: the kernel command line named by `flags.cmdline`;
    /// with `boot_method=vmedia`, `parameters.txt` of the virtual-media floppy over it and the
    /// configuration copied from the virtual-media ISO or config drive; the configuration files
    /// ([`files`]); the flags over everything. What was read from where, and anything ignored,
    /// goes to `early` (logged once the logger exists).
    pub fn load(flags: &Flags, early: &mut EarlyLog) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(&flags.cmdline)
            .with_context(|| format!("reading kernel command line {}", flags.cmdline.display()))?;
        let mut kernel = KernelParams::parse(&text);
        let mut sources = vec![format!("kernel command line {}", flags.cmdline.display())];
        if vmedia::booted_from_vmedia(&kernel) {
            let roots = crate::media::BlockRoots {
                sys: flags.sys_root.clone(),
                dev: flags.dev_root.clone(),
                allow_loop: flags.vmedia_allow_loop,
            };
            // Without an API URL on the command line the parameters floppy is where it must
            // come from: wait for that one (USB storage appears late); else for any.
            let floppy = kernel.get("ipa-api-url").is_none();
            vmedia::wait_for_devices(&roots, floppy, vmedia::DEVICE_WAIT, early);
            if let Some((device, params)) = vmedia::read_params(&roots, early)? {
                kernel.merge(&params);
                sources.push(format!("{} on {}", vmedia::PARAMS_FILE, device.display()));
            }
            if let Some((device, copied)) = vmedia::copy_config(&roots, &flags.etc_root, early) {
                sources.push(format!(
                    "{} file(s) copied from {}",
                    copied.len(),
                    device.display()
                ));
            }
        } else {
            early.note(
                tracing::Level::DEBUG,
                "not booted with boot_method=vmedia: virtual media not looked for".into(),
            );
        }
        let search = files::SearchRoots {
            root: flags.etc_root.clone(),
            home: (flags.etc_root == Path::new("/"))
                .then(|| std::env::var_os("HOME").map(PathBuf::from))
                .flatten(),
        };
        let paths = files::files_to_read(&search, &flags.config_file, &flags.config_dir)?;
        let conf = files::read_files(&paths, early)?;
        sources.extend(paths.iter().map(|p| p.display().to_string()));
        let mut config = Self::from_sources(flags, kernel, &conf)?;
        config.sources = sources;
        if config.certfile.is_some() != config.keyfile.is_some() {
            early.note(
                tracing::Level::WARN,
                "Only one of 'keyfile' and 'certfile' options is defined in config file. Its \
                 value will be ignored."
                    .into(),
            );
        }
        for s in &config.sources {
            early.note(tracing::Level::INFO, format!("configuration read from {s}"));
        }
        Ok(config)
    }

    /// Builds the configuration from parsed kernel parameters and flags (flags win).
    pub fn from_parts(flags: &Flags, kernel: KernelParams) -> anyhow::Result<Self> {
        Self::from_sources(flags, kernel, &ConfValues::default())
    }

    /// Builds the configuration from kernel parameters (with `parameters.txt` already merged),
    /// configuration-file values (over the kernel parameters) and flags (over both).
    pub fn from_sources(
        flags: &Flags,
        mut kernel: KernelParams,
        conf: &ConfValues,
    ) -> anyhow::Result<Self> {
        // `ipa-debug` overrides the files' `debug`, as IPA's set_override does.
        let kernel_debug = kernel.get_bool("ipa-debug");
        conf.merge_into(&mut kernel);
        let k = &kernel;
        let api_url_raw = flags.api_url.as_deref().or(k.get("ipa-api-url"));
        let mut api_urls = split_urls(api_url_raw);
        let api_url_mdns = api_urls.iter().any(|u| u == "mdns");
        if api_url_mdns {
            if api_urls.len() > 1 {
                bail!("ipa-api-url: `mdns` cannot be combined with URLs");
            }
            api_urls.clear();
        }
        for url in &api_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("invalid API URL `{url}`: must start with http:// or https://");
            }
        }
        let inspection_callback_urls = split_urls(
            flags
                .inspection_callback_url
                .as_deref()
                .or(k.get("ipa-inspection-callback-url")),
        );
        let collectors_raw = k.get("ipa-inspection-collectors");
        let inspection_collectors = match collectors_raw {
            Some(c) if !c.trim().is_empty() => c
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            _ => vec!["default".to_string(), "logs".to_string()],
        };
        let (listen, listen_explicit) = match &flags.listen {
            Some(l) => (parse_listen(l)?, true),
            None => {
                let host = k.get("ipa-listen-host");
                let port = match k.get("ipa-listen-port") {
                    Some(p) => p.parse::<u16>().context("ipa-listen-port")?,
                    None => DEFAULT_PORT,
                };
                let host = host.unwrap_or("::");
                (
                    parse_listen(&join_host_port(host, port))?,
                    k.get("ipa-listen-host").is_some(),
                )
            }
        };
        let advertise_port = match flags.advertise_port {
            Some(p) => Some(p),
            None => match k.get("ipa-advertise-port") {
                Some(p) => Some(p.parse().context("ipa-advertise-port")?),
                None => None,
            },
        };
        let advertise_protocol = match k.get("ipa-advertise-protocol") {
            None => None,
            Some(p @ ("http" | "https")) => Some(p.to_string()),
            Some(other) => bail!("ipa-advertise-protocol must be http or https, got `{other}`"),
        };
        let ironic_api_version = match k.get("ipa-ironic-api-version") {
            Some(v) => {
                Some(parse_version(v).with_context(|| format!("ipa-ironic-api-version={v}"))?)
            }
            None => None,
        };
        let secs = |key: &str, default: u64| -> anyhow::Result<Duration> {
            match k.get(key) {
                // `try_from`: a value past Duration's range (`1e300`) is an error, not a panic
                // (found by fuzz/kernel_cmdline). `abs` maps -0.0 to 0.
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| *f >= 0.0)
                    .and_then(|f| Duration::try_from_secs_f64(f.abs()).ok())
                    .with_context(|| format!("{key}={v} is not a number of seconds")),
                None => Ok(Duration::from_secs(default)),
            }
        };
        let count = |key: &str, default: u32, min: u32| -> anyhow::Result<u32> {
            match k.get(key) {
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= min)
                    .with_context(|| format!("{key}={v} is not an integer of at least {min}")),
                None => Ok(default),
            }
        };
        let path = |name: &str| conf.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let certfile = path("certfile");
        let keyfile = path("keyfile");
        let ntp_server = k
            .get("ipa-ntp-server")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Config {
            api_urls,
            inspection_callback_urls,
            inspection_collectors,
            inspection_collectors_explicit: collectors_raw.is_some(),
            inspection_dhcp_wait_timeout: secs("ipa-inspection-dhcp-wait-timeout", 60)?,
            listen,
            listen_explicit,
            advertise_host: flags
                .advertise_host
                .clone()
                .or_else(|| k.get("ipa-advertise-host").map(String::from)),
            advertise_port,
            advertise_protocol,
            node_uuid: flags.node_uuid.clone(),
            agent_token: k
                .get("ipa-agent-token")
                .filter(|t| !t.is_empty())
                .map(String::from),
            global_request_id: k.get("ipa-global-request-id").map(String::from),
            bootif: k.get("BOOTIF").map(String::from),
            allow_devices: flags.allow_device.clone(),
            auto_tls: !flags.no_auto_tls && conf.get_bool("enable_auto_tls").unwrap_or(true),
            insecure: flags.insecure || k.get_bool("ipa-insecure").unwrap_or(false),
            cafile: flags.cafile.clone().or_else(|| path("cafile")),
            ironic_api_version,
            lookup_timeout: secs("ipa-lookup-timeout", 600)?,
            lookup_interval: secs("ipa-lookup-interval", 1)?,
            http_request_timeout: secs("ipa-http-request-timeout", 30)?.max(Duration::from_secs(1)),
            hardware_initialization_delay: secs("ipa-hardware-initialization-delay", 0)?,
            network_interface: k.get("ipa-network-interface").map(String::from),
            hardware_managers_dir: flags.hardware_managers_dir.clone(),
            power: flags.power.clone(),
            network: flags.network.clone(),
            rescue_root: flags.rescue_root.clone(),
            debug: flags.debug
                || kernel_debug
                    .or_else(|| conf.get_bool("debug"))
                    .unwrap_or(false),
            enable_bios_bootloader_install: flags.enable_bios_bootloader_install
                || k.get_bool("ipa-enable-bios-bootloader-install")
                    .unwrap_or(false),
            ignore_bootloader_failure: if flags.ignore_bootloader_failure {
                Some(true)
            } else {
                k.get_bool("ipa-ignore-bootloader-failure")
            },
            api_url_mdns,
            certfile,
            keyfile,
            ntp_server,
            fail_if_clock_not_set: conf.get_bool("fail_if_clock_not_set").unwrap_or(false),
            disk_wait_attempts: count("ipa-disk-wait-attempts", 10, 0)?,
            disk_wait_delay: secs("ipa-disk-wait-delay", 3)?,
            ip_lookup_attempts: count("ipa-ip-lookup-attempts", 6, 1)?,
            ip_lookup_sleep: secs("ipa-ip-lookup-timeout", 10)?,
            inspection_dhcp_all_interfaces: k
                .get_bool("ipa-inspection-dhcp-all-interfaces")
                .unwrap_or(false),
            lldp_timeout: secs("ipa-lldp-timeout", 30)?,
            collect_lldp: k.get_bool("ipa-collect-lldp").unwrap_or(false),
            enable_vlan_interfaces: k
                .get("ipa-enable-vlan-interfaces")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from),
            boot_method_vmedia: vmedia::booted_from_vmedia(k),
            sources: Vec::new(),
            kernel,
        })
    }

    /// Where inspection data goes: the callback URLs, or (when collectors were set explicitly)
    /// `<api>/v1/continue_inspection` for each API URL.
    pub fn inspection_urls(&self) -> Vec<String> {
        if !self.inspection_callback_urls.is_empty() {
            return self.inspection_callback_urls.clone();
        }
        if self.inspection_collectors_explicit {
            return self
                .api_urls
                .iter()
                .map(|u| format!("{u}/v1/continue_inspection"))
                .collect();
        }
        Vec::new()
    }
}

fn split_urls(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    s.parse::<SocketAddr>().with_context(|| {
        format!("invalid listen address `{s}` (want HOST:PORT, IPv6 as [::]:9999)")
    })
}

/// Parses an API version `x.y`.
pub fn parse_version(v: &str) -> anyhow::Result<(u32, u32)> {
    let (a, b) = v
        .trim()
        .split_once('.')
        .context("version must look like 1.68")?;
    Ok((a.parse()?, b.parse()?))
}

#[cfg(test)]
mod tests;
