//! Network interfaces behind a trait: `system.lockdown` takes every interface except loopback
//! down. The real implementation runs `ip link set NIC down`; the recording one only writes
//! what it would do, so tests never touch the machine's interfaces.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::NetworkMode;
use crate::power::SystemPower;
use crate::tools::Invocation;

/// How long one `ip link set … down` may take.
const IP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the kernel lists the network interfaces.
pub const SYS_CLASS_NET: &str = "/sys/class/net";

/// Errors of network actions.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The action was refused for safety.
    #[error("{0}")]
    Refused(String),
    /// The interfaces could not be listed.
    #[error("listing the network interfaces in {dir}: {source}")]
    List {
        /// The directory read.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The recording file could not be written.
    #[error("recording to {path}: {source}")]
    Record {
        /// The recording file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The interfaces listed in `dir` (a `/sys/class/net`), loopback (`lo`) and entries that are
/// not interfaces (such as `bonding_masters`) left out, sorted by name.
pub fn interfaces(dir: &Path) -> Result<Vec<String>, NetworkError> {
    let list_error = |source| NetworkError::List {
        dir: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Interfaces are (symbolic links to) directories.
        if name == "lo" || !entry.path().is_dir() {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// Carries out network actions.
pub trait Network: Send + Sync {
    /// Takes every interface except loopback down. An interface that cannot be taken down is
    /// logged and skipped, as IPA does; returns the interfaces taken down.
    fn lockdown(&self) -> Result<Vec<String>, NetworkError>;
}

/// Builds the implementation `mode` asks for.
pub fn for_mode(mode: &NetworkMode) -> std::sync::Arc<dyn Network> {
    match mode {
        NetworkMode::System => std::sync::Arc::new(SystemNetwork::default()),
        NetworkMode::Record(path) => std::sync::Arc::new(RecordingNetwork::new(path)),
    }
}

/// Really takes the interfaces down with `ip link set NIC down`.
///
/// As a safety net it refuses unless the root filesystem is a ramdisk (as [`SystemPower`]
/// does), so an agent started on a workstation or a test host never cuts its network.
#[derive(Debug)]
pub struct SystemNetwork {
    sys_class_net: PathBuf,
}

impl Default for SystemNetwork {
    fn default() -> Self {
        SystemNetwork {
            sys_class_net: PathBuf::from(SYS_CLASS_NET),
        }
    }
}

impl Network for SystemNetwork {
    fn lockdown(&self) -> Result<Vec<String>, NetworkError> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        if !SystemPower::root_is_ramdisk(&mounts) {
            return Err(NetworkError::Refused(
                "refusing to take the network interfaces down: / is not a ramdisk, so this is \
                 not a deploy ramdisk (use --network record:PATH to test system.lockdown)"
                    .to_string(),
            ));
        }
        let mut down = Vec::new();
        for nic in interfaces(&self.sys_class_net)? {
            let out = Invocation::new("ip", IP_TIMEOUT)
                .args(["link", "set", &nic, "down"])
                .run_ok();
            match out {
                Ok(_) => {
                    info!(interface = %nic, "network interface down");
                    down.push(nic);
                }
                Err(e) => warn!(interface = %nic, error = %e, "could not bring the interface down"),
            }
        }
        Ok(down)
    }
}

/// Lists the interfaces (read-only) and appends `down NIC` for each to a file; touches no
/// interface.
#[derive(Debug)]
pub struct RecordingNetwork {
    path: PathBuf,
    sys_class_net: PathBuf,
}

impl RecordingNetwork {
    /// Records into `path` the interfaces of this machine's `/sys/class/net`.
    pub fn new(path: &Path) -> Self {
        Self::with_sys_class_net(path, Path::new(SYS_CLASS_NET))
    }

    /// Records into `path` the interfaces listed in `sys_class_net`.
    pub fn with_sys_class_net(path: &Path, sys_class_net: &Path) -> Self {
        RecordingNetwork {
            path: path.to_path_buf(),
            sys_class_net: sys_class_net.to_path_buf(),
        }
    }
}

impl Network for RecordingNetwork {
    fn lockdown(&self) -> Result<Vec<String>, NetworkError> {
        let nics = interfaces(&self.sys_class_net)?;
        let fail = |source| NetworkError::Record {
            path: self.path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(fail)?;
        let lines: String = nics.iter().map(|n| format!("down {n}\n")).collect();
        f.write_all(lines.as_bytes()).map_err(fail)?;
        info!(interfaces = ?nics, file = %self.path.display(),
              "network lockdown recorded (no interface touched)");
        Ok(nics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sys_class_net(dir: &Path) -> anyhow::Result<PathBuf> {
        let net = dir.join("net");
        for nic in ["lo", "eth0", "enp1s0", "eth0.100"] {
            std::fs::create_dir_all(net.join(nic))?;
        }
        std::fs::write(net.join("bonding_masters"), "")?;
        Ok(net)
    }

    #[test]
    fn lists_every_interface_but_loopback() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let net = fake_sys_class_net(dir.path())?;
        assert_eq!(interfaces(&net)?, ["enp1s0", "eth0", "eth0.100"]);
        assert!(matches!(
            interfaces(&dir.path().join("missing")),
            Err(NetworkError::List { .. })
        ));
        Ok(())
    }

    #[test]
    fn recording_appends_and_touches_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let net = fake_sys_class_net(dir.path())?;
        let record = dir.path().join("network");
        let r = RecordingNetwork::with_sys_class_net(&record, &net);
        assert_eq!(r.lockdown()?, ["enp1s0", "eth0", "eth0.100"]);
        assert_eq!(
            std::fs::read_to_string(&record)?,
            "down enp1s0\ndown eth0\ndown eth0.100\n"
        );
        Ok(())
    }

    #[test]
    fn system_network_refuses_outside_a_ramdisk() {
        // The test host's / is a disk, never a ramdisk: nothing may be taken down here.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        if SystemPower::root_is_ramdisk(&mounts) {
            return;
        }
        let refused = SystemNetwork::default().lockdown();
        assert!(
            matches!(refused, Err(NetworkError::Refused(_))),
            "{refused:?}"
        );
    }
}
