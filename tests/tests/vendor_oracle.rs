//! Parity of the built-in vendor managers with IPA 13's `mlnx` and `cna` managers
//! (`tests/oracle/ipa_vendor.py`) over the same fake /sys trees: support levels, the
//! InfiniBand interface entries, and what the CNA manager writes to the i40e debugfs `command`
//! files when the chain is built. Fails when the oracle venv is missing.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use e2e_tests::oracle;
use hardware_managers::generic::{GenericConfig, GenericHardwareManager};
use hardware_managers::vendor::cna::{CnaConfig, IntelCnaHardwareManager};
use hardware_managers::vendor::mlnx::MellanoxDeviceHardwareManager;
use hardware_managers::{Chain, HardwareManager};
use serde_json::{Map, Value, json};

const IB_A: &str = "a0:00:00:27:fe:80:00:00:00:00:00:00:7c:fe:90:03:00:29:26:52";
const IB_B: &str = "80:00:02:08:fe:80:00:00:00:00:00:00:24:8a:07:03:00:b3:c0:11";

fn write(root: &Path, rel: &str, contents: &str) -> anyhow::Result<()> {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap_or(root))?;
    fs::write(p, contents)?;
    Ok(())
}

fn link(root: &Path, rel: &str, target: &str) -> anyhow::Result<()> {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap_or(root))?;
    if fs::symlink_metadata(&p).is_err() {
        symlink(target, p)?;
    }
    Ok(())
}

/// A NIC as sysfs shows it: class entry, PCI device with vendor/device ids, driver and module.
fn nic(
    root: &Path,
    name: &str,
    pci: &str,
    vendor: &str,
    address: &str,
    driver: &str,
) -> anyhow::Result<()> {
    let dev = format!("sys/devices/pci0000:00/{pci}");
    write(root, &format!("{dev}/vendor"), &format!("{vendor}\n"))?;
    write(root, &format!("{dev}/device"), "0x1017\n")?;
    fs::create_dir_all(root.join(format!("sys/module/{driver}")))?;
    link(
        root,
        &format!("sys/bus/pci/drivers/{driver}/module"),
        &format!("../../../../module/{driver}"),
    )?;
    link(
        root,
        &format!("{dev}/driver"),
        &format!("../../../bus/pci/drivers/{driver}"),
    )?;
    write(
        root,
        &format!("sys/class/net/{name}/address"),
        &format!("{address}\n"),
    )?;
    write(root, &format!("sys/class/net/{name}/carrier"), "1\n")?;
    link(
        root,
        &format!("sys/class/net/{name}/device"),
        &format!("../../../devices/pci0000:00/{pci}"),
    )?;
    Ok(())
}

/// The `command` files under `sys/kernel/debug/i40e`, by PCI address.
fn commands(root: &Path) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let dir = root.join("sys/kernel/debug/i40e");
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let text = fs::read_to_string(entry.path().join("command"))?;
        out.insert(
            entry.file_name().to_string_lossy().into_owned(),
            json!(text),
        );
        fs::write(entry.path().join("command"), "")?;
    }
    Ok(out)
}

/// Our answers in the oracle's shape; builds the chain as the agent does (initialize runs).
fn ours(root: &Path, collect_lldp: bool, names: &[&str]) -> anyhow::Result<Value> {
    let generic = GenericHardwareManager::new(GenericConfig {
        root: root.to_path_buf(),
        ..GenericConfig::default()
    });
    let listed = generic.list_network_interfaces()?;
    let mlnx = MellanoxDeviceHardwareManager::new(root);
    let cna = IntelCnaHardwareManager::new(CnaConfig {
        root: root.to_path_buf(),
        collect_lldp,
        runner: None,
    });
    let mut interfaces = Map::new();
    for name in names {
        let base = listed
            .iter()
            .find(|n| n.name == *name)
            .ok_or_else(|| anyhow::anyhow!("{name} not listed"))?;
        let entry = match mlnx.get_interface_info(base) {
            Ok(i) => json!({
                "mac_address": i.mac_address, "client_id": i.client_id, "vendor": i.vendor,
                "product": i.product, "has_carrier": i.has_carrier,
            }),
            Err(e) if e.is_incompatible() => Value::Null,
            Err(e) => return Err(e.into()),
        };
        interfaces.insert(name.to_string(), entry);
    }
    let result = json!({
        "mlnx": {"support": mlnx.evaluate_hardware_support().0, "interfaces": interfaces},
        "cna": {"support": cna.evaluate_hardware_support().0},
    });
    let _chain = Chain::new(vec![
        Arc::new(generic) as Arc<dyn HardwareManager>,
        Arc::new(mlnx),
        Arc::new(cna),
    ])?;
    Ok(result)
}

fn compare(root: &Path, collect_lldp: bool, names: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![
        root.to_str().unwrap_or_default(),
        if collect_lldp { "1" } else { "0" },
    ];
    args.extend(names);
    let ipa = oracle::run_json("ipa_vendor.py", &args, None)?;
    let ipa_commands = commands(root)?;
    let mine = ours(root, collect_lldp, names)?;
    let my_commands = commands(root)?;
    assert_eq!(mine, ipa, "manager answers differ from IPA's");
    assert_eq!(
        my_commands, ipa_commands,
        "debugfs writes differ from IPA's"
    );
    Ok(())
}

#[test]
fn vendor_managers_match_ipa() -> anyhow::Result<()> {
    let tree = tempfile::tempdir()?;
    let root = tree.path();
    nic(root, "ib0", "0000:03:00.0", "0x15b3", IB_A, "mlx5_core")?;
    nic(root, "ib1", "0000:03:00.1", "0x15b3", IB_B, "mlx5_core")?;
    nic(
        root,
        "ens2",
        "0000:04:00.0",
        "0x15b3",
        "b8:59:9f:00:00:01",
        "mlx5_core",
    )?;
    nic(root, "ib2", "0000:07:00.0", "0x1077", IB_B, "ib_qib")?;
    nic(
        root,
        "eth0",
        "0000:00:03.0",
        "0x8086",
        "52:54:00:12:34:56",
        "e1000e",
    )?;
    nic(
        root,
        "eth1",
        "0000:05:00.0",
        "0x8086",
        "3c:fd:fe:00:00:01",
        "i40e",
    )?;
    write(root, "sys/kernel/debug/i40e/0000:05:00.0/command", "")?;
    write(root, "sys/kernel/debug/i40e/0000:05:00.1/command", "")?;
    let names = ["ib0", "ib1", "ens2", "ib2", "eth0", "eth1"];
    compare(root, true, &names)?;
    // Without ipa-collect-lldp the firmware agent is left alone.
    compare(root, false, &names)?;

    // Neither vendor's hardware.
    let plain = tempfile::tempdir()?;
    nic(
        plain.path(),
        "eth0",
        "0000:00:03.0",
        "0x8086",
        "52:54:00:12:34:56",
        "ixgbe",
    )?;
    write(plain.path(), "sys/kernel/debug/i40e/.keep/command", "")?;
    compare(plain.path(), true, &["eth0"])?;
    Ok(())
}
