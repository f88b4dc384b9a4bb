//! `root_device_hints`: the root-device hint parser (`instance_info.root_device` /
//! `properties.root_device`, as an object or a string holding one), the skip list
//! (`properties.skip_block_devices`) and the matcher, against a fixed list of five devices.
//!
//! Input: a JSON value (the hints); the same bytes are also tried as a string value, which is
//! how Ironic may store them.
//!
//! Checked: no panic; `matches` agrees with `mismatches` for every device; `first_match` is the
//! first matching device; a node's hints parse the same through `root_device_hints`.

#![no_main]

use std::sync::OnceLock;

use hardware_managers::Node;
use hardware_managers::hints::{
    HintKey, HintTarget, RootDeviceHints, SkipList, normalise_device_value, quote,
    root_device_hints,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const GIB: u64 = 1 << 30;

fn devices() -> &'static [HintTarget] {
    static DEVICES: OnceLock<Vec<HintTarget>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let mut sda = HintTarget {
            name: "/dev/sda".into(),
            size: 500 * GIB,
            rotational: true,
            model: Some("ST500DM002-1BD142".into()),
            vendor: Some("ATA".into()),
            serial: vec!["Z3T1ABCD".into()],
            wwn: vec!["0x5000c5006d1e2f3a".into()],
            hctl: Some("0:0:0:0".into()),
            by_path: Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1".into()),
            tran: Some("sata".into()),
            ..HintTarget::default()
        };
        sda.add_identifier(HintKey::Serial, "  Z3T1ABCD-udev ");
        let nvme = HintTarget {
            name: "/dev/nvme0n1".into(),
            size: 960 * GIB + 123_456_789,
            rotational: false,
            model: Some("Samsung SSD 980 PRO 1TB".into()),
            vendor: None,
            serial: vec!["S5GXNF0R123456".into()],
            wwn: vec!["eui.002538b111b2c3d4".into()],
            wwn_with_extension: vec!["eui.002538b111b2c3d4".into()],
            tran: Some("nvme".into()),
            ..HintTarget::default()
        };
        let vdb = HintTarget {
            name: "/dev/vdb".into(),
            size: 10 * GIB,
            rotational: true,
            model: Some(String::new()),
            vendor: Some("0x1af4".into()),
            serial: vec![],
            by_path: Some("/dev/disk/by-path/virtio-pci-0000:00:05.0".into()),
            tran: Some("virtio".into()),
            ..HintTarget::default()
        };
        let md = HintTarget {
            name: "/dev/md0".into(),
            size: 3 * GIB / 2,
            rotational: false,
            ..HintTarget::default()
        };
        let odd = HintTarget {
            name: "/dev/sdz".into(),
            size: 0,
            rotational: false,
            model: Some("Ünïcode Mödel ☃ <in> s== 10".into()),
            vendor: Some("   ".into()),
            serial: vec!["a b".into(), "A%20B".into()],
            wwn_vendor_extension: vec!["0x1".into()],
            hctl: Some("1:2:3:4".into()),
            ..HintTarget::default()
        };
        vec![sda, nvme, vdb, md, odd]
    })
}

fn exercise(hints: &RootDeviceHints) {
    let devices = devices();
    for d in devices {
        let mismatches = hints.mismatches(d);
        assert_eq!(
            hints.matches(d),
            mismatches.is_empty(),
            "matches/mismatches disagree for {} with {hints}",
            d.name
        );
        for m in &mismatches {
            let _ = m.to_string();
        }
    }
    let first = hints.first_match(devices);
    let expected = devices.iter().find(|d| hints.matches(d));
    assert_eq!(first.map(|d| &d.name), expected.map(|d| &d.name));
    let _ = hints.explain(devices);
    let _ = hints.to_string();
    let _ = hints.original();
}

fn try_value(value: &Value) {
    if let Ok(Some(hints)) = RootDeviceHints::from_value(value) {
        exercise(&hints);
        // The same hints through a node, as the deploy reads them.
        let mut instance_info = Map::new();
        instance_info.insert("root_device".into(), value.clone());
        let node = Node {
            instance_info,
            ..Node::default()
        };
        match root_device_hints(&node) {
            Ok(Some(again)) => assert_eq!(again, hints),
            other => panic!("hints parsed directly but not from the node: {other:?}"),
        }
    }
    if let Ok(skip) = SkipList::from_value(value) {
        let _ = skip.is_empty();
        let _ = skip.raid_volume_names();
        for hints in skip.disk_hints() {
            exercise(hints);
        }
        for d in devices() {
            if let Some(entry) = skip.matching_entry(d) {
                assert!(entry.matches(d));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        try_value(&value);
    }
    try_value(&Value::String(text.to_string()));
    let _ = normalise_device_value(text);
    let _ = quote(text);
});
