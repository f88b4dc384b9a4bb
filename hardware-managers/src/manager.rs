//! The `HardwareManager` trait: every hardware question the agent asks, each defaulting to
//! "incompatible" so a manager implements only what it supports.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{HardwareError, HardwareResult};
use crate::inventory::{BlockDevice, BootInfo, Cpu, Memory, NetworkInterface, SystemVendorInfo};
use crate::node::{Node, Port};
use crate::step::{Step, StepKind};
use crate::support::SupportLevel;

/// A manager's name and version as reported in `hardware_manager_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerVersion {
    /// `HARDWARE_MANAGER_NAME` (e.g. `generic_hardware_manager`).
    pub name: String,
    /// `HARDWARE_MANAGER_VERSION` (e.g. `1.2`).
    pub version: String,
}

/// What a step receives besides its own arguments.
#[derive(Debug, Clone, Default)]
pub struct StepContext {
    /// Which kind of step is running.
    pub kind: Option<StepKind>,
    /// The node as Ironic sent it with the command.
    pub node: Node,
    /// The node's ports.
    pub ports: Vec<Port>,
}

/// A hardware manager. Methods are blocking; the agent calls them off its async runtime.
///
/// Every query defaults to [`HardwareError::Incompatible`], which makes the chain ask the next
/// manager, so an implementation overrides only what it supports.
pub trait HardwareManager: Send + Sync {
    /// The manager's class name: the key of its steps in `*_steps` results
    /// (e.g. `GenericHardwareManager`).
    fn class_name(&self) -> String;

    /// How well this manager fits this machine; `<= 0` drops it from the chain.
    fn evaluate_hardware_support(&self) -> SupportLevel;

    /// One-time set-up after the chain is ordered.
    fn initialize(&self) -> HardwareResult<()> {
        Ok(())
    }

    /// Name and version reported to Ironic.
    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: self.class_name(),
            version: "1.0".to_string(),
        }
    }

    /// Network interfaces for the inventory.
    fn list_network_interfaces(&self) -> HardwareResult<Vec<NetworkInterface>> {
        Err(HardwareError::incompatible("list_network_interfaces"))
    }

    /// IPA's `get_interface_info`: this manager's own inventory entry for an interface that
    /// [`list_network_interfaces`](Self::list_network_interfaces) found (`base`), asked by
    /// [`Chain::list_network_interfaces`](crate::Chain::list_network_interfaces) of every
    /// manager in order; the first answer replaces `base` (keeping its `lldp`).
    fn get_interface_info(&self, base: &NetworkInterface) -> HardwareResult<NetworkInterface> {
        let _ = base;
        Err(HardwareError::incompatible("get_interface_info"))
    }

    /// IPA's `collect_lldp_data` (the `lldp` inspection collector): each interface's first
    /// LLDPDU as `[type, hex]` pairs, for `interface_names` or, with `None`, every NIC, VLAN
    /// and bond.
    fn collect_lldp_data(
        &self,
        interface_names: Option<&[String]>,
    ) -> HardwareResult<crate::lldp::LldpRaw> {
        let _ = interface_names;
        Err(HardwareError::incompatible("collect_lldp_data"))
    }

    /// CPU summary.
    fn get_cpus(&self) -> HardwareResult<Cpu> {
        Err(HardwareError::incompatible("get_cpus"))
    }

    /// Memory summary.
    fn get_memory(&self) -> HardwareResult<Memory> {
        Err(HardwareError::incompatible("get_memory"))
    }

    /// Block devices; disks only unless `include_partitions`.
    fn list_block_devices(&self, include_partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
        let _ = include_partitions;
        Err(HardwareError::incompatible("list_block_devices"))
    }

    /// The disk to install the OS on (root-device hints, else the smallest disk ≥ 4 GiB).
    fn get_os_install_device(&self, node: Option<&Node>) -> HardwareResult<String> {
        let _ = node;
        Err(HardwareError::incompatible("get_os_install_device"))
    }

    /// BMC IPv4 address (`Ok(None)` when there is no BMC).
    fn get_bmc_address(&self) -> HardwareResult<Option<String>> {
        Err(HardwareError::incompatible("get_bmc_address"))
    }

    /// BMC IPv6 address (`Ok(None)` when there is no BMC).
    fn get_bmc_v6address(&self) -> HardwareResult<Option<String>> {
        Err(HardwareError::incompatible("get_bmc_v6address"))
    }

    /// BMC MAC address (`Ok(None)` when unknown).
    fn get_bmc_mac(&self) -> HardwareResult<Option<String>> {
        Err(HardwareError::incompatible("get_bmc_mac"))
    }

    /// Boot mode and PXE interface.
    fn get_boot_info(&self) -> HardwareResult<BootInfo> {
        Err(HardwareError::incompatible("get_boot_info"))
    }

    /// DMI identification.
    fn get_system_vendor_info(&self) -> HardwareResult<SystemVendorInfo> {
        Err(HardwareError::incompatible("get_system_vendor_info"))
    }

    /// Host name.
    fn get_hostname(&self) -> HardwareResult<String> {
        Err(HardwareError::incompatible("get_hostname"))
    }

    /// The steps of `kind` this manager offers.
    fn get_steps(&self, kind: StepKind, ctx: &StepContext) -> HardwareResult<Vec<Step>> {
        let _ = (kind, ctx);
        Ok(Vec::new())
    }

    /// Runs step (or any named method) `name` with `args`; the result becomes
    /// `<kind>_result`. Return `Incompatible` for names this manager does not implement.
    fn execute_step(
        &self,
        name: &str,
        ctx: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        let _ = (ctx, args);
        Err(HardwareError::incompatible(name))
    }

    /// Adds files to the log bundle: `(name inside the archive, contents)`.
    fn collect_system_logs(&self) -> HardwareResult<Vec<(String, Vec<u8>)>> {
        Err(HardwareError::incompatible("collect_system_logs"))
    }

    /// Flushes caches before a power action (called on every manager).
    fn full_sync(&self) -> HardwareResult<()> {
        Err(HardwareError::incompatible("full_sync"))
    }
}
