//! `plugin_protocol`: what an executable hardware-manager plug-in prints, as the agent reads it —
//! the response decoder ([`parse_reply`]: JSON with chatter, `result` / `error`), the mapping of
//! plug-in errors, the typed decoding of every inventory fragment and step list, and what the
//! chain builds from them next to a fixed generic manager: the inventory (then serialised, read
//! back, and read by the conductor shim's inventory view), the de-duplicated step lists of each
//! kind, step execution and the install-device query.
//!
//! Input: the plug-in's stdout for each method in turn, separated by lines holding only `---`:
//! `support`, `list_network_interfaces`, `get_cpus`, `get_memory`, `list_block_devices`,
//! `get_bmc_address`, `get_bmc_v6address`, `get_bmc_mac`, `get_system_vendor_info`,
//! `get_boot_info`, `get_hostname`, `steps`, `get_os_install_device`, and a step's result. A
//! missing answer is `IncompatibleHardwareMethodError`.
//!
//! Checked: no panic; an inventory serialises and parses back to itself and the conductor
//! shim accepts it; every step name appears once per kind.

#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use hardware_managers::plugin::{Reply, parse_reply};
use hardware_managers::{
    BlockDevice, BootInfo, Chain, Cpu, Firmware, HardwareError, HardwareManager, HardwareResult,
    Inventory, ManagerVersion, Memory, NetworkInterface, Node, Step, StepContext, StepKind,
    SupportLevel, SystemVendorInfo,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// The methods answered by the input, in input order.
const METHODS: &[&str] = &[
    "support",
    "list_network_interfaces",
    "get_cpus",
    "get_memory",
    "list_block_devices",
    "get_bmc_address",
    "get_bmc_v6address",
    "get_bmc_mac",
    "get_system_vendor_info",
    "get_boot_info",
    "get_hostname",
    "steps",
    "get_os_install_device",
    "fuzz_step",
];

/// A plug-in whose answers are the input's records.
struct FuzzPlugin {
    replies: Vec<Vec<u8>>,
    support: SupportLevel,
}

impl FuzzPlugin {
    /// What `ExecutableManager::call` + `query` make of the recorded stdout for `method`.
    fn query<T: DeserializeOwned>(&self, method: &str) -> HardwareResult<T> {
        let index = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(usize::MAX);
        let Some(stdout) = self.replies.get(index) else {
            return Err(HardwareError::incompatible(method));
        };
        let value = match parse_reply(stdout) {
            Ok(Reply::Result(v)) => v,
            Ok(Reply::Error(e)) => return Err(e.into_error(method)),
            Err(why) => {
                return Err(HardwareError::Plugin {
                    manager: "fuzz-plugin".into(),
                    message: format!("method {method}: {why}"),
                });
            }
        };
        serde_json::from_value(value).map_err(|e| HardwareError::Plugin {
            manager: "fuzz-plugin".into(),
            message: format!("method {method} returned an invalid result: {e}"),
        })
    }
}

impl HardwareManager for FuzzPlugin {
    fn class_name(&self) -> String {
        "FuzzPlugin".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        self.support
    }
    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: "fuzz_plugin".into(),
            version: "1".into(),
        }
    }
    fn list_network_interfaces(&self) -> HardwareResult<Vec<NetworkInterface>> {
        self.query("list_network_interfaces")
    }
    fn get_cpus(&self) -> HardwareResult<Cpu> {
        self.query("get_cpus")
    }
    fn get_memory(&self) -> HardwareResult<Memory> {
        self.query("get_memory")
    }
    fn list_block_devices(&self, _: bool) -> HardwareResult<Vec<BlockDevice>> {
        self.query("list_block_devices")
    }
    fn get_os_install_device(&self, _: Option<&Node>) -> HardwareResult<String> {
        self.query("get_os_install_device")
    }
    fn get_bmc_address(&self) -> HardwareResult<Option<String>> {
        self.query("get_bmc_address")
    }
    fn get_bmc_v6address(&self) -> HardwareResult<Option<String>> {
        self.query("get_bmc_v6address")
    }
    fn get_bmc_mac(&self) -> HardwareResult<Option<String>> {
        self.query("get_bmc_mac")
    }
    fn get_boot_info(&self) -> HardwareResult<BootInfo> {
        self.query("get_boot_info")
    }
    fn get_system_vendor_info(&self) -> HardwareResult<SystemVendorInfo> {
        self.query("get_system_vendor_info")
    }
    fn get_hostname(&self) -> HardwareResult<String> {
        self.query("get_hostname")
    }
    fn get_steps(&self, _: StepKind, _: &StepContext) -> HardwareResult<Vec<Step>> {
        self.query("steps")
    }
    fn execute_step(
        &self,
        name: &str,
        _: &StepContext,
        _: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        self.query(name)
    }
}

/// The generic manager's stand-in: answers everything with fixed values.
struct Generic;

impl HardwareManager for Generic {
    fn class_name(&self) -> String {
        "GenericHardwareManager".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: "generic_hardware_manager".into(),
            version: "1.2".into(),
        }
    }
    fn list_network_interfaces(&self) -> HardwareResult<Vec<NetworkInterface>> {
        Ok(vec![NetworkInterface {
            name: "eth0".into(),
            mac_address: "52:54:00:12:34:56".into(),
            ipv4_address: Some("192.0.2.10".into()),
            ipv6_address: None,
            has_carrier: true,
            lldp: None,
            vendor: Some("0x1af4".into()),
            product: Some("0x0001".into()),
            client_id: None,
            biosdevname: None,
            speed_mbps: Some(1000),
            pci_address: Some("0000:00:03.0".into()),
            driver: Some("virtio_net".into()),
        }])
    }
    fn get_cpus(&self) -> HardwareResult<Cpu> {
        Ok(Cpu {
            model_name: "QEMU Virtual CPU".into(),
            frequency: "2000.000".into(),
            count: 2,
            architecture: "x86_64".into(),
            flags: vec!["fpu".into(), "sse2".into()],
            socket_count: Some(1),
        })
    }
    fn get_memory(&self) -> HardwareResult<Memory> {
        Ok(Memory {
            total: 4 << 30,
            physical_mb: Some(4096),
        })
    }
    fn list_block_devices(&self, _: bool) -> HardwareResult<Vec<BlockDevice>> {
        Ok(vec![BlockDevice {
            name: "/dev/vda".into(),
            model: Some(String::new()),
            size: 20 << 30,
            rotational: true,
            wwn: None,
            serial: Some("disk-1".into()),
            vendor: Some("0x1af4".into()),
            wwn_with_extension: None,
            wwn_vendor_extension: None,
            hctl: None,
            by_path: Some("/dev/disk/by-path/virtio-pci-0000:00:04.0".into()),
            logical_sectors: Some(512),
            physical_sectors: Some(512),
            tran: None,
            uuid: None,
            partuuid: None,
        }])
    }
    fn get_os_install_device(&self, _: Option<&Node>) -> HardwareResult<String> {
        Ok("/dev/vda".into())
    }
    fn get_bmc_address(&self) -> HardwareResult<Option<String>> {
        Ok(Some("192.0.2.1".into()))
    }
    fn get_bmc_v6address(&self) -> HardwareResult<Option<String>> {
        Ok(None)
    }
    fn get_bmc_mac(&self) -> HardwareResult<Option<String>> {
        Ok(None)
    }
    fn get_boot_info(&self) -> HardwareResult<BootInfo> {
        Ok(BootInfo {
            current_boot_mode: "uefi".into(),
            pxe_interface: Some("52:54:00:12:34:56".into()),
        })
    }
    fn get_system_vendor_info(&self) -> HardwareResult<SystemVendorInfo> {
        Ok(SystemVendorInfo {
            product_name: "Standard PC (Q35 + ICH9, 2009)".into(),
            serial_number: String::new(),
            manufacturer: "QEMU".into(),
            firmware: Firmware::default(),
        })
    }
    fn get_hostname(&self) -> HardwareResult<String> {
        Ok("localhost".into())
    }
    fn get_steps(&self, kind: StepKind, _: &StepContext) -> HardwareResult<Vec<Step>> {
        Ok(vec![
            Step::new("erase_devices_metadata", kind.as_str(), 99),
            Step::new("erase_devices", kind.as_str(), 10),
        ])
    }
}

/// Splits the input at lines holding only `---`.
fn records(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for line in data.split_inclusive(|b| *b == b'\n') {
        if line.strip_suffix(b"\n").unwrap_or(line) == b"---" {
            out.push(Vec::new());
        } else if let Some(last) = out.last_mut() {
            last.extend_from_slice(line);
        }
    }
    out
}

fn check_inventory(inventory: &Inventory) {
    let v = serde_json::to_value(inventory).expect("the inventory serialises");
    let back: Inventory = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("the inventory does not parse back ({e}): {v}"));
    assert_eq!(&back, inventory, "inventory round trip");
    let _ = inventory.macs();
    #[cfg(feature = "shim")]
    {
        let shown = conductor_shim::inventory::Inventory::from_value(&v).unwrap_or_else(|e| {
            panic!("the conductor shim refuses the agent's inventory ({e}): {v}")
        });
        let _ = shown.summary();
    }
}

fuzz_target!(|data: &[u8]| {
    let replies = records(data);
    let plugin = FuzzPlugin {
        replies,
        support: SupportLevel::NONE,
    };
    // `ExecutableManager::load`: a failing `support` query skips the plug-in.
    let support = plugin.query::<i64>("support").map(SupportLevel);
    let mut managers: Vec<Arc<dyn HardwareManager>> = vec![Arc::new(Generic)];
    if let Ok(support) = support {
        managers.push(Arc::new(FuzzPlugin { support, ..plugin }));
    }
    let chain = Chain::new(managers).expect("the generic manager is always supported");
    let _ = chain.versions();

    for skip_bmc in [false, true] {
        if let Ok(inventory) = chain.inventory(skip_bmc) {
            check_inventory(&inventory);
        }
    }
    let ctx = StepContext {
        kind: Some(StepKind::Clean),
        node: Node::default(),
        ports: Vec::new(),
    };
    for kind in [StepKind::Clean, StepKind::Deploy, StepKind::Service] {
        if let Ok(steps) = chain.steps(kind, &ctx) {
            let mut seen = HashSet::new();
            for step in steps.values().flatten() {
                assert!(
                    seen.insert(step.step.clone()),
                    "step {} listed twice",
                    step.step
                );
            }
            let _ = serde_json::to_value(&steps).expect("steps serialise");
        }
    }
    let args = json!({"node": {}, "ports": []});
    if let Value::Object(args) = args {
        if let Ok(result) = chain.execute_step("fuzz_step", &ctx, &args) {
            let _ = serde_json::to_string(&result).expect("a step result serialises");
        }
    }
    let _ = chain.dispatch("get_os_install_device", |m| m.get_os_install_device(None));
});
