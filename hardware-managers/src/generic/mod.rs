//! The generic hardware manager: answers from /sys, /proc and standard tools.
//!
//! Every path is read under [`GenericConfig::root`], so tests point it at a fake tree. Each
//! concern lives in its own module: `net` (interfaces, with `ethtool` link speeds and
//! permanent MACs), `cpu`, `memory`, `disks` (block devices, with `wwn`, `udev` and `model`
//! helpers; without udev, `path_id` computes the `/dev/disk/by-path` names and `identity`
//! (with `vpd`) the serials and WWNs udev would give, over the `sysdev` view of sysfs),
//! `install` (install-disk choice: skip list, root device hints, smallest disk), `dmi`, `bmc`
//! (ipmitool), `logs`, `system` (boot mode, host name, sync) and [`lldp`] (`collect_lldp`).

pub mod backend;
#[doc(hidden)]
/// Public only for the fuzz target `ipmitool_lan`; not an API (its `Err(())` means "give up
/// on the BMC", a crate-internal convention).
#[allow(clippy::result_unit_err)]
pub mod bmc;
mod cpu;
mod disks;
mod dmi;
pub(crate) mod ethtool;
#[cfg(test)]
mod fakesys;
mod identity;
mod ifaddrs;
mod install;
pub mod lldp;
mod logs;
mod memory;
mod model;
mod net;
mod path_id;
mod sysdev;
pub(crate) mod sysfs;
mod system;
mod udev;
#[doc(hidden)]
/// Public only for the fuzz target `vpd`; not an API.
pub mod vpd;
mod wwn;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::{debug, info};

use crate::error::HardwareResult;
use crate::guard::{self, DiskGuard};
use crate::hints::{self, HintTarget, SkipList};
use crate::inventory::{BlockDevice, BootInfo, Cpu, Memory, NetworkInterface, SystemVendorInfo};
use crate::manager::{HardwareManager, ManagerVersion, StepContext};
use crate::node::Node;
use crate::runner::{CommandRunner, SystemRunner};
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
    /// Steps the agent implements and the generic manager offers as its own (`write_image`, ...).
    pub step_backend: Option<std::sync::Arc<dyn backend::StepBackend>>,
    /// `ipa-collect-lldp`: `list_network_interfaces` listens for LLDP on every interface and
    /// reports the TLVs as each interface's `lldp` (see [`lldp`]).
    pub collect_lldp: bool,
    /// `ipa-lldp-timeout`: how long LLDP is listened for (all interfaces at once).
    pub lldp_timeout: Duration,
    /// Runs the manager's tools (`modprobe`, `ipmitool`). `None`: the system's, and only on
    /// the real root (`modprobe` is then skipped under a test root). A runner given here is
    /// used whatever the root.
    pub runner: Option<Arc<dyn CommandRunner>>,
}

impl Default for GenericConfig {
    fn default() -> Self {
        GenericConfig {
            root: PathBuf::from("/"),
            bootif: None,
            allowed_devices: Vec::new(),
            step_backend: None,
            collect_lldp: false,
            lldp_timeout: crate::lldp::DEFAULT_LLDP_TIMEOUT,
            runner: None,
        }
    }
}

/// IPA's `GenericHardwareManager` (`generic_hardware_manager`, version 1.2).
#[derive(Debug)]
pub struct GenericHardwareManager {
    config: GenericConfig,
    /// Set once the IPMI kernel modules were asked for.
    ipmi_modules_loaded: OnceLock<()>,
    /// IPA's `_bmc_cache`: the BMC addresses, found once per process.
    bmc_address: OnceLock<Option<String>>,
    /// See `bmc_address`.
    bmc_v6address: OnceLock<Option<String>>,
    /// The BMC MAC once a channel scan completed (`Some(None)`: IPA's "unavailable"); a scan
    /// that could not run is repeated next time, as in IPA.
    bmc_mac: Mutex<Option<Option<String>>>,
    /// LLDPDUs received, reused while their TTL holds.
    lldp_cache: crate::lldp::LldpCache,
}

impl GenericHardwareManager {
    /// A generic manager reading the system described by `config`.
    pub fn new(config: GenericConfig) -> Self {
        GenericHardwareManager {
            config,
            ipmi_modules_loaded: OnceLock::new(),
            bmc_address: OnceLock::new(),
            bmc_v6address: OnceLock::new(),
            bmc_mac: Mutex::new(None),
            lldp_cache: crate::lldp::LldpCache::default(),
        }
    }

    /// The settings this manager was built with.
    pub fn config(&self) -> &GenericConfig {
        &self.config
    }

    /// The disk guard every destructive step passes first: this manager's allow-list
    /// ([`GenericConfig::allowed_devices`]) and root.
    pub fn guard(&self) -> DiskGuard {
        DiskGuard::new(self.config.allowed_devices.clone(), &self.config.root)
    }

    /// IPA's `list_block_devices_check_skip_list`: the block devices (partitions too when
    /// `include_partitions`) minus those `properties.skip_block_devices` names, and minus the
    /// partitions of a skipped disk. Without a node nothing is skipped.
    ///
    /// # Errors
    /// [`HardwareError::InvalidArgs`](crate::HardwareError::InvalidArgs) for a malformed skip
    /// list; listing errors as [`HardwareManager::list_block_devices`].
    pub fn list_block_devices_check_skip_list(
        &self,
        node: Option<&Node>,
        include_partitions: bool,
    ) -> HardwareResult<Vec<BlockDevice>> {
        let Some(node) = node else {
            return self.list_block_devices(include_partitions);
        };
        let skip = SkipList::from_node(node)?;
        let devices = self.list_block_devices(include_partitions)?;
        if skip.disk_hints().is_empty() {
            return Ok(devices);
        }
        let skipped = self.skipped_devices(&skip, &devices);
        Ok(devices
            .into_iter()
            .filter(|d| !skipped.contains(&d.name))
            .collect())
    }

    /// IPA's `get_skip_list_from_node_for_disks`: the names among `devices` that the node's
    /// `properties.skip_block_devices` names (with the partitions of a named disk).
    ///
    /// # Errors
    /// [`HardwareError::InvalidArgs`](crate::HardwareError::InvalidArgs) for a malformed skip
    /// list.
    pub fn skip_list_for_disks(
        &self,
        node: &Node,
        devices: &[BlockDevice],
    ) -> HardwareResult<BTreeSet<String>> {
        Ok(self.skipped_devices(&SkipList::from_node(node)?, devices))
    }

    /// The hint-matching view of `devices`: inventory values plus every serial and WWN that
    /// sysfs and udev know each device by.
    pub fn hint_targets(&self, devices: &[BlockDevice]) -> Vec<HintTarget> {
        devices
            .iter()
            .map(|d| disks::hint_target(self.root(), d))
            .collect()
    }

    /// The names of `devices` matched by `skip`, plus the partitions of matched disks.
    fn skipped_devices(&self, skip: &SkipList, devices: &[BlockDevice]) -> BTreeSet<String> {
        let mut skipped = BTreeSet::new();
        for target in self.hint_targets(devices) {
            if let Some(entry) = skip.matching_entry(&target) {
                info!(device = %target.name, %entry, "skipping device listed in properties.skip_block_devices");
                skipped.insert(target.name);
            }
        }
        let partitions: Vec<String> = devices
            .iter()
            .filter(|d| skipped.iter().any(|s| guard::is_partition_of(&d.name, s)))
            .map(|d| d.name.clone())
            .collect();
        skipped.extend(partitions);
        skipped
    }

    fn root(&self) -> &Path {
        &self.config.root
    }

    fn is_real_root(&self) -> bool {
        self.root() == Path::new("/")
    }

    /// The runner for the manager's tools.
    fn runner(&self) -> &dyn CommandRunner {
        match &self.config.runner {
            Some(r) => r.as_ref(),
            None => &SystemRunner,
        }
    }

    /// Whether kernel modules may be loaded: on the real root, or with an explicit runner.
    fn may_load_modules(&self) -> bool {
        self.is_real_root() || self.config.runner.is_some()
    }

    /// IPA's `_load_ipmi_modules` (its `GenericHardwareManager.initialize`): `modprobe` of
    /// the in-band IPMI drivers, once; failures (no such module, no BMC) are only logged.
    pub fn load_ipmi_modules(&self) {
        if !self.may_load_modules() {
            return;
        }
        self.ipmi_modules_loaded.get_or_init(|| {
            for module in IPMI_MODULES {
                match self
                    .runner()
                    .run("modprobe", &[module], Duration::from_secs(30))
                {
                    Ok(r) if r.success() => debug!(module, "kernel module loaded"),
                    Ok(r) => {
                        debug!(module, code = ?r.code, stderr = %r.stderr.trim(), "IPMI driver not supported or not present")
                    }
                    Err(e) => debug!(module, error = %e, "IPMI driver not supported or not present"),
                }
            }
        });
    }

    /// IPA's `any_ipmi_device_exists`: a character device `/dev/ipmi*`, `/dev/ipmi/*` or
    /// `/dev/ipmidev/*` (under a test root any file).
    fn bmc_present(&self) -> bool {
        bmc::has_ipmi_device(self.root(), !self.is_real_root())
    }

    /// Runs ipmitool through the manager's runner.
    fn ipmitool(&self, args: &[&str]) -> bmc::Answer {
        bmc::ipmitool(self.runner(), args)
    }
}

/// The in-band IPMI drivers loaded at start: IPA's three (message handler, `/dev/ipmi0`, the
/// KCS/SMIC/BT system interface), in its order, then `ipmi_ssif` for BMCs on SMBus (common on
/// Arm servers), which IPA does not load (udev does, by its ACPI alias, on IPA's ramdisks; the
/// minimal ramdisk has no udev).
pub const IPMI_MODULES: [&str; 4] = ["ipmi_msghandler", "ipmi_devintf", "ipmi_si", "ipmi_ssif"];

/// The disks (`/dev/<disk>`) holding a member (the disk itself or one of its partitions) of
/// an md array among `devices`, from `/sys/block/<md>/slaves`.
fn raid_member_disks(root: &Path, devices: &[BlockDevice]) -> BTreeSet<String> {
    let sys_block = root.join("sys/block");
    let mut out = BTreeSet::new();
    for d in devices {
        let Some(md) = Path::new(&d.name).file_name() else {
            continue;
        };
        if !sys_block.join(md).join("md").is_dir() {
            continue;
        }
        let Ok(slaves) = std::fs::read_dir(sys_block.join(md).join("slaves")) else {
            continue;
        };
        for slave in slaves.filter_map(|e| e.ok()) {
            let slave = slave.file_name().to_string_lossy().into_owned();
            let disk = devices
                .iter()
                .filter_map(|d| {
                    Path::new(&d.name)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .find(|disk| {
                    *disk == slave
                        || sys_block
                            .join(disk)
                            .join(&slave)
                            .join("partition")
                            .is_file()
                });
            if let Some(disk) = disk {
                out.insert(format!("/dev/{disk}"));
            }
        }
    }
    out
}

impl HardwareManager for GenericHardwareManager {
    fn class_name(&self) -> String {
        "GenericHardwareManager".to_string()
    }

    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }

    /// As IPA's: loads the IPMI kernel modules.
    fn initialize(&self) -> HardwareResult<()> {
        self.load_ipmi_modules();
        Ok(())
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
        let mut interfaces = if self.is_real_root() {
            net::list_interfaces(self.root(), &addrs, &ethtool::Kernel)
        } else {
            let modes = ethtool::FromFile(ethtool::from_file(&self.root().join("ethtool")));
            net::list_interfaces(self.root(), &addrs, &modes)
        };
        if self.config.collect_lldp {
            let names = net::interface_names(self.root());
            let data = self.lldp_cache.collect(&names, self.config.lldp_timeout);
            lldp::fill(&mut interfaces, &data);
        }
        Ok(interfaces)
    }

    fn collect_lldp_data(
        &self,
        interface_names: Option<&[String]>,
    ) -> HardwareResult<lldp::LldpRaw> {
        let names = match interface_names {
            Some(n) => n.to_vec(),
            None => net::interface_names(self.root()),
        };
        Ok(self.lldp_cache.collect(&names, self.config.lldp_timeout))
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

    /// Root-device hints (`instance_info.root_device`, else `properties.root_device`) pick
    /// the first matching disk; without hints the smallest disk of at least 4 GiB wins. Disks
    /// named by `properties.skip_block_devices` are never chosen.
    fn get_os_install_device(&self, node: Option<&Node>) -> HardwareResult<String> {
        if let Some(backend) = &self.config.step_backend
            && let Some(device) = backend.install_device(node)?
        {
            info!(%device, "using the software RAID root volume as install device");
            return Ok(device);
        }
        let (hints, skip) = match node {
            Some(node) => (hints::root_device_hints(node)?, SkipList::from_node(node)?),
            None => (None, SkipList::default()),
        };
        let mut devices = self.list_block_devices(false)?;
        // With the disk guard's allow-list set, only allowed devices can be written: choosing
        // anything else would only end in the guard's refusal.
        let guard = self.guard();
        devices.retain(|d| guard.is_allowed(Path::new(&d.name)));
        // The member disks of software RAID arrays are not install devices (the guard refuses
        // to write them anyway): the arrays are.
        let members = raid_member_disks(self.root(), &devices);
        if !members.is_empty() {
            debug!(?members, "not considering software RAID member disks");
            devices.retain(|d| !members.contains(&d.name));
        }
        install::choose(&self.hint_targets(&devices), hints.as_ref(), &skip)
    }

    fn get_bmc_address(&self) -> HardwareResult<Option<String>> {
        let found = self.bmc_address.get_or_init(|| {
            self.bmc_present()
                .then(|| bmc::bmc_address(|a| self.ipmitool(a)).ok())
                .flatten()
        });
        Ok(found.clone())
    }

    fn get_bmc_v6address(&self) -> HardwareResult<Option<String>> {
        let found = self.bmc_v6address.get_or_init(|| {
            self.bmc_present()
                .then(|| bmc::bmc_v6address(|a| self.ipmitool(a)).ok())
                .flatten()
        });
        Ok(found.clone())
    }

    fn get_bmc_mac(&self) -> HardwareResult<Option<String>> {
        let mut cached = self
            .bmc_mac
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mac) = cached.as_ref() {
            return Ok(mac.clone());
        }
        if !self.bmc_present() {
            return Ok(None);
        }
        match bmc::bmc_mac(|a| self.ipmitool(a)) {
            Ok(mac) => {
                *cached = Some(mac.clone());
                Ok(mac)
            }
            Err(()) => Ok(None),
        }
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

    /// The steps of the agent's step backend (deploy: `write_image`, ...). A step is only
    /// offered once it can run.
    fn get_steps(&self, kind: StepKind, _ctx: &StepContext) -> HardwareResult<Vec<Step>> {
        Ok(self
            .config
            .step_backend
            .as_ref()
            .map(|b| b.steps(kind))
            .unwrap_or_default())
    }

    fn execute_step(
        &self,
        name: &str,
        ctx: &StepContext,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> HardwareResult<serde_json::Value> {
        match &self.config.step_backend {
            Some(b) => b.execute(name, ctx, args),
            None => Err(crate::HardwareError::incompatible(name)),
        }
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
