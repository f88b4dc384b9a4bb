//! Carrying out a [`Plan`]: the [`NetOps`] trait, its real implementation [`SystemNetOps`]
//! (`ip`, the bonding sysfs files, `resolv.conf`), the [`RecordingNetOps`] that only writes
//! down what it would do, and [`apply_plan`].

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tracing::{info, warn};

use super::plan::Plan;
use super::step::NetStep;
use crate::network::SYS_CLASS_NET;
use crate::tools::{Invocation, ToolError};

/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum NetOpError {
    /// `ip` could not run or failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A file (sysfs, `resolv.conf`, the recording) could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The step cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
}

/// Carries out one step.
pub trait NetOps: Send + Sync {
    /// Carries out `step`.
    ///
    /// # Errors
    /// Whatever prevented it; [`apply_plan`] then skips the steps that depend on it.
    fn apply(&self, step: &NetStep) -> Result<(), NetOpError>;
}

/// Configures the machine: `ip` through the agent's [`Invocation`], bonds through
/// `/sys/class/net/bonding_masters` and `<bond>/bonding/*`, `resolv.conf` under a root directory.
#[derive(Debug, Clone)]
pub struct SystemNetOps {
    root: PathBuf,
    sys_class_net: PathBuf,
    ip: String,
}

impl SystemNetOps {
    /// Configures this machine, writing `etc/resolv.conf` under `root` (`/` normally).
    pub fn new(root: &Path) -> Self {
        Self::with_paths(root, Path::new(SYS_CLASS_NET), "ip")
    }

    /// As [`SystemNetOps::new`] with another `/sys/class/net` and `ip` program (for tests).
    pub fn with_paths(root: &Path, sys_class_net: &Path, ip: &str) -> Self {
        SystemNetOps {
            root: root.to_path_buf(),
            sys_class_net: sys_class_net.to_path_buf(),
            ip: ip.to_string(),
        }
    }

    fn ip(&self, args: &[String]) -> Result<(), NetOpError> {
        Invocation::new(&self.ip, IP_TIMEOUT)
            .args(args)
            .keep_stderr_tail(crate::tools::STDERR_IN_ERRORS)
            .run_ok()?;
        Ok(())
    }

    /// Writes `value` into the existing (sysfs) file `path`, as `echo value > path` does.
    fn write_sys(path: &Path, value: &str) -> Result<(), NetOpError> {
        let io = |source| NetOpError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        f.write_all(value.as_bytes()).map_err(io)
    }

    fn create_bond(
        &self,
        name: &str,
        mode: &str,
        options: &[(String, String)],
        members: &[String],
    ) -> Result<(), NetOpError> {
        let bond_dir = self.sys_class_net.join(name);
        let masters = self.sys_class_net.join("bonding_masters");
        if !masters.exists() {
            // Loaded on demand, without the `bond0` the module makes by default (it would
            // show in every inventory).
            Invocation::new("modprobe", IP_TIMEOUT)
                .args(["bonding", "max_bonds=0"])
                .keep_stderr_tail(crate::tools::STDERR_IN_ERRORS)
                .run_ok()?;
        }
        if !bond_dir.join("bonding").is_dir() {
            Self::write_sys(
                &self.sys_class_net.join("bonding_masters"),
                &format!("+{name}"),
            )?;
        }
        let bonding = bond_dir.join("bonding");
        // Applying the same plan again (the ramdisk's /init, then the agent) finds the bond
        // configured: what already holds is left alone, as the kernel refuses to change the
        // mode of a bond with slaves even to the same value.
        let current = |file: &str| {
            std::fs::read_to_string(bonding.join(file))
                .ok()
                .and_then(|t| t.split_whitespace().next().map(str::to_string))
        };
        let slaves = std::fs::read_to_string(bonding.join("slaves")).unwrap_or_default();
        let slaves: Vec<&str> = slaves.split_whitespace().collect();
        // The mode can only change while the bond is down and has no slaves: first.
        if current("mode").as_deref() != Some(mode) {
            Self::write_sys(&bonding.join("mode"), mode)?;
        }
        for (option, value) in options {
            if current(option).as_deref() != Some(value.as_str()) {
                Self::write_sys(&bonding.join(option), value)?;
            }
        }
        let mut enslaved = 0;
        for member in members {
            if slaves.contains(&member.as_str()) {
                enslaved += 1;
                continue;
            }
            let joined = self
                .ip(&ip_args(&["link", "set", "dev", member, "down"]))
                .and_then(|()| Self::write_sys(&bonding.join("slaves"), &format!("+{member}")));
            match joined {
                Ok(()) => enslaved += 1,
                Err(e) => warn!(bond = %name, member = %member, error = %e,
                                "could not add the interface to the bond"),
            }
        }
        if enslaved == 0 {
            return Err(NetOpError::Invalid(format!(
                "no member could be added to bond {name}"
            )));
        }
        Ok(())
    }

    fn write_resolv_conf(&self, text: &str) -> Result<(), NetOpError> {
        let etc = self.root.join("etc");
        let path = etc.join("resolv.conf");
        let tmp = etc.join(".resolv.conf.ironic-agent.tmp");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| NetOpError::Io { path: p, source }
        };
        std::fs::create_dir_all(&etc).map_err(io(&etc))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

fn ip_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The `ip` command lines (without `ip`) that carry out `step`; empty for the steps done
/// through files (bonds, `resolv.conf`).
pub fn ip_commands(step: &NetStep) -> Vec<Vec<String>> {
    match step {
        NetStep::CreateBond { .. } | NetStep::WriteResolvConf { .. } => Vec::new(),
        NetStep::CreateVlan {
            parent,
            id,
            name,
            mac,
        } => {
            let id = id.to_string();
            let mut cmds = vec![ip_args(&[
                "link", "add", "link", parent, "name", name, "type", "vlan", "id", &id,
            ])];
            if let Some(mac) = mac {
                cmds.push(ip_args(&["link", "set", "dev", name, "address", mac]));
            }
            cmds
        }
        NetStep::SetMtu { iface, mtu } => {
            vec![ip_args(&[
                "link",
                "set",
                "dev",
                iface,
                "mtu",
                &mtu.to_string(),
            ])]
        }
        NetStep::LinkUp { iface } => vec![ip_args(&["link", "set", "dev", iface, "up"])],
        NetStep::AddAddress {
            iface,
            addr,
            prefix,
        } => {
            let family = if addr.is_ipv4() { "-4" } else { "-6" };
            vec![ip_args(&[
                family,
                "addr",
                "replace",
                &format!("{addr}/{prefix}"),
                "dev",
                iface,
            ])]
        }
        NetStep::AddRoute {
            iface,
            dest,
            prefix,
            gateway,
        } => {
            let family = if dest.is_ipv4() { "-4" } else { "-6" };
            let dest = format!("{dest}/{prefix}");
            let mut args = ip_args(&[family, "route", "replace", &dest]);
            if let Some(gw) = gateway {
                args.extend(ip_args(&["via", &gw.to_string()]));
            }
            args.extend(ip_args(&["dev", iface]));
            vec![args]
        }
    }
}

/// The text of `resolv.conf` for these servers and domains.
pub fn resolv_conf_text(nameservers: &[std::net::IpAddr], search: &[String]) -> String {
    let mut text = String::from("# Written by ironic-agent from the node's network data.\n");
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in nameservers {
        text.push_str(&format!("nameserver {ns}\n"));
    }
    text
}

impl NetOps for SystemNetOps {
    fn apply(&self, step: &NetStep) -> Result<(), NetOpError> {
        match step {
            NetStep::CreateBond {
                name,
                mode,
                options,
                members,
            } => self.create_bond(name, mode, options, members),
            NetStep::WriteResolvConf {
                nameservers,
                search,
            } => self.write_resolv_conf(&resolv_conf_text(nameservers, search)),
            other => {
                for (n, args) in ip_commands(other).iter().enumerate() {
                    // A VLAN interface made by an earlier run is not added again.
                    if n == 0
                        && let NetStep::CreateVlan { name, .. } = other
                        && self.sys_class_net.join(name).exists()
                    {
                        info!(interface = %name, "VLAN interface already exists");
                        continue;
                    }
                    self.ip(args)?;
                }
                Ok(())
            }
        }
    }
}

/// Writes down each step (one JSON line per step, in a file or in memory) and touches
/// nothing: for tests and dry runs.
#[derive(Debug, Default)]
pub struct RecordingNetOps {
    path: Option<PathBuf>,
    steps: Mutex<Vec<NetStep>>,
}

impl RecordingNetOps {
    /// Keeps the steps in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Also appends each step as a JSON line to `path`.
    pub fn to_file(path: &Path) -> Self {
        RecordingNetOps {
            path: Some(path.to_path_buf()),
            steps: Mutex::new(Vec::new()),
        }
    }

    /// The steps recorded so far.
    pub fn steps(&self) -> Vec<NetStep> {
        self.steps
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

impl NetOps for RecordingNetOps {
    fn apply(&self, step: &NetStep) -> Result<(), NetOpError> {
        if let Some(path) = &self.path {
            let io = |source| NetOpError::Io {
                path: path.clone(),
                source,
            };
            let mut line =
                serde_json::to_string(step).map_err(|e| NetOpError::Invalid(e.to_string()))?;
            line.push('\n');
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io)?
                .write_all(line.as_bytes())
                .map_err(io)?;
        }
        match self.steps.lock() {
            Ok(mut s) => s.push(step.clone()),
            Err(poisoned) => poisoned.into_inner().push(step.clone()),
        }
        Ok(())
    }
}

/// What [`apply_plan`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Interfaces whose steps all succeeded, in order.
    pub configured: Vec<String>,
    /// Interfaces with a failed or skipped step, in order.
    pub failed: Vec<String>,
    /// One message per failed or skipped step.
    pub errors: Vec<String>,
    /// The interfaces that need DHCP now: the plan's, those whose static configuration
    /// failed, and the NICs under a bond or VLAN that could not be created.
    pub dhcp: Vec<String>,
}

/// Applies `plan` in order through `ops`. A failing step is logged; the steps needing its
/// interface are skipped (and their interfaces count as failed too); the rest goes on.
pub fn apply_plan(plan: &Plan, ops: &dyn NetOps) -> ApplyReport {
    let mut report = ApplyReport::default();
    let mut broken: HashSet<String> = HashSet::new();
    // Interfaces this plan creates whose creation failed or was skipped (they do not exist).
    let mut not_created: HashSet<String> = HashSet::new();
    let mut touched: Vec<String> = Vec::new();
    for step in &plan.steps {
        let iface = step.iface().map(str::to_string);
        if let Some(i) = &iface
            && !touched.contains(i)
        {
            touched.push(i.clone());
        }
        let creates = matches!(
            step,
            NetStep::CreateBond { .. } | NetStep::CreateVlan { .. }
        );
        let blocked: Vec<&str> = step
            .needs()
            .into_iter()
            .filter(|n| broken.contains(*n))
            .collect();
        let outcome = if blocked.is_empty() {
            ops.apply(step).map_err(|e| e.to_string())
        } else {
            Err(format!("skipped: {} failed before", blocked.join(", ")))
        };
        match outcome {
            Ok(()) => info!(step = ?step, "network step done"),
            Err(e) => {
                warn!(step = ?step, error = %e, "network step failed");
                report.errors.push(format!("{}: {e}", describe(step)));
                if let Some(i) = iface {
                    if creates {
                        not_created.insert(i.clone());
                    }
                    broken.insert(i);
                }
            }
        }
    }
    for i in touched {
        if broken.contains(&i) {
            report.failed.push(i);
        } else {
            report.configured.push(i);
        }
    }
    // The interfaces under a failed creation go back to DHCP unless something planned still
    // stands on them.
    let lowers = |name: &str| -> Vec<String> {
        plan.steps
            .iter()
            .find_map(|s| match s {
                NetStep::CreateBond {
                    name: n, members, ..
                } if n == name => Some(members.clone()),
                NetStep::CreateVlan {
                    name: n, parent, ..
                } if n == name => Some(vec![parent.clone()]),
                _ => None,
            })
            .unwrap_or_default()
    };
    let standing_on: HashSet<String> = plan
        .steps
        .iter()
        .filter(|s| s.iface().is_some_and(|i| !broken.contains(i)))
        .flat_map(|s| match s {
            NetStep::CreateBond { members, .. } => members.clone(),
            NetStep::CreateVlan { parent, .. } => vec![parent.clone()],
            _ => Vec::new(),
        })
        .collect();
    let mut dhcp = plan.dhcp.clone();
    let push = |d: &mut Vec<String>, i: String| {
        if !d.contains(&i) {
            d.push(i);
        }
    };
    for i in &report.failed {
        if !not_created.contains(i) {
            push(&mut dhcp, i.clone());
        }
    }
    // In plan order, breadth first.
    let mut work: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            NetStep::CreateBond { name, .. } | NetStep::CreateVlan { name, .. }
                if not_created.contains(name) =>
            {
                Some(name.clone())
            }
            _ => None,
        })
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut next = 0;
    while let Some(i) = work.get(next).cloned() {
        next += 1;
        if !seen.insert(i.clone()) {
            continue;
        }
        for lower in lowers(&i) {
            if not_created.contains(&lower) {
                work.push(lower);
            } else if !standing_on.contains(&lower) && !plan.static_ifaces.contains(&lower) {
                push(&mut dhcp, lower);
            }
        }
    }
    dhcp.retain(|i| !not_created.contains(i));
    report.dhcp = dhcp;
    report
}

/// A short description of `step` for messages.
fn describe(step: &NetStep) -> String {
    match step {
        NetStep::CreateBond { name, mode, .. } => format!("creating bond {name} ({mode})"),
        NetStep::CreateVlan { name, .. } => format!("creating VLAN interface {name}"),
        NetStep::SetMtu { iface, mtu } => format!("setting MTU {mtu} on {iface}"),
        NetStep::LinkUp { iface } => format!("bringing {iface} up"),
        NetStep::AddAddress {
            iface,
            addr,
            prefix,
        } => format!("adding {addr}/{prefix} to {iface}"),
        NetStep::AddRoute {
            iface,
            dest,
            prefix,
            ..
        } => format!("adding the route to {dest}/{prefix} on {iface}"),
        NetStep::WriteResolvConf { .. } => "writing resolv.conf".to_string(),
    }
}
