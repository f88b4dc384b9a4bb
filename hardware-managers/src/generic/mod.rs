//! The generic hardware manager: answers from /sys, /proc and standard tools.
//!
//! Every path is read under [`GenericConfig::root`], so tests point it at a fake tree. Each
//! concern lives in its own module: `net` (interfaces), `cpu`, `memory`, `disks` (block
//! devices, with `wwn` and `udev` helpers), `install` (install-disk rule), `dmi`, `bmc`
//! (ipmitool), `logs` and `system` (boot mode, host name, sync).

mod bmc;
mod cpu;
mod disks;
mod dmi;
mod ifaddrs;
mod install;
mod logs;
mod memory;
mod net;
mod sysfs;
mod system;
mod udev;
mod wwn;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::debug;

use crate::error::HardwareResult;
use crate::inventory::{BlockDevice, BootInfo, Cpu, Memory, NetworkInterface, SystemVendorInfo};
use crate::manager::{HardwareManager, ManagerVersion, StepContext};
use crate::node::Node;
use crate::process::{self, Limits};
use crate::step::{Step, StepKind};
use crate::support::SupportLevel;

/// `HARDWARE_MANAGER_NAME` of the generic manager.
pub const GENERIC_MANAGER_NAME: &str = "generic_hardware_manager";
/// `HARDWARE_MANAGER_VERSION` of the generic manager (IPA's, so Ironic sees no mismatch).
pub const GENERIC_MANAGER_VERSION: &str = "1.2";

/// Settings of the generic manager.
#[derive(Debug, Clone)]
pub struct GenericConfig {
    /// Root of the filesystem to read (`/` in production; a temp tree in tests), under which
    /// `sys/`, `proc/`, `dev/` are looked up. Under a root other than `/`, interface addresses
    /// come from the optional file `<root>/ifaddrs` (lines `<interface> <address>`), and no
    /// system command is run for the log bundle.
    pub root: PathBuf,
    /// The raw `BOOTIF` kernel parameter, reported as `boot.pxe_interface`.
    pub bootif: Option<String>,
    /// The disk guard's allow-list. When non-empty, loop devices named here are listed as disks
    /// (so they can be install targets in tests).
    pub allowed_devices: Vec<PathBuf>,
}

impl Default for GenericConfig {
    fn default() -> Self {
        GenericConfig {
            root: PathBuf::from("/"),
            bootif: None,
            allowed_devices: Vec::new(),
        }
    }
}

/// IPA's `GenericHardwareManager` (`generic_hardware_manager`, version 1.2).
#[derive(Debug, Clone)]
pub struct GenericHardwareManager {
    config: GenericConfig,
    /// Set once the IPMI kernel modules were asked for (real root only).
    ipmi_modules_loaded: OnceLock<()>,
}

impl GenericHardwareManager {
    /// A generic manager reading the system described by `config`.
    pub fn new(config: GenericConfig) -> Self {
        GenericHardwareManager {
            config,
            ipmi_modules_loaded: OnceLock::new(),
        }
    }

    /// The settings this manager was built with.
    pub fn config(&self) -> &GenericConfig {
        &self.config
    }

    fn root(&self) -> &Path {
        &self.config.root
    }

    fn is_real_root(&self) -> bool {
        self.root() == Path::new("/")
    }

    /// Whether a BMC can be queried: an IPMI device node exists (on the real root, after
    /// loading the IPMI drivers once, as they are rarely loaded automatically).
    fn bmc_present(&self) -> bool {
        if bmc::has_ipmi_device(self.root()) {
            return true;
        }
        if !self.is_real_root() {
            return false;
        }
        self.ipmi_modules_loaded.get_or_init(load_ipmi_modules);
        bmc::has_ipmi_device(self.root())
    }
}

/// `modprobe` of the in-band IPMI drivers; failures (no such module, no BMC) are expected.
fn load_ipmi_modules() {
    for module in ["ipmi_msghandler", "ipmi_devintf", "ipmi_si"] {
        let mut cmd = std::process::Command::new("modprobe");
        cmd.arg(module);
        match process::run(cmd, None, Limits::with_timeout(Duration::from_secs(30))) {
            Ok(f) if f.status.success() => {}
            Ok(f) => debug!(module, status = %f.status, "modprobe failed"),
            Err(e) => debug!(module, error = %e, "cannot run modprobe"),
        }
    }
}

impl HardwareManager for GenericHardwareManager {
    fn class_name(&self) -> String {
        "GenericHardwareManager".to_string()
    }

    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }

    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: GENERIC_MANAGER_NAME.to_string(),
            version: GENERIC_MANAGER_VERSION.to_string(),
        }
    }

    fn list_network_interfaces(&self) -> HardwareResult<Vec<NetworkInterface>> {
        let addrs = if self.is_real_root() {
            ifaddrs::from_system()
        } else {
            ifaddrs::from_file(&self.root().join("ifaddrs"))
        };
        Ok(net::list_interfaces(self.root(), &addrs))
    }

    fn get_cpus(&self) -> HardwareResult<Cpu> {
        cpu::get_cpus(self.root())
    }

    fn get_memory(&self) -> HardwareResult<Memory> {
        memory::get_memory(self.root())
    }

    fn list_block_devices(&self, include_partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
        disks::DiskScan {
            root: self.root(),
            allowed: &self.config.allowed_devices,
        }
        .list(include_partitions)
    }

    fn get_os_install_device(&self, node: Option<&Node>) -> HardwareResult<String> {
        install::reject_unsupported_hints(node)?;
        install::smallest_eligible(&self.list_block_devices(false)?)
    }

    fn get_bmc_address(&self) -> HardwareResult<Option<String>> {
        Ok(self
            .bmc_present()
            .then(|| bmc::bmc_address(bmc::run_ipmitool))
            .flatten())
    }

    fn get_bmc_v6address(&self) -> HardwareResult<Option<String>> {
        Ok(self
            .bmc_present()
            .then(|| bmc::bmc_v6address(bmc::run_ipmitool))
            .flatten())
    }

    fn get_bmc_mac(&self) -> HardwareResult<Option<String>> {
        Ok(self
            .bmc_present()
            .then(|| bmc::bmc_mac(bmc::run_ipmitool))
            .flatten())
    }

    fn get_boot_info(&self) -> HardwareResult<BootInfo> {
        Ok(system::boot_info(
            self.root(),
            self.config.bootif.as_deref(),
        ))
    }

    fn get_system_vendor_info(&self) -> HardwareResult<SystemVendorInfo> {
        Ok(dmi::system_vendor_info(self.root()))
    }

    fn get_hostname(&self) -> HardwareResult<String> {
        system::hostname(self.root())
    }

    /// No generic steps yet: erase, write_image and RAID arrive with their implementations,
    /// and a step is only offered once it can run.
    fn get_steps(&self, _kind: StepKind, _ctx: &StepContext) -> HardwareResult<Vec<Step>> {
        Ok(Vec::new())
    }

    fn collect_system_logs(&self) -> HardwareResult<Vec<(String, Vec<u8>)>> {
        Ok(logs::collect(self.root()))
    }

    fn full_sync(&self) -> HardwareResult<()> {
        system::full_sync(self.root());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
