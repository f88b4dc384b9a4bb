//! `ironic-agent network-setup`: the network configuration DHCP cannot give, done before the
//! DHCP clients start and before lookup.
//!
//! 1. Network data: `openstack/latest/network_data.json` from a device labelled `config-2` or
//!    `vmedia_boot_iso` (Ironic's virtual-media ISO carries the node's `network_data` there),
//!    planned and applied by [`crate::netconf`]: bonds of NICs matched by MAC, VLANs, static
//!    IPv4/IPv6 addresses, routes, DNS.
//! 2. VLANs of `ipa-enable-vlan-interfaces` (or `enable_vlan_interfaces` in a configuration
//!    file): `IFACE.VLAN`, or the VLANs LLDP announces on `IFACE` / on `all` interfaces when
//!    `ipa-collect-lldp` is on, as IPA.
//! 3. The result: the interfaces left to DHCP (every NIC the network data does not configure, the
//!    VLANs of step 2, interfaces with a DHCP network), printed as `dhcp IFACE` lines for the
//!    ramdisk's init, and a state file.
//!
//! Bad or partial network data never stops the boot: what cannot be applied is logged with the
//! link or network it concerns and its interfaces fall back to DHCP.

pub mod nics;
pub mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hardware_managers::lldp;
use serde::Serialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::media::BlockRoots;
use crate::netconf::{self, NetOps, Plan, RecordingNetOps, SystemNetOps};

/// Where the state file goes by default.
pub const DEFAULT_STATE: &str = "/run/ironic-agent/network-setup.json";

/// What `network-setup` touches.
#[derive(Debug, Clone)]
pub struct Options {
    /// Record the steps to this file (JSON lines) instead of configuring anything.
    pub record: Option<PathBuf>,
    /// The state file written at the end.
    pub state: PathBuf,
    /// The root under which `etc/resolv.conf` (and `run/resolv/`) are written.
    pub root: PathBuf,
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
    /// Where labelled devices are looked for.
    pub roots: BlockRoots,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            record: None,
            state: PathBuf::from(DEFAULT_STATE),
            root: PathBuf::from("/"),
            sys: PathBuf::from("/sys"),
            roots: BlockRoots::default(),
        }
    }
}

/// What `network-setup` did (also the state file's content).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The device the network data came from.
    pub network_data_device: Option<String>,
    /// Interfaces configured statically from the network data.
    pub configured: Vec<String>,
    /// VLAN interfaces created from `ipa-enable-vlan-interfaces`.
    pub vlans: Vec<String>,
    /// Interfaces left to DHCP.
    pub dhcp: Vec<String>,
    /// What was skipped or failed, and why.
    pub warnings: Vec<String>,
}

/// Runs the network set-up with `config`'s parameters.
pub fn run(config: &Config, opts: &Options) -> Report {
    let nics = nics::physical_nics(&opts.sys);
    info!(nics = ?nics.iter().map(|n| format!("{} {}", n.name, n.mac)).collect::<Vec<_>>(), "network-setup");
    let ops: Box<dyn NetOps> = match &opts.record {
        Some(path) => Box::new(RecordingNetOps::to_file(path)),
        None => Box::new(SystemNetOps::new(&opts.root)),
    };
    let mut report = Report {
        dhcp: nics.iter().map(|n| n.name.clone()).collect(),
        ..Report::default()
    };

    if let Some(found) = source::find(&opts.roots) {
        report.network_data_device = Some(found.device.display().to_string());
        match netconf::parse(&found.text) {
            Ok(data) => {
                let plan = netconf::plan(&data, &nics);
                for w in &plan.warnings {
                    warn!(device = %found.device.display(), "network data: {w}");
                }
                report.warnings.extend(plan.warnings.iter().cloned());
                let applied = netconf::apply_plan(&plan, ops.as_ref());
                for e in &applied.errors {
                    warn!("network data: {e}");
                }
                report.warnings.extend(applied.errors.iter().cloned());
                report.configured = applied.configured.clone();
                report.dhcp = applied.dhcp.clone();
                share_resolv_conf(&plan, &opts.root);
                info!(
                    configured = ?applied.configured,
                    failed = ?applied.failed,
                    "network data applied"
                );
            }
            Err(e) => {
                let w = format!(
                    "network data on {} is not usable ({e}); DHCP on every NIC",
                    found.device.display()
                );
                warn!("{w}");
                report.warnings.push(w);
            }
        }
    } else {
        info!(
            "no network data (no device labelled config-2 or vmedia_boot_iso with {})",
            source::NETWORK_DATA
        );
    }

    if let Some(spec) = config
        .enable_vlan_interfaces
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        let lldp = lldp_vlans(config, spec, &nics);
        let vplan = netconf::plan_vlans(spec, &nics, &|name| {
            lldp.get(name).cloned().unwrap_or_default()
        });
        for w in &vplan.warnings {
            warn!("ipa-enable-vlan-interfaces: {w}");
        }
        report.warnings.extend(vplan.warnings.iter().cloned());
        let plan = Plan {
            steps: vplan.steps.clone(),
            dhcp: vplan.created.clone(),
            static_ifaces: Vec::new(),
            warnings: Vec::new(),
        };
        let applied = netconf::apply_plan(&plan, ops.as_ref());
        for e in &applied.errors {
            warn!("ipa-enable-vlan-interfaces: {e}");
        }
        report.warnings.extend(applied.errors.iter().cloned());
        for name in vplan.created {
            if applied.failed.contains(&name) {
                continue;
            }
            info!(interface = %name, "VLAN interface created");
            report.vlans.push(name.clone());
            if !report.dhcp.contains(&name) {
                report.dhcp.push(name);
            }
        }
    }

    if opts.record.is_none() {
        // Only interfaces that exist can get a DHCP client.
        let class = opts.sys.join("class/net");
        report.dhcp.retain(|i| class.join(i).exists());
    }
    if let Err(e) = write_state(&opts.state, &report) {
        warn!(path = %opts.state.display(), error = %e, "cannot write the network-setup state");
    }
    report
}

/// The VLAN ids LLDP reports per interface, when `spec` asks for LLDP and it is collected.
fn lldp_vlans(
    config: &Config,
    spec: &str,
    nics: &[netconf::ObservedNic],
) -> HashMap<String, Vec<u16>> {
    if !netconf::needs_lldp(spec) {
        return HashMap::new();
    }
    if !config.collect_lldp {
        warn!(
            "ipa-enable-vlan-interfaces={spec} asks for the VLANs LLDP announces, but LLDP is not \
             collected: set ipa-collect-lldp=1 (as IPA)"
        );
        return HashMap::new();
    }
    let names: Vec<String> = nics.iter().map(|n| n.name.clone()).collect();
    info!(interfaces = ?names, timeout = ?config.lldp_timeout, "listening for LLDP");
    lldp::capture(&names, config.lldp_timeout)
        .into_iter()
        .map(|(name, tlvs)| {
            let ids = lldp::vlan_ids(&tlvs);
            info!(interface = %name, vlans = ?ids, "LLDP");
            (name, ids)
        })
        .collect()
}

/// In the minimal ramdisk, the DHCP clients rebuild `/etc/resolv.conf` from `/run/resolv/*`;
/// the network data's name servers go there too so that a lease elsewhere keeps them.
fn share_resolv_conf(plan: &Plan, root: &Path) {
    let dir = root.join("run/resolv");
    if !dir.is_dir() {
        return;
    }
    for step in &plan.steps {
        if let netconf::NetStep::WriteResolvConf {
            nameservers,
            search,
        } = step
        {
            let text = netconf::apply::resolv_conf_text(nameservers, search);
            if let Err(e) = std::fs::write(dir.join("network-data"), text) {
                warn!(error = %e, "cannot write run/resolv/network-data");
            }
        }
    }
}

fn write_state(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(report)?)?;
    Ok(())
}
