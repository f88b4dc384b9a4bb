//! The vendor managers over fake sysfs/debugfs trees.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cna::{CnaConfig, IntelCnaHardwareManager};
use super::mlnx::{self, MellanoxDeviceHardwareManager};
use crate::generic::{GenericConfig, GenericHardwareManager};
use crate::runner::{Ran, RecordingRunner};
use crate::{Chain, HardwareManager, NetworkInterface, SupportLevel};

/// IPA's own example (mlnx.py): address, GUID-derived MAC, client id.
const IB_ADDRESS: &str = "a0:00:00:27:fe:80:00:00:00:00:00:00:7c:fe:90:03:00:29:26:52";
const IB_MAC: &str = "7c:fe:90:29:26:52";
const IB_CLIENT_ID: &str = "ff:00:00:00:00:00:02:00:00:02:c9:00:7c:fe:90:03:00:29:26:52";

struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Self {
        Tree(tempfile::tempdir().unwrap())
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    fn file(&self, rel: &str, contents: &str) -> &Self {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, contents).unwrap();
        self
    }

    fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if fs::symlink_metadata(&p).is_err() {
            symlink(target, p).unwrap();
        }
        self
    }

    /// A NIC `name` on PCI device `pci` of `vendor` with hardware address `address`, ARPHRD
    /// `arp_type`, bound to `driver`.
    fn nic(&self, name: &str, pci: &str, vendor: &str, address: &str, arp_type: u16, driver: &str) {
        let dev = format!("sys/devices/pci0000:00/{pci}");
        self.file(&format!("{dev}/vendor"), &format!("{vendor}\n"))
            .file(&format!("{dev}/device"), "0x1017\n")
            .link(
                &format!("sys/bus/pci/drivers/{driver}/module"),
                &format!("../../../../module/{driver}"),
            )
            .link(
                &format!("{dev}/driver"),
                &format!("../../../bus/pci/drivers/{driver}"),
            )
            .file(
                &format!("sys/class/net/{name}/address"),
                &format!("{address}\n"),
            )
            .file(
                &format!("sys/class/net/{name}/type"),
                &format!("{arp_type}\n"),
            )
            .file(&format!("sys/class/net/{name}/carrier"), "1\n")
            .link(
                &format!("sys/class/net/{name}/device"),
                &format!("../../../devices/pci0000:00/{pci}"),
            );
        fs::create_dir_all(self.root().join(format!("sys/module/{driver}"))).unwrap();
    }

    fn generic(&self) -> GenericHardwareManager {
        GenericHardwareManager::new(GenericConfig {
            root: self.root().to_path_buf(),
            ..GenericConfig::default()
        })
    }

    fn cna(&self, collect_lldp: bool, runner: Option<RecordingRunner>) -> IntelCnaHardwareManager {
        IntelCnaHardwareManager::new(CnaConfig {
            root: self.root().to_path_buf(),
            collect_lldp,
            runner: runner.map(|r| Arc::new(r) as _),
        })
    }
}

fn base(name: &str, mac: &str) -> NetworkInterface {
    NetworkInterface {
        name: name.into(),
        mac_address: mac.into(),
        ipv4_address: Some("192.0.2.5".into()),
        ipv6_address: Some("fe80::1".into()),
        has_carrier: true,
        lldp: Some(vec![(1, "04aabb".into())]),
        vendor: Some(mlnx::MLNX_VENDOR_ID.into()),
        product: Some("0x1017".into()),
        client_id: None,
        biosdevname: None,
        speed_mbps: Some(100_000),
        pci_address: Some("0000:03:00.0".into()),
        driver: Some("mlx5_core".into()),
    }
}

#[test]
fn mellanox_address_translation_is_ipas() {
    assert_eq!(
        mlnx::infiniband_address_to_mac(IB_ADDRESS).as_deref(),
        Some(IB_MAC)
    );
    assert_eq!(mlnx::client_id(IB_ADDRESS).as_deref(), Some(IB_CLIENT_ID));
    assert_eq!(mlnx::infiniband_address_to_mac("aa:bb"), None);
}

#[test]
fn mellanox_support_needs_a_mellanox_nic() {
    let tree = Tree::new();
    tree.nic(
        "eth0",
        "0000:00:03.0",
        "0x8086",
        "52:54:00:12:34:56",
        1,
        "e1000e",
    );
    let m = MellanoxDeviceHardwareManager::new(tree.root());
    assert_eq!(m.evaluate_hardware_support(), SupportLevel::NONE);
    tree.nic("ib0", "0000:03:00.0", "0x15b3", IB_ADDRESS, 32, "mlx5_core");
    assert_eq!(m.evaluate_hardware_support(), SupportLevel::MAINLINE);
    assert_eq!(m.version().name, "MellanoxDeviceHardwareManager");
    assert_eq!(m.version().version, "1");
}

#[test]
fn mellanox_interface_info_only_for_infiniband_ports() {
    let tree = Tree::new();
    tree.nic("ib0", "0000:03:00.0", "0x15b3", IB_ADDRESS, 32, "mlx5_core");
    tree.nic(
        "ens1",
        "0000:03:00.1",
        "0x15b3",
        "b8:59:9f:00:00:01",
        1,
        "mlx5_core",
    );
    tree.nic("ib1", "0000:04:00.0", "0x1077", IB_ADDRESS, 32, "qib");
    let m = MellanoxDeviceHardwareManager::new(tree.root());
    let info = m.get_interface_info(&base("ib0", IB_ADDRESS)).unwrap();
    assert_eq!(info.mac_address, IB_MAC);
    assert_eq!(info.client_id.as_deref(), Some(IB_CLIENT_ID));
    assert_eq!(info.ipv4_address.as_deref(), Some("192.0.2.5"));
    assert!(info.has_carrier);
    assert_eq!(info.vendor.as_deref(), Some("0x15b3"));
    assert_eq!(info.product.as_deref(), Some("0x1017"));
    // As IPA's NetworkInterface from the mlnx manager: none of these.
    assert_eq!(
        (
            info.ipv6_address,
            info.speed_mbps,
            info.pci_address,
            info.driver,
            info.biosdevname
        ),
        (None, None, None, None, None)
    );
    // A Mellanox Ethernet port, and an InfiniBand port of another vendor: not ours.
    let eth = m.get_interface_info(&base("ens1", "b8:59:9f:00:00:01"));
    assert!(eth.unwrap_err().is_incompatible());
    let qlogic = m.get_interface_info(&base("ib1", IB_ADDRESS));
    assert!(qlogic.unwrap_err().is_incompatible());
}

#[test]
fn chain_reports_infiniband_ports_as_ipa() {
    let tree = Tree::new();
    tree.nic(
        "eth0",
        "0000:00:03.0",
        "0x8086",
        "52:54:00:12:34:56",
        1,
        "e1000e",
    );
    tree.nic("ib0", "0000:03:00.0", "0x15b3", IB_ADDRESS, 32, "mlx5_core");
    let chain = Chain::new(vec![
        Arc::new(tree.generic()) as Arc<dyn HardwareManager>,
        Arc::new(MellanoxDeviceHardwareManager::new(tree.root())),
    ])
    .unwrap();
    let order: Vec<_> = chain.managers().map(|(m, s)| (m.class_name(), s)).collect();
    assert_eq!(
        order[0],
        (
            "MellanoxDeviceHardwareManager".into(),
            SupportLevel::MAINLINE
        )
    );
    assert_eq!(
        chain
            .versions()
            .get("MellanoxDeviceHardwareManager")
            .map(String::as_str),
        Some("1")
    );
    let nics = chain.list_network_interfaces().unwrap();
    let ib0 = nics.iter().find(|n| n.name == "ib0").unwrap();
    assert_eq!(ib0.mac_address, IB_MAC);
    assert_eq!(ib0.client_id.as_deref(), Some(IB_CLIENT_ID));
    let eth0 = nics.iter().find(|n| n.name == "eth0").unwrap();
    assert_eq!(eth0.mac_address, "52:54:00:12:34:56");
    assert_eq!(eth0.client_id, None);
    assert_eq!(eth0.driver.as_deref(), Some("e1000e"));
    // Chain::inventory takes its interfaces from this listing; they serialize as IPA's.
    let ib = serde_json::to_value(ib0).unwrap();
    assert_eq!(ib["mac_address"], IB_MAC);
    assert_eq!(ib["client_id"], IB_CLIENT_ID);
    assert_eq!(ib["driver"], serde_json::Value::Null);
}

#[test]
fn cna_support_needs_an_i40e_nic() {
    let tree = Tree::new();
    tree.nic(
        "eth0",
        "0000:00:03.0",
        "0x8086",
        "52:54:00:12:34:56",
        1,
        "ixgbe",
    );
    assert_eq!(
        tree.cna(true, None).evaluate_hardware_support(),
        SupportLevel::NONE
    );
    tree.nic(
        "eth1",
        "0000:05:00.0",
        "0x8086",
        "3c:fd:fe:00:00:01",
        1,
        "i40e",
    );
    let m = tree.cna(true, None);
    assert_eq!(m.evaluate_hardware_support(), SupportLevel::MAINLINE);
    assert_eq!(
        (m.version().name.as_str(), m.version().version.as_str()),
        ("IntelCnaHardwareManager", "1.0")
    );
}

fn command(tree: &Tree, pci: &str) -> PathBuf {
    tree.root()
        .join(format!("sys/kernel/debug/i40e/{pci}/command"))
}

#[test]
fn cna_stops_the_firmware_lldp_agent_at_initialize_with_collect_lldp() {
    let tree = Tree::new();
    tree.nic(
        "eth1",
        "0000:05:00.0",
        "0x8086",
        "3c:fd:fe:00:00:01",
        1,
        "i40e",
    );
    tree.file("sys/kernel/debug/i40e/0000:05:00.0/command", "")
        .file("sys/kernel/debug/i40e/0000:05:00.1/command", "");
    fs::create_dir_all(tree.root().join("sys/kernel/debug/i40e/0000:06:00.0")).unwrap();

    // Without ipa-collect-lldp nothing is written.
    tree.cna(false, None).initialize().unwrap();
    assert_eq!(
        fs::read_to_string(command(&tree, "0000:05:00.0")).unwrap(),
        ""
    );

    // With it, at chain construction (before any inventory), every device is told; the one
    // without a command file is reported.
    let cna = tree.cna(true, None);
    let _chain = Chain::new(vec![
        Arc::new(tree.generic()) as Arc<dyn HardwareManager>,
        Arc::new(cna.clone()),
    ])
    .unwrap();
    for pci in ["0000:05:00.0", "0000:05:00.1"] {
        assert_eq!(
            fs::read_to_string(command(&tree, pci)).unwrap(),
            "lldp stop"
        );
    }
    assert_eq!(cna.disable_embedded_lldp_agent(), ["0000:06:00.0"]);
}

#[test]
fn cna_mounts_debugfs_when_it_is_not_mounted() {
    let tree = Tree::new();
    tree.nic(
        "eth1",
        "0000:05:00.0",
        "0x8086",
        "3c:fd:fe:00:00:01",
        1,
        "i40e",
    );
    fs::create_dir_all(tree.root().join("sys/kernel/debug")).unwrap();
    let debug = tree.root().join("sys/kernel/debug");
    let mounted = debug.clone();
    let runner = RecordingRunner::new(move |program, _| {
        if program == "mount" {
            let dir = mounted.join("i40e/0000:05:00.0");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("command"), "").unwrap();
        }
        Ok(Ran::ok(""))
    });
    tree.cna(true, Some(runner.clone())).initialize().unwrap();
    assert_eq!(
        runner.calls(),
        [format!("mount -t debugfs debugfs {}", debug.display())]
    );
    assert_eq!(
        fs::read_to_string(command(&tree, "0000:05:00.0")).unwrap(),
        "lldp stop"
    );

    // debugfs mounted but no i40e directory (driver not loaded): no mount, only a warning.
    let other = Tree::new();
    other.file("sys/kernel/debug/ixgbe/x", "");
    let runner = RecordingRunner::succeeding();
    assert!(
        other
            .cna(true, Some(runner.clone()))
            .disable_embedded_lldp_agent()
            .is_empty()
    );
    assert!(runner.calls().is_empty());
}
