//! IPA 13 as the oracle for the `pci-devices`, `numa-topology`, `dmi-decode` and
//! `usb-devices` collectors (driver: `tests/oracle/ipa_collectors.py`).
//!
//! - On this host: our agent inspects end to end against the conductor shim with those
//!   collectors; the shim's stored inspection data must carry exactly IPA's keys, values and
//!   failure text from IPA's collectors run on the same machine.
//! - `dmidecode` texts (our fixtures, IPA's unit-test data, malformed tables): IPA's
//!   collector with `dmidecode` answering each text, against our parser.
//! - USB: IPA's selection on the lshw tree lshw builds for a fake sysfs tree (ids renamed for
//!   siblings, classes from the USB class codes and merged NICs), against ours on that tree.

use std::path::Path;
use std::time::Duration;

use e2e_tests::oracle;
use hardware_managers::collectors::{dmi::DmiCollected, usb};
use serde_json::{Value, json};

const COLLECTORS: [&str; 4] = ["pci-devices", "numa-topology", "dmi-decode", "usb-devices"];

/// IPA's `AccumulatedFailures.get_error()` of `failures`.
fn error_text(failures: &Value) -> Value {
    let list: Vec<&str> = failures
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        return Value::Null;
    }
    let items: Vec<String> = list.iter().map(|f| format!("* {f}")).collect();
    Value::String(format!(
        "The following errors were encountered:\n{}",
        items.join("\n")
    ))
}

#[test]
fn host_collectors_equal_ipa() -> anyhow::Result<()> {
    let ipa = oracle::run_json("ipa_collectors.py", &["host"], None)?;
    let dir = tempfile::tempdir()?;
    let node = oracle::inspect_host(
        dir.path(),
        &format!("ipa-inspection-collectors=default,{}", COLLECTORS.join(",")),
        Duration::from_secs(90),
    )?;
    let ours = &node["inspection_data"];
    let theirs = &ipa["data"];
    let keys = ["pci_devices", "numa_topology", "dmi", "usb_devices"];
    for key in keys {
        assert_eq!(
            ours.get(key),
            theirs.get(key),
            "{key}: ours (left) differs from IPA's (right)"
        );
    }
    // Equal on this host, and not vacuously.
    assert!(
        theirs["pci_devices"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );
    assert!(theirs["numa_topology"]["cpus"].is_array());
    assert_eq!(ours["error"], error_text(&ipa["failures"]));
    let mut ran = vec!["default"];
    ran.extend(COLLECTORS);
    assert_eq!(ours["configuration"]["collectors"], json!(ran));
    Ok(())
}

/// `dmidecode` outputs no table of which IPA's parser accepts as it is.
const MALFORMED: [(&str, &str); 4] = [
    (
        "no-count",
        "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tUse: System Memory\n",
    ),
    (
        "bad-count",
        "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tNumber Of Devices: two\n",
    ),
    (
        "list-count",
        "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tNumber Of Devices:\n\t\t2\n",
    ),
    (
        "odd-blocks",
        "# dmidecode 3.4\n\n\nHandle 0x0001 DMI type 0\nBIOS Information\n\tVendor: A\n\n\
         Handle 0x0002, DMI type 4, 9 bytes\r\nProcessor Information\r\n\tFlags:\r\n\t\tFPU\r\n\tVersion: x: y\n\n\
         Handle 0x0003, DMI type 17, 9 bytes\nMemory Device\n\tSize: 1 GB\n\n\
         Handle 0x0004, DMI type 16, 9 bytes\nPhysical Memory Array\n\tNumber Of Devices: 1_0\n\
         Handle 0x0005, DMI type 16, 9 bytes\n\tNumber Of Devices: 3\n",
    ),
];

#[test]
fn dmidecode_texts_parse_as_ipa() -> anyhow::Result<()> {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hardware-managers/testdata/dmidecode");
    let tmp = tempfile::tempdir()?;
    let mut args: Vec<String> = ["qemu-q35.txt", "server-2s.txt"]
        .iter()
        .map(|f| fixtures.join(f).display().to_string())
        .collect();
    for (name, text) in MALFORMED {
        let p = tmp.path().join(name);
        std::fs::write(&p, text)?;
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ipa = oracle::run_json("ipa_collectors.py", &[&["dmi"], &args[..]].concat(), None)?;
    let cases = ipa.as_object().expect("an object per text");
    assert_eq!(cases.len(), args.len() + 4, "our texts and IPA's four");
    for (name, case) in cases {
        let text = case["text"].as_str().unwrap_or_default();
        let ours = DmiCollected::from_output(text);
        assert_eq!(
            serde_json::to_value(&ours.dmi)?,
            case["data"].get("dmi").cloned().unwrap_or(Value::Null),
            "{name}: dmi differs (ours left)"
        );
        let failures: Vec<String> = ours.failure.into_iter().collect();
        assert_eq!(json!(failures), case["failures"], "{name}: failures differ");
    }
    Ok(())
}

/// One fake USB device: name, devnum, sysfs files, interface class codes.
type FakeUsb<'a> = (&'a str, u32, &'a [(&'a str, &'a str)], &'a [&'a str]);

/// A fake sysfs USB tree (root hubs are `usbN`).
fn usb_tree(root: &Path, devices: &[FakeUsb]) -> anyhow::Result<()> {
    use std::os::unix::fs::symlink;
    let bus_dir = root.join("sys/bus/usb/devices");
    std::fs::create_dir_all(&bus_dir)?;
    for (name, devnum, files, ifaces) in devices {
        let bus = name
            .trim_start_matches("usb")
            .split('-')
            .next()
            .unwrap_or("0");
        let mut dir = root.join(format!("sys/devices/pci0000:00/0000:00:0{bus}.0/usb{bus}"));
        if let Some((_, ports)) = name.split_once('-') {
            let parts: Vec<&str> = ports.split('.').collect();
            for i in 1..=parts.len() {
                dir = dir.join(format!("{bus}-{}", parts[..i].join(".")));
            }
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("busnum"), format!("{bus}\n"))?;
        std::fs::write(dir.join("devnum"), format!("{devnum}\n"))?;
        std::fs::write(dir.join("bConfigurationValue"), "1\n")?;
        for (f, v) in *files {
            std::fs::write(dir.join(f), format!("{v}\n"))?;
        }
        symlink(&dir, bus_dir.join(name))?;
        for (i, class) in ifaces.iter().enumerate() {
            let iname = format!("{name}:1.{i}");
            std::fs::create_dir_all(dir.join(&iname))?;
            std::fs::write(
                dir.join(&iname).join("bInterfaceClass"),
                format!("{class}\n"),
            )?;
            symlink(dir.join(&iname), bus_dir.join(&iname))?;
            if files.contains(&("nic", "yes")) && i == 0 {
                let net = dir.join(&iname).join("net/eth0");
                std::fs::create_dir_all(&net)?;
                std::fs::write(net.join("address"), "00:e0:4c:68:00:01\n")?;
                symlink(dir.join(&iname), net.join("device"))?;
                std::fs::create_dir_all(root.join("sys/class/net"))?;
                symlink(&net, root.join(format!("sys/class/net/eth{bus}")))?;
            }
        }
    }
    let ids = root.join("usr/share/misc/usb.ids");
    std::fs::create_dir_all(ids.parent().unwrap_or(root))?;
    std::fs::write(
        ids,
        "0bda  Realtek Semiconductor Corp.\n\t8153  RTL8153 Gigabit Ethernet Adapter\n",
    )?;
    Ok(())
}

#[test]
fn usb_selection_as_ipa_on_lshws_tree() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let hub: &[(&str, &str)] = &[("bDeviceClass", "09")];
    usb_tree(
        tmp.path(),
        &[
            ("usb1", 1, hub, &["09"]),
            ("usb2", 1, hub, &["09"]),
            ("usb3", 1, hub, &["09"]),
            ("usb4", 1, hub, &["09"]),
            ("usb5", 1, hub, &["09"]),
            ("1-1", 2, hub, &["09"]),
            ("1-1.1", 3, &[("bDeviceClass", "00")], &["03"]),
            (
                "1-1.2",
                4,
                &[("bDeviceClass", "ff"), ("manufacturer", "ACME")],
                &["ff"],
            ),
            (
                "2-3",
                5,
                &[
                    ("bDeviceClass", "00"),
                    ("idVendor", "0bda"),
                    ("idProduct", "8153"),
                    ("manufacturer", "Acme Corp. ~Special~"),
                ],
                &["ff", "0a"],
            ),
            ("3-1", 2, &[("bDeviceClass", "ff"), ("nic", "yes")], &["ff"]),
            (
                "4-1",
                7,
                &[
                    ("bDeviceClass", "ff"),
                    ("serial", "SN123"),
                    ("product", "Dongle"),
                    ("nic", "yes"),
                ],
                &["ff"],
            ),
            ("5-2", 2, &[("bDeviceClass", "00")], &["08"]),
        ],
    )?;
    // What lshw B.02.19 prints for that machine (trimmed to the fields IPA reads and the tree):
    // the PCI controllers are `usb` too (class bus), siblings are renamed `usb:N`, names come
    // from usb.ids then the device's strings, the NIC without a serial number was merged.
    let node = |id: &str, class: &str, handle: &str, extra: Value, children: Value| {
        let mut n = json!({"id": id, "class": class, "handle": handle, "children": children});
        if let (Some(n), Some(e)) = (n.as_object_mut(), extra.as_object()) {
            n.extend(e.clone());
        }
        n
    };
    let lshw = json!({"id": "computer", "class": "system", "children": [
        {"id": "core", "class": "bus", "children": [
            node("pci", "bridge", "PCIBUS:0000:00", json!({}), json!([
                node("usb:0", "bus", "PCI:0000:00:01.0", json!({}), json!([
                    node("usbhost", "bus", "USB:1:1", json!({"product": "xHCI Host Controller"}), json!([
                        node("usb", "bus", "USB:1:2", json!({"description": "USB hub"}), json!([
                            node("usb:0", "input", "USB:1:3", json!({}), json!([])),
                            node("usb:1", "generic", "USB:1:4", json!({"vendor": "ACME"}), json!([])),
                        ])),
                    ])),
                ])),
                node("usb:1", "bus", "PCI:0000:00:02.0", json!({}), json!([
                    node("usbhost", "bus", "USB:2:1", json!({}), json!([
                        node("usb", "generic", "USB:2:5",
                             json!({"vendor": "Acme Corp.", "product": "RTL8153 Gigabit Ethernet Adapter"}),
                             json!([])),
                    ])),
                ])),
                node("usb:2", "bus", "PCI:0000:00:03.0", json!({}), json!([
                    node("usbhost", "bus", "USB:3:1", json!({}), json!([
                        node("usb", "network", "USB:3:2", json!({"logicalname": "eth3"}), json!([])),
                    ])),
                ])),
                node("usb:3", "bus", "PCI:0000:00:04.0", json!({}), json!([
                    node("usbhost", "bus", "USB:4:1", json!({}), json!([
                        node("usb", "generic", "USB:4:7", json!({"product": "Dongle", "serial": "SN123"}), json!([])),
                    ])),
                ])),
                node("usb:4", "bus", "PCI:0000:00:05.0", json!({}), json!([
                    node("usbhost", "bus", "USB:5:1", json!({}), json!([
                        node("usb", "storage", "USB:5:2", json!({}), json!([
                            node("scsi", "storage", "", json!({}), json!([])),
                        ])),
                    ])),
                ])),
            ])),
        ]},
    ]});
    let lshw_file = tmp.path().join("lshw.json");
    std::fs::write(&lshw_file, serde_json::to_vec(&json!([lshw]))?)?;
    let lshw_arg = lshw_file.display().to_string();
    let ipa = oracle::run_json("ipa_collectors.py", &["usb", &lshw_arg], None)?;
    assert_eq!(ipa["failures"], json!([]));
    let ours = serde_json::to_value(usb::collect(tmp.path()))?;
    assert_eq!(ours, ipa["data"]["usb_devices"]);
    assert_eq!(ours.as_array().map(Vec::len), Some(2));
    Ok(())
}
