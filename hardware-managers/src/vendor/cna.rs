//! IPA's `IntelCnaHardwareManager`: Intel i40e NICs (X710/XL710/XXV710 families) run an LLDP
//! agent in firmware that consumes the switch's LLDP frames, so the OS never sees them. With
//! `ipa-collect-lldp`, IPA stops it once at start-up (the manager's `initialize`, which runs
//! when the manager chain is built, before any inventory or LLDP collection) by writing
//! `lldp stop` to every `/sys/kernel/debug/i40e/<pci address>/command`; failures are warnings.
//!
//! The manager takes part (mainline support) when a network interface's driver module is
//! `i40e` (`/sys/class/net/<if>/device/driver/module` → `.../i40e`).
//!
//! Unlike IPA's ramdisks, where systemd mounts debugfs, the minimal ramdisk does not: when
//! `/sys/kernel/debug/i40e` is missing and `/sys/kernel/debug` is empty, debugfs is mounted
//! there first (as other LLDP agents do for these NICs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::error::HardwareResult;
use crate::generic::sysfs::{link_basename, list_dir};
use crate::manager::{HardwareManager, ManagerVersion};
use crate::runner::{CommandRunner, SystemRunner};
use crate::support::SupportLevel;

/// The driver whose firmware runs the LLDP agent.
pub const CNA_DRIVER: &str = "i40e";
/// What stops the agent.
pub const LLDP_STOP: &str = "lldp stop";

/// Settings of the CNA manager.
#[derive(Debug, Clone)]
pub struct CnaConfig {
    /// Root under which `sys/` is read (`/` in production).
    pub root: PathBuf,
    /// `ipa-collect-lldp`: only then is the firmware agent stopped.
    pub collect_lldp: bool,
    /// Runs `mount` for debugfs. `None`: the system's, and only on the real root.
    pub runner: Option<Arc<dyn CommandRunner>>,
}

/// IPA's `cna` manager (`IntelCnaHardwareManager`, version 1.0).
#[derive(Debug, Clone)]
pub struct IntelCnaHardwareManager {
    config: CnaConfig,
}

impl IntelCnaHardwareManager {
    /// A manager with `config`.
    pub fn new(config: CnaConfig) -> Self {
        IntelCnaHardwareManager { config }
    }

    /// Whether an interface of `<root>/sys/class/net` is driven by i40e.
    pub fn detect_cna_card(&self) -> bool {
        let class_net = self.config.root.join("sys/class/net");
        list_dir(&class_net).iter().any(|n| {
            link_basename(&class_net.join(n).join("device/driver/module")).as_deref()
                == Some(CNA_DRIVER)
        })
    }

    /// IPA's `_disable_embedded_lldp_agent_in_cna_card`: `lldp stop` to every i40e debugfs
    /// `command` file. Returns the PCI addresses whose agent could not be told.
    pub fn disable_embedded_lldp_agent(&self) -> Vec<String> {
        let debug_dir = self.config.root.join("sys/kernel/debug");
        let i40e = debug_dir.join(CNA_DRIVER);
        if !i40e.is_dir() && list_dir(&debug_dir).is_empty() {
            self.mount_debugfs(&debug_dir);
        }
        if !i40e.is_dir() {
            warn!("Driver i40e was not loaded properly");
            return Vec::new();
        }
        let mut failed = Vec::new();
        for device in list_dir(&i40e) {
            let command = i40e.join(&device).join("command");
            // The file exists only for a bound device: never create one.
            let written = std::fs::OpenOptions::new()
                .write(true)
                .open(&command)
                .and_then(|mut f| std::io::Write::write_all(&mut f, LLDP_STOP.as_bytes()));
            match written {
                Ok(()) => debug!(device, "firmware LLDP agent stopped"),
                Err(e) => {
                    debug!(device, error = %e, "cannot write the i40e debugfs command");
                    failed.push(device);
                }
            }
        }
        if !failed.is_empty() {
            warn!(
                devices = %failed.join(", "),
                "Failed to disable the embedded LLDP on Intel CNA network card"
            );
        }
        failed
    }

    /// Mounts debugfs at `dir` (on the real root, or through an explicit runner).
    fn mount_debugfs(&self, dir: &std::path::Path) {
        let runner: &dyn CommandRunner = match &self.config.runner {
            Some(r) => r.as_ref(),
            None if self.config.root == std::path::Path::new("/") => &SystemRunner,
            None => return,
        };
        let target = dir.to_string_lossy();
        let args = ["-t", "debugfs", "debugfs", target.as_ref()];
        match runner.run("mount", &args, Duration::from_secs(30)) {
            Ok(r) if r.success() => info!(dir = %target, "debugfs mounted"),
            Ok(r) => warn!(dir = %target, stderr = %r.stderr.trim(), "cannot mount debugfs"),
            Err(e) => warn!(dir = %target, error = %e, "cannot mount debugfs"),
        }
    }
}

impl HardwareManager for IntelCnaHardwareManager {
    fn class_name(&self) -> String {
        "IntelCnaHardwareManager".to_string()
    }

    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: self.class_name(),
            version: "1.0".to_string(),
        }
    }

    fn evaluate_hardware_support(&self) -> SupportLevel {
        if self.detect_cna_card() {
            debug!("Found Intel CNA network card");
            SupportLevel::MAINLINE
        } else {
            debug!("No Intel CNA network card found");
            SupportLevel::NONE
        }
    }

    /// With `ipa-collect-lldp`, stops the firmware LLDP agents (as IPA, failures only warn).
    fn initialize(&self) -> HardwareResult<()> {
        if self.config.collect_lldp {
            info!("Disable CNA network card embedded lldp agent now");
            self.disable_embedded_lldp_agent();
        }
        Ok(())
    }
}
