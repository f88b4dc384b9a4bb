use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

/// A fake sysfs: devices under one PCI controller per bus, linked from `bus/usb/devices`.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(root: &Path) -> Self {
        fs::create_dir_all(root.join("sys/bus/usb/devices")).unwrap();
        Tree {
            root: root.to_path_buf(),
        }
    }

    fn dev_dir(&self, name: &str) -> PathBuf {
        let (bus, _) = name.split_once('-').unwrap_or((&name[3..], ""));
        let mut dir = self
            .root
            .join(format!("sys/devices/pci0000:00/0000:00:0{bus}.0/usb{bus}"));
        if let Some((_, ports)) = name.split_once('-') {
            let parts: Vec<&str> = ports.split('.').collect();
            for i in 1..=parts.len() {
                dir = dir.join(format!("{bus}-{}", parts[..i].join(".")));
            }
        }
        dir
    }

    /// Device `name` with `files`, and interfaces `ifaces` (class codes) of configuration 1.
    fn device(&self, name: &str, devnum: u32, files: &[(&str, &str)], ifaces: &[&str]) {
        let dir = self.dev_dir(name);
        fs::create_dir_all(&dir).unwrap();
        let bus = name.trim_start_matches("usb").split('-').next().unwrap();
        fs::write(dir.join("busnum"), format!("{bus}\n")).unwrap();
        fs::write(dir.join("devnum"), format!("{devnum}\n")).unwrap();
        fs::write(dir.join("bConfigurationValue"), "1\n").unwrap();
        for (f, v) in files {
            fs::write(dir.join(f), format!("{v}\n")).unwrap();
        }
        symlink(&dir, self.root.join("sys/bus/usb/devices").join(name)).unwrap();
        for (i, class) in ifaces.iter().enumerate() {
            let iname = format!("{name}:1.{i}");
            let idir = dir.join(&iname);
            fs::create_dir_all(&idir).unwrap();
            fs::write(idir.join("bInterfaceClass"), format!("{class}\n")).unwrap();
            symlink(&idir, self.root.join("sys/bus/usb/devices").join(iname)).unwrap();
        }
    }

    /// A network interface on `iface` (`3-1:1.0`) with `mac`.
    fn nic(&self, iface: &str, ifname: &str, mac: &str) {
        let dev = iface.split(':').next().unwrap();
        let dir = self.dev_dir(dev).join(iface).join("net").join(ifname);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
        symlink(dir.parent().unwrap().parent().unwrap(), dir.join("device")).unwrap();
        let class = self.root.join("sys/class/net");
        fs::create_dir_all(&class).unwrap();
        symlink(&dir, class.join(ifname)).unwrap();
    }
}

#[test]
fn only_lone_generic_devices_as_lshw_and_ipa_see_them() {
    let tmp = tempfile::tempdir().unwrap();
    let t = Tree::new(tmp.path());
    for bus in 1..=6 {
        t.device(&format!("usb{bus}"), 1, &[("bDeviceClass", "09")], &["09"]);
    }
    // Bus 1: a hub alone on the root hub (class hub), two devices behind it (siblings).
    t.device("1-1", 2, &[("bDeviceClass", "09")], &["09"]);
    t.device("1-1.1", 3, &[("bDeviceClass", "00")], &["03"]);
    t.device(
        "1-1.2",
        4,
        &[("bDeviceClass", "ff"), ("manufacturer", "ACME")],
        &["ff"],
    );
    // Bus 2: vendor-specific, alone; vendor from its string (cut at '~'), product from usb.ids.
    t.device(
        "2-3",
        5,
        &[
            ("bDeviceClass", "00"),
            ("idVendor", "0bda"),
            ("idProduct", "8153"),
            ("manufacturer", "Acme Corp. ~Special~"),
        ],
        &["ff", "0a"],
    );
    // Bus 3: a NIC on it and no serial number: lshw merges it into `network`.
    t.device("3-1", 2, &[("bDeviceClass", "ff")], &["ff"]);
    t.nic("3-1:1.0", "eth8", "00:e0:4c:68:00:01");
    // Bus 4: a NIC, but a serial number that is not its MAC: lshw does not merge.
    t.device(
        "4-1",
        7,
        &[
            ("bDeviceClass", "ff"),
            ("serial", "SN123"),
            ("product", "Dongle\tX"),
        ],
        &["ff"],
    );
    t.nic("4-1:1.0", "eth9", "00:e0:4c:68:00:02");
    // Bus 5: mass storage.
    t.device("5-2", 2, &[("bDeviceClass", "00")], &["08"]);
    // Bus 6: nothing known about it.
    t.device(
        "6-1",
        3,
        &[("bDeviceClass", "ef"), ("idVendor", "abcd")],
        &["0e"],
    );
    t.device("6-2", 4, &[("bDeviceClass", "ef")], &[]);
    let usb_ids = tmp.path().join("usr/share/misc/usb.ids");
    fs::create_dir_all(usb_ids.parent().unwrap()).unwrap();
    fs::write(
        &usb_ids,
        "# comment\n0bda  Realtek Semiconductor Corp.\n\t8153  RTL8153 Gigabit Ethernet Adapter\n",
    )
    .unwrap();
    let got = serde_json::to_value(collect(tmp.path())).unwrap();
    assert_eq!(
        got,
        json!([
            {"product": "RTL8153 Gigabit Ethernet Adapter", "vendor": "Acme Corp.", "handle": "USB:2:5"},
            {"product": "DongleX", "vendor": "", "handle": "USB:4:7"},
        ])
    );
}

#[test]
fn no_usb_bus_no_devices() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(collect(tmp.path()).is_empty());
}

#[test]
fn strings_as_lshw_scans_them() {
    assert_eq!(lshw_string(b"Logitech\n"), "Logitech");
    assert_eq!(lshw_string(b"  Spaced  \n"), "Spaced");
    assert_eq!(lshw_string(b"{braces}\n"), "");
    assert_eq!(lshw_string("Caf\u{e9} Inc".as_bytes()), "Caf");
    assert_eq!(lshw_string(b"a\x01b|c"), "ab");
    assert_eq!(lshw_string(&[b'x'; 120]), "x".repeat(80));
}

#[test]
fn usb_ids_first_file_on_the_path_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |p: &str, t: &str| {
        let p = tmp.path().join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, t).unwrap();
    };
    write(
        "usr/share/misc/usb.ids",
        "1234  Old\n\t0001  Old thing\n\t0002  Two\n",
    );
    write(
        "usr/share/hwdata/usb.ids",
        "1234  New\n\t0001  New thing\nC 00  Class\n\t01  Sub\n",
    );
    let ids = ids::UsbIds::load(tmp.path());
    assert_eq!(ids.describe(0x1234, 1), ("New".into(), "New thing".into()));
    assert_eq!(ids.describe(0x1234, 2), ("New".into(), "Two".into()));
    assert_eq!(ids.describe(0x1234, 3), ("New".into(), String::new()));
    assert_eq!(ids.describe(0x9999, 1), (String::new(), String::new()));
}
