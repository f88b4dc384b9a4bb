//! The generic manager against fake /sys, /proc and /dev trees, plus one read-only smoke test
//! on the real root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::error::{HardwareError, HardwareResult};

/// A fake filesystem root in a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes `contents` to `rel`, creating parent directories.
    fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, contents).unwrap();
        self
    }

    /// Creates directory `rel`.
    fn dir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.path(rel)).unwrap();
        self
    }

    /// Creates symlink `rel` pointing at `target` (taken verbatim, usually relative).
    fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
        self
    }

    fn manager(&self) -> GenericHardwareManager {
        self.manager_with(Vec::new())
    }

    fn manager_with(&self, allowed: Vec<PathBuf>) -> GenericHardwareManager {
        GenericHardwareManager::new(GenericConfig {
            root: self.root().to_path_buf(),
            bootif: Some("01-aa-bb-cc-dd-ee-ff".into()),
            allowed_devices: allowed,
            ..GenericConfig::default()
        })
    }

    /// A block device `name` of `sectors` 512-byte sectors as a plain sys/block directory.
    fn block(&self, name: &str, sectors: u64) -> &Self {
        self.block_at(&format!("sys/block/{name}"), sectors)
    }

    fn block_at(&self, rel: &str, sectors: u64) -> &Self {
        self.file(&format!("{rel}/size"), format!("{sectors}\n"))
            .file(&format!("{rel}/queue/rotational"), "0\n")
            .file(&format!("{rel}/queue/logical_block_size"), "512\n")
            .file(&format!("{rel}/queue/physical_block_size"), "512\n")
    }
}

const GIB_SECTORS: u64 = (1 << 30) / 512;

// ---------------------------------------------------------------------------------------------
// Network interfaces

fn net_tree() -> Tree {
    let t = Tree::new();
    // virtio NIC, as on this VM.
    t.file(
        "sys/devices/pci0000:00/0000:00:03.0/virtio2/vendor",
        "0x1af4\n",
    )
    .file(
        "sys/devices/pci0000:00/0000:00:03.0/virtio2/device",
        "0x0001\n",
    )
    .dir("sys/bus/virtio/drivers/virtio_net")
    .link(
        "sys/devices/pci0000:00/0000:00:03.0/virtio2/driver",
        "../../../../bus/virtio/drivers/virtio_net",
    )
    .file("sys/class/net/eth0/address", "02:FC:00:00:00:01\n")
    .file("sys/class/net/eth0/carrier", "1\n")
    .file("sys/class/net/eth0/speed", "-1\n")
    .link(
        "sys/class/net/eth0/device",
        "../../../devices/pci0000:00/0000:00:03.0/virtio2",
    );
    // Intel NIC without link.
    t.file("sys/devices/pci0000:3a/0000:3b:00.0/vendor", "0x8086\n")
        .file("sys/devices/pci0000:3a/0000:3b:00.0/device", "0x1572\n")
        .link(
            "sys/devices/pci0000:3a/0000:3b:00.0/driver",
            "../../../bus/pci/drivers/i40e",
        )
        .file("sys/class/net/eth1/address", "aa:bb:cc:dd:ee:ff\n")
        .file("sys/class/net/eth1/carrier", "0\n")
        .file("sys/class/net/eth1/speed", "10000\n")
        .link(
            "sys/class/net/eth1/device",
            "../../../devices/pci0000:3a/0000:3b:00.0",
        );
    // Physical NIC with a placeholder MAC: dropped.
    t.file("sys/class/net/eth2/address", "fa:16:3e:00:00:01\n")
        .link(
            "sys/class/net/eth2/device",
            "../../../devices/pci0000:3a/0000:3b:00.0",
        );
    // Bond slave: its permanent MAC is listed, not the bond's.
    t.file("sys/class/net/eth3/address", "02:00:00:00:00:99\n")
        .file(
            "sys/class/net/eth3/bonding_slave/perm_hwaddr",
            "02:00:00:00:00:03\n",
        )
        .link(
            "sys/class/net/eth3/device",
            "../../../devices/pci0000:3a/0000:3b:00.0",
        );
    // VLAN, bond, loopback and a bridge.
    t.file(
        "sys/devices/virtual/net/eth0.100/address",
        "02:fc:00:00:00:01\n",
    )
    .file("sys/devices/virtual/net/eth0.100/carrier", "1\n")
    .link(
        "sys/class/net/eth0.100",
        "../../devices/virtual/net/eth0.100",
    )
    .file("sys/class/net/bond0/address", "02:00:00:00:00:99\n")
    .dir("sys/class/net/bond0/bonding")
    .file("sys/class/net/lo/address", "00:00:00:00:00:00\n")
    .file("sys/class/net/virbr0/address", "52:54:00:00:00:01\n")
    .dir("sys/class/net/virbr0/bridge");
    t.file(
        "ifaddrs",
        "eth0 192.0.2.2\neth0 fe80::1\neth0 fd00::2\neth1 fe80::2\nlo 127.0.0.1\n",
    );
    // Supported link modes: eth1 (X710) 1000baseX + 10000baseSR; the VLAN would report its
    // parent's, but lshw (so IPA) has no virtual device.
    t.file("ethtool", "eth1 0 a00\neth0.100 0 a00\neth0 0 0\n");
    t
}

#[test]
fn network_interfaces() {
    let ifaces = net_tree().manager().list_network_interfaces().unwrap();
    let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["bond0", "eth0", "eth0.100", "eth1", "eth3"]);

    let eth0 = &ifaces[1];
    assert_eq!(
        serde_json::to_value(eth0).unwrap(),
        json!({
            "name": "eth0", "mac_address": "02:fc:00:00:00:01", "ipv4_address": "192.0.2.2",
            "ipv6_address": "fd00::2", "has_carrier": true, "lldp": null, "vendor": "0x1af4",
            "product": "0x0001", "client_id": null, "biosdevname": null, "speed_mbps": null,
            "pci_address": "virtio2", "driver": "virtio_net"
        })
    );
    let eth1 = &ifaces[3];
    assert_eq!(eth1.ipv4_address, None);
    assert_eq!(eth1.ipv6_address.as_deref(), Some("fe80::2%eth1"));
    assert!(!eth1.has_carrier);
    assert_eq!(eth1.speed_mbps, Some(10000));
    assert_eq!(eth1.pci_address.as_deref(), Some("0000:3b:00.0"));
    assert_eq!(eth1.driver.as_deref(), Some("i40e"));
    assert_eq!(eth1.vendor.as_deref(), Some("0x8086"));
    assert_eq!(ifaces[4].mac_address, "02:00:00:00:00:03");

    let vlan = &ifaces[2];
    assert!(vlan.has_carrier);
    assert_eq!(vlan.speed_mbps, None, "virtual: not in lshw's tree");
    assert_eq!(
        (vlan.vendor.as_ref(), vlan.pci_address.as_ref()),
        (None, None)
    );
    let bond = &ifaces[0];
    assert!(!bond.has_carrier, "unreadable carrier is false");
}

// ---------------------------------------------------------------------------------------------
// CPU

const X86_CPUINFO: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz
cpu MHz\t\t: 2095.078
physical id\t: 0
flags\t\t: fpu vme de pse tsc
bugs\t\t: spectre_v1

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz
cpu MHz\t\t: 2095.078
physical id\t: 1
flags\t\t: fpu vme de pse tsc

";

const AARCH64_CPUINFO: &str = "\
processor\t: 0
BogoMIPS\t: 125.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 125.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd0c
CPU revision\t: 1
";

#[test]
fn cpu_x86() {
    let t = Tree::new();
    t.file("proc/cpuinfo", X86_CPUINFO);
    let cpu = t.manager().get_cpus().unwrap();
    assert_eq!(cpu.model_name, "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz");
    assert_eq!(cpu.count, 2);
    assert_eq!(cpu.flags, vec!["fpu", "vme", "de", "pse", "tsc"]);
    // lscpu >= 2.37 (what IPA 13 runs) has no `CPU MHz` line: no cpufreq, no frequency.
    assert_eq!(
        cpu.frequency, "",
        "cpuinfo's current cpu MHz is not lscpu's"
    );
    assert_eq!(cpu.socket_count, Some(2), "from physical id");
    assert_eq!(cpu.architecture, std::env::consts::ARCH);

    t.file(
        "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
        "3700000\n",
    );
    assert_eq!(t.manager().get_cpus().unwrap().frequency, "3700.0000");
    // lscpu's `CPU max MHz` is the highest of all CPUs (hybrid cores), not cpu0's.
    t.file(
        "sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq",
        "4850000\n",
    );
    assert_eq!(t.manager().get_cpus().unwrap().frequency, "4850.0000");
}

#[test]
fn cpu_count_is_present_cpus() {
    // lscpu's `CPU(s)` counts present CPUs: with SMT off (`nosmt`), cpuinfo lists the two
    // online ones of four.
    let t = Tree::new();
    t.file("proc/cpuinfo", X86_CPUINFO)
        .file("sys/devices/system/cpu/present", "0-3\n")
        .file("sys/devices/system/cpu/online", "0-1\n");
    assert_eq!(t.manager().get_cpus().unwrap().count, 4);
    let t = Tree::new();
    t.file("proc/cpuinfo", "Features\t: fp\n")
        .file("sys/devices/system/cpu/online", "0-2,5\n");
    assert_eq!(
        t.manager().get_cpus().unwrap().count,
        4,
        "online when nothing else"
    );
}

#[test]
fn cpu_aarch64() {
    let t = Tree::new();
    t.file("proc/cpuinfo", AARCH64_CPUINFO)
        .file(
            "sys/devices/system/cpu/cpu0/topology/physical_package_id",
            "0\n",
        )
        .file(
            "sys/devices/system/cpu/cpu1/topology/physical_package_id",
            "0\n",
        );
    let cpu = t.manager().get_cpus().unwrap();
    assert_eq!(cpu.model_name, "Neoverse-N1");
    assert_eq!(cpu.count, 2);
    assert_eq!(cpu.flags[..3], ["fp", "asimd", "evtstrm"]);
    assert_eq!(cpu.frequency, "");
    assert_eq!(cpu.socket_count, Some(1), "from topology");
}

#[test]
fn cpu_without_cpuinfo_is_an_error() {
    let err = Tree::new().manager().get_cpus().unwrap_err();
    assert!(matches!(err, HardwareError::Io { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Memory

/// An SMBIOS type-17 record of `mib` MiB.
fn dimm(mib: u16) -> Vec<u8> {
    let mut r = vec![0u8; 0x28];
    r[0] = 17;
    r[1] = 0x28;
    r[0x0C..0x0E].copy_from_slice(&mib.to_le_bytes());
    r.extend_from_slice(b"DIMM A1\0\0");
    r
}

#[test]
fn memory_from_dmi() {
    let t = Tree::new();
    t.file(
        "proc/meminfo",
        "MemTotal:       24683116 kB\nMemFree:  100 kB\n",
    )
    .file("sys/firmware/dmi/entries/17-0/raw", dimm(8192))
    .file("sys/firmware/dmi/entries/17-1/raw", dimm(8192))
    .file("sys/firmware/dmi/entries/17-2/raw", dimm(0))
    .file("sys/firmware/dmi/entries/16-0/raw", [16u8, 4, 0, 0]);
    let mem = t.manager().get_memory().unwrap();
    assert_eq!(mem.total, 24683116 * 1024);
    assert_eq!(mem.physical_mb, Some(16384));
}

#[test]
fn memory_from_hotplug_blocks_or_unknown() {
    let t = Tree::new();
    t.file("proc/meminfo", "MemTotal: 1000 kB\n");
    assert_eq!(t.manager().get_memory().unwrap().physical_mb, None);
    t.file("sys/devices/system/memory/block_size_bytes", "8000000\n")
        .file("sys/devices/system/memory/memory0/online", "1\n")
        .file("sys/devices/system/memory/memory1/online", "1\n")
        .file("sys/devices/system/memory/memory2/online", "1\n")
        .file("sys/devices/system/memory/memory3/online", "0\n");
    assert_eq!(t.manager().get_memory().unwrap().physical_mb, Some(384));
}

// ---------------------------------------------------------------------------------------------
// Block devices

fn disk_tree() -> Tree {
    let t = Tree::new();
    // virtio disk, as on this VM.
    let vda = "sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
    t.block_at(vda, 256 * GIB_SECTORS)
        .file(&format!("{vda}/queue/rotational"), "1\n")
        .file(&format!("{vda}/queue/physical_block_size"), "4096\n")
        .file(&format!("{vda}/serial"), "overlayblk")
        .file(&format!("{vda}/dev"), "254:0\n")
        .file(
            "sys/devices/pci0000:00/0000:00:02.0/virtio1/vendor",
            "0x1af4\n",
        )
        .link(&format!("{vda}/device"), "../../../virtio1")
        .link(
            "sys/block/vda",
            "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
        );
    // NVMe namespace with two partitions.
    let nvme = "sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
    t.block_at(nvme, 1000 * GIB_SECTORS)
        .file(&format!("{nvme}/wwid"), "eui.002538b111b2c3d4\n")
        .file(
            "sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/model",
            "Samsung SSD 980 PRO 1TB    \n",
        )
        .file(
            "sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/serial",
            "  S5GXNF0R123456  \n",
        )
        .link(&format!("{nvme}/device"), "../../nvme0")
        .block_at(&format!("{nvme}/nvme0n1p1"), 1048576)
        .file(&format!("{nvme}/nvme0n1p1/partition"), "1\n")
        .file(&format!("{nvme}/nvme0n1p1/dev"), "259:1\n")
        .block_at(&format!("{nvme}/nvme0n1p2"), 10 * GIB_SECTORS)
        .file(&format!("{nvme}/nvme0n1p2/partition"), "2\n")
        .link(
            "sys/block/nvme0n1",
            "../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1",
        )
        .file(
            "run/udev/data/b259:1",
            "E:ID_FS_UUID=1234-ABCD\nE:ID_PART_ENTRY_UUID=0f0e-01\n",
        );
    // SATA disk of 5 GiB, with a partition and a by-path link.
    let sda = "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    t.block_at(&format!("{sda}/block/sda"), 5 * GIB_SECTORS)
        .file(&format!("{sda}/block/sda/queue/rotational"), "1\n")
        .link(&format!("{sda}/block/sda/device"), "../../../0:0:0:0")
        .file(&format!("{sda}/vendor"), "ATA     \n")
        .file(&format!("{sda}/model"), "QEMU HARDDISK   \n")
        .file(&format!("{sda}/wwid"), "naa.5000c500a1b2c3d4\n")
        .file(&format!("{sda}/type"), "0\n")
        .dir(&format!("{sda}/scsi_device/0:0:0:0"))
        .block_at(&format!("{sda}/block/sda/sda1"), 2 * GIB_SECTORS)
        .file(&format!("{sda}/block/sda/sda1/partition"), "1\n")
        .link(
            "sys/block/sda",
            "../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
        )
        .link("dev/disk/by-path/pci-0000:00:1f.2-ata-1", "../../sda")
        .link("dev/disk/by-path/pci-0000:00:1f.2-ata-1.0", "../../sda")
        .link(
            "dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1",
            "../../sda1",
        );
    // A 1 GiB disk, an optical drive, RAM disks, loops, device-mapper and md.
    t.block("sdb", GIB_SECTORS)
        .block("sr0", 2 * GIB_SECTORS)
        .file("sys/block/sr0/device/type", "5\n")
        .block("ram0", 64 * 2048)
        .block("zram0", 4 * GIB_SECTORS)
        .block("fd0", 2880)
        .block("loop0", 10 * GIB_SECTORS)
        .block("loop1", 0)
        .block("nvme1n1", 0)
        .block("dm-0", 20 * GIB_SECTORS)
        .file("sys/block/dm-0/dm/uuid", "LVM-abcdef\n")
        .block("dm-1", 100 * GIB_SECTORS)
        .file("sys/block/dm-1/dm/uuid", "mpath-3600508b1001c4d0c\n")
        .block("sdc", 100 * GIB_SECTORS)
        .link("sys/block/sdc/holders/dm-1", "../../dm-1")
        .block("md0", 50 * GIB_SECTORS)
        .file("sys/block/md0/md/level", "raid1\n")
        .block("md127", 50 * GIB_SECTORS)
        .file("sys/block/md127/md/level", "container\n")
        .block("nvme0c0n1", 1000 * GIB_SECTORS)
        .file("sys/block/nvme0c0n1/hidden", "1\n");
    t
}

fn names(devices: &[BlockDevice]) -> Vec<&str> {
    devices.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn block_devices_without_partitions() {
    let t = disk_tree();
    let disks = t.manager().list_block_devices(false).unwrap();
    assert_eq!(
        names(&disks),
        vec![
            "/dev/dm-1",
            "/dev/md0",
            "/dev/nvme0n1",
            "/dev/sda",
            "/dev/sdb",
            "/dev/vda"
        ]
    );

    let vda = disks.iter().find(|d| d.name == "/dev/vda").unwrap();
    assert_eq!(
        serde_json::to_value(vda).unwrap(),
        json!({
            "name": "/dev/vda", "model": null, "size": 274877906944u64, "rotational": true,
            "wwn": null, "serial": "overlayblk", "vendor": "0x1af4", "wwn_with_extension": null,
            "wwn_vendor_extension": null, "hctl": null, "by_path": null, "logical_sectors": 512,
            "physical_sectors": 4096, "tran": null
        })
    );

    let nvme = disks.iter().find(|d| d.name == "/dev/nvme0n1").unwrap();
    assert_eq!(nvme.model.as_deref(), Some("Samsung SSD 980 PRO 1TB"));
    assert_eq!(nvme.serial.as_deref(), Some("S5GXNF0R123456"));
    assert_eq!(nvme.wwn.as_deref(), Some("eui.002538b111b2c3d4"));
    assert_eq!(nvme.tran.as_deref(), Some("nvme"));
    assert!(!nvme.rotational);

    let sda = disks.iter().find(|d| d.name == "/dev/sda").unwrap();
    assert_eq!(sda.size, 5 << 30);
    assert_eq!(sda.vendor.as_deref(), Some("ATA"));
    assert_eq!(sda.model.as_deref(), Some("QEMU HARDDISK"));
    assert_eq!(sda.wwn.as_deref(), Some("0x5000c500a1b2c3d4"));
    assert_eq!(
        sda.wwn_with_extension.as_deref(),
        Some("0x5000c500a1b2c3d4")
    );
    assert_eq!(sda.hctl.as_deref(), Some("0:0:0:0"));
    assert_eq!(
        sda.by_path.as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1")
    );
    assert_eq!(sda.tran.as_deref(), Some("sata"));
    assert!(sda.rotational);

    let sdb = disks.iter().find(|d| d.name == "/dev/sdb").unwrap();
    assert_eq!(
        (sdb.model.as_ref(), sdb.tran.as_ref(), sdb.hctl.as_ref()),
        (None, None, None)
    );
}

#[test]
fn block_devices_with_partitions() {
    let t = disk_tree();
    let all = t.manager().list_block_devices(true).unwrap();
    assert_eq!(
        names(&all),
        vec![
            "/dev/dm-1",
            "/dev/md0",
            "/dev/md127",
            "/dev/nvme0n1",
            "/dev/nvme0n1p1",
            "/dev/nvme0n1p2",
            "/dev/sda",
            "/dev/sda1",
            "/dev/sdb",
            "/dev/vda"
        ]
    );
    let p1 = all.iter().find(|d| d.name == "/dev/nvme0n1p1").unwrap();
    assert_eq!(p1.size, 512 << 20);
    assert_eq!(p1.uuid.as_deref(), Some("1234-ABCD"));
    assert_eq!(p1.partuuid.as_deref(), Some("0f0e-01"));
    let sda1 = all.iter().find(|d| d.name == "/dev/sda1").unwrap();
    assert!(
        sda1.rotational,
        "partitions inherit the disk's rotational flag"
    );
    assert_eq!(
        sda1.by_path.as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1")
    );
    // uuid/partuuid stay internal.
    let v = serde_json::to_value(p1).unwrap();
    assert!(v.get("uuid").is_none() && v.get("partuuid").is_none());
}

#[test]
fn loop_devices_only_when_allowed() {
    let t = disk_tree();
    let allowed = vec![PathBuf::from("/dev/loop0"), PathBuf::from("/dev/loop1")];
    let disks = t.manager_with(allowed).list_block_devices(false).unwrap();
    let names = names(&disks);
    assert!(names.contains(&"/dev/loop0"));
    assert!(
        !names.contains(&"/dev/loop1"),
        "empty loop device stays hidden"
    );
}

#[test]
fn missing_sys_block_is_an_error() {
    let err = Tree::new().manager().list_block_devices(false).unwrap_err();
    assert!(matches!(err, HardwareError::Io { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Install device

#[test]
fn install_device_is_smallest_disk_of_at_least_4_gib() {
    let t = disk_tree();
    assert_eq!(t.manager().get_os_install_device(None).unwrap(), "/dev/sda");
    // A node without hints behaves the same.
    let node = Node::default();
    assert_eq!(
        t.manager().get_os_install_device(Some(&node)).unwrap(),
        "/dev/sda"
    );
    // With an allow-list only allowed devices are candidates: the 10 GiB loop device wins
    // over the smaller, not allowed, 5 GiB disk.
    let m = t.manager_with(vec![PathBuf::from("/dev/loop0")]);
    assert_eq!(m.get_os_install_device(None).unwrap(), "/dev/loop0");
    // An allow-list naming nothing that exists leaves no candidate.
    let m = t.manager_with(vec![PathBuf::from("/dev/loop9")]);
    assert!(m.get_os_install_device(None).is_err());
}

#[test]
fn install_device_ties_break_by_name_and_exact_4_gib_counts() {
    let t = Tree::new();
    t.block("vdc", 8 * GIB_SECTORS)
        .block("vdb", 4 * GIB_SECTORS)
        .block("vda", 4 * GIB_SECTORS);
    assert_eq!(t.manager().get_os_install_device(None).unwrap(), "/dev/vda");
}

#[test]
fn install_device_none_large_enough() {
    let t = Tree::new();
    t.block("vda", 4 * GIB_SECTORS - 1)
        .block("vdb", GIB_SECTORS);
    let err = t.manager().get_os_install_device(None).unwrap_err();
    assert!(matches!(err, HardwareError::DeviceNotFound(_)), "{err:?}");
    assert_eq!(err.code(), 404);
}

/// A node with `root_device` hints in instance_info and/or properties and an optional skip list.
fn hinted_node(instance: Option<Value>, properties: Option<Value>, skip: Option<Value>) -> Node {
    let mut node = Node::default();
    if let Some(h) = instance {
        node.instance_info.insert("root_device".into(), h);
    }
    if let Some(h) = properties {
        node.properties.insert("root_device".into(), h);
    }
    if let Some(s) = skip {
        node.properties.insert("skip_block_devices".into(), s);
    }
    node
}

fn install_device(t: &Tree, node: &Node) -> HardwareResult<String> {
    t.manager().get_os_install_device(Some(node))
}

#[test]
fn install_device_with_hints() {
    let t = disk_tree();
    // Listing order: dm-1 (100 GiB), md0 (50), nvme0n1 (1000), sda (5, rotational), sdb (1),
    // vda (256, rotational).
    let table = [
        (json!({"serial": "S5GXNF0R123456"}), "/dev/nvme0n1"),
        (json!({"serial": "s5gxnf0r123456"}), "/dev/nvme0n1"),
        (json!({"name": "vda"}), "/dev/vda"),
        (json!({"name": "/dev/md0"}), "/dev/md0"),
        (json!({"size": ">= 100", "rotational": false}), "/dev/dm-1"),
        (json!({"size": ">= 100", "rotational": true}), "/dev/vda"),
        (json!({"size": "<range-in> ( 100 1000 ]"}), "/dev/nvme0n1"),
        (json!({"wwn": "0x5000C500A1B2C3D4"}), "/dev/sda"),
        (json!({"wwn": "<in> eui."}), "/dev/nvme0n1"),
        (json!({"hctl": "0:0:0:0"}), "/dev/sda"),
        (json!({"by_path": "<in> ata-1"}), "/dev/sda"),
        (json!({"tran": "nvme"}), "/dev/nvme0n1"),
        (json!({"tran": "sata", "model": "<in> qemu"}), "/dev/sda"),
        (json!({"vendor": "0x1af4"}), "/dev/vda"),
        (json!({"model": "<in> samsung"}), "/dev/nvme0n1"),
        // Hints override the 4 GiB rule, as in IPA.
        (json!({"size": 1}), "/dev/sdb"),
        (json!("{\"name\": \"sdb\"}"), "/dev/sdb"),
    ];
    for (hints, expected) in table {
        let node = hinted_node(Some(hints.clone()), None, None);
        assert_eq!(install_device(&t, &node).unwrap(), expected, "{hints}");
    }
    // instance_info first, properties as the fallback (also as a JSON string).
    let node = hinted_node(
        Some(json!({"name": "sda"})),
        Some(json!({"name": "vda"})),
        None,
    );
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/sda");
    let node = hinted_node(Some(json!({})), Some(json!("{\"name\": \"vda\"}")), None);
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/vda");
    // Empty hints are no hints.
    let node = hinted_node(Some(json!(null)), Some(json!({})), None);
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/sda");
}

#[test]
fn install_device_hints_see_every_serial_and_wwn() {
    let t = disk_tree();
    let sda = "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda";
    t.file(&format!("{sda}/dev"), "8:0\n").file(
        "run/udev/data/b8:0",
        "E:ID_SERIAL=QEMU_HARDDISK_QM00001\nE:ID_SERIAL_SHORT=QM00001\n\
         E:ID_WWN=0x5000c500a1b2c3d5\n",
    );
    let disks = t.manager().list_block_devices(false).unwrap();
    let inv = disks.iter().find(|d| d.name == "/dev/sda").unwrap();
    assert_eq!(inv.serial.as_deref(), Some("QM00001"));
    assert_eq!(inv.wwn.as_deref(), Some("0x5000c500a1b2c3d5"));
    for hints in [
        json!({"serial": "QM00001"}),
        json!({"serial": "qemu_harddisk_qm00001"}),
        json!({"wwn": "0x5000c500a1b2c3d5"}),
        // The sysfs WWN still matches although the inventory shows udev's.
        json!({"wwn": "0x5000c500a1b2c3d4"}),
    ] {
        let node = hinted_node(Some(hints.clone()), None, None);
        assert_eq!(install_device(&t, &node).unwrap(), "/dev/sda", "{hints}");
    }
    let targets = t.manager().hint_targets(&disks);
    let sda = targets.iter().find(|d| d.name == "/dev/sda").unwrap();
    assert_eq!(sda.serial, vec!["QM00001", "QEMU_HARDDISK_QM00001"]);
    assert_eq!(sda.wwn, vec!["0x5000c500a1b2c3d5", "0x5000c500a1b2c3d4"]);
}

/// A machine without udev (no /run/udev, no /dev/disk/by-path) in a sysfs tree laid out as
/// the kernel lays it out: by_path, serial and WWN are what udev would have given.
#[test]
fn block_devices_without_udev_get_udev_names() {
    use crate::generic::fakesys::FakeSys;
    let f = FakeSys::new();
    let disk = |rel: &str, sectors: u64| {
        let name = rel.rsplit('/').next().unwrap();
        f.block(rel)
            .attr(rel, "size", format!("{sectors}\n"))
            .attr(rel, "queue/rotational", "0\n")
            .attr(rel, "queue/logical_block_size", "512\n")
            .attr(rel, "queue/physical_block_size", "512\n");
        let link = f.root().join("sys/block").join(name);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(f.root().join("sys/devices").join(rel), link).unwrap();
    };
    // virtio-scsi disk (QEMU scsi-hd, serial=QM00002).
    let sdev = "pci0000:00/0000:00:03.0/virtio0/host2/target2:0:0/2:0:0:0";
    f.chain(
        "",
        &[
            ("pci0000:00", None, None),
            ("0000:00:03.0", Some("pci"), None),
            ("virtio0", Some("virtio"), None),
            ("host2", Some("scsi"), Some("scsi_host")),
            ("target2:0:0", Some("scsi"), Some("scsi_target")),
            ("2:0:0:0", Some("scsi"), Some("scsi_device")),
        ],
    )
    .attr(sdev, "vendor", "QEMU    \n")
    .attr(sdev, "model", "QEMU HARDDISK   \n")
    .attr(
        sdev,
        "vpd_pg80",
        [0u8, 0x80, 0, 7, b'Q', b'M', b'0', b'0', b'0', b'0', b'2'],
    )
    .attr(
        sdev,
        "vpd_pg83",
        [
            0u8, 0x83, 0, 12, 1, 3, 0, 8, 0x50, 0, 0xc5, 0, 0xa1, 0xb2, 0xc3, 0xd4,
        ],
    );
    disk(&format!("{sdev}/block/sda"), 10 * GIB_SECTORS);
    // NVMe namespace.
    let ctrl = "pci0000:00/0000:00:04.0/nvme/nvme0";
    f.dev("pci0000:00/0000:00:04.0", Some("pci"), None)
        .dev(ctrl, Some("nvme"), None)
        .attr(ctrl, "serial", "S5GXNF0R123456      \n")
        .attr(ctrl, "model", "Samsung SSD 980 PRO 1TB\n")
        .attr(&format!("{ctrl}/nvme0n1"), "nsid", "1\n")
        .attr(&format!("{ctrl}/nvme0n1"), "wwid", "eui.002538b111b2c3d4\n");
    disk(&format!("{ctrl}/nvme0n1"), 20 * GIB_SECTORS);

    let m = GenericHardwareManager::new(GenericConfig {
        root: f.root().to_path_buf(),
        ..GenericConfig::default()
    });
    let disks = m.list_block_devices(false).unwrap();
    let sda = disks.iter().find(|d| d.name == "/dev/sda").unwrap();
    assert_eq!(
        sda.by_path.as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:0:0")
    );
    assert_eq!(sda.serial.as_deref(), Some("QM00002"));
    assert_eq!(sda.wwn.as_deref(), Some("0x5000c500a1b2c3d4"));
    assert_eq!(
        sda.wwn_with_extension.as_deref(),
        Some("0x5000c500a1b2c3d4")
    );
    let nvme = disks.iter().find(|d| d.name == "/dev/nvme0n1").unwrap();
    assert_eq!(
        nvme.by_path.as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:04.0-nvme-1")
    );
    assert_eq!(nvme.serial.as_deref(), Some("S5GXNF0R123456"));
    assert_eq!(nvme.wwn.as_deref(), Some("eui.002538b111b2c3d4"));
    assert_eq!(nvme.wwn_with_extension, None);

    // Root device hints by the computed values, and by udev's other serial forms.
    for (hints, expected) in [
        (
            json!({"by_path": "/dev/disk/by-path/pci-0000:00:04.0-nvme-1"}),
            "/dev/nvme0n1",
        ),
        (json!({"serial": "QM00002"}), "/dev/sda"),
        (json!({"serial": "35000c500a1b2c3d4"}), "/dev/sda"),
        (json!({"wwn": "0x5000C500A1B2C3D4"}), "/dev/sda"),
        (
            json!({"serial": "Samsung_SSD_980_PRO_1TB_S5GXNF0R123456_1"}),
            "/dev/nvme0n1",
        ),
    ] {
        let node = hinted_node(Some(hints.clone()), None, None);
        assert_eq!(
            m.get_os_install_device(Some(&node)).unwrap(),
            expected,
            "{hints}"
        );
    }
}

#[test]
fn install_device_no_match_explains_why() {
    let t = disk_tree();
    let node = hinted_node(
        Some(json!({"size": ">= 2000", "rotational": true})),
        None,
        Some(json!([{"name": "sdb"}, {"volume_name": "root"}])),
    );
    let err = install_device(&t, &node).unwrap_err();
    assert!(matches!(err, HardwareError::DeviceNotFound(_)), "{err:?}");
    assert_eq!(err.code(), 404);
    assert_eq!(err.ipa_type(), "DeviceNotFound");
    let msg = err.to_string();
    for part in [
        "no suitable device was found for deployment using the root device hints",
        "\"size\":\">= 2000\"",
        "/dev/nvme0n1 (size is 1000 GiB (1073741824000 bytes), hint wants \">= 2000\", \
         rotational is false, hint wants true)",
        "/dev/sda (size is 5 GiB (5368709120 bytes), hint wants \">= 2000\")",
        "/dev/vda (size is 256 GiB",
        "skipped by properties.skip_block_devices: /dev/sdb (entry {\"name\":\"sdb\"})",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(!msg.contains("/dev/sdb (size"), "{msg}");
}

#[test]
fn install_device_invalid_hints_are_invalid_args() {
    let t = disk_tree();
    let node = hinted_node(Some(json!({"size": "big"})), None, None);
    let err = install_device(&t, &node).unwrap_err();
    assert!(matches!(err, HardwareError::InvalidArgs(_)), "{err:?}");
    assert_eq!(err.code(), 400);
    assert!(
        err.to_string()
            .starts_with("invalid root device hints in instance_info.root_device: hint \"size\""),
        "{err}"
    );
    let node = hinted_node(None, Some(json!({"disk": "sda"})), None);
    let err = install_device(&t, &node).unwrap_err().to_string();
    assert!(
        err.contains("properties.root_device") && err.contains("unknown root device hint(s) disk"),
        "{err}"
    );
    let node = hinted_node(None, None, Some(json!({"name": "sda"})));
    let err = install_device(&t, &node).unwrap_err();
    assert!(matches!(err, HardwareError::InvalidArgs(_)), "{err:?}");
    // Hints are validated even when no disk can be listed.
    let err = Tree::new()
        .manager()
        .get_os_install_device(Some(&hinted_node(Some(json!({"size": 0})), None, None)))
        .unwrap_err();
    assert!(matches!(err, HardwareError::InvalidArgs(_)), "{err:?}");
}

#[test]
fn install_device_skip_list() {
    let t = disk_tree();
    // Without hints: the smallest disk >= 4 GiB that is not skipped.
    let node = hinted_node(None, None, Some(json!([{"name": "sda"}])));
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/md0");
    let node = hinted_node(
        None,
        None,
        Some(json!("[{\"size\": \"<= 50\"}, {\"volume_name\": \"x\"}]")),
    );
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/dm-1");
    // With hints: the skip list applies first.
    let hints = json!({"rotational": true});
    let node = hinted_node(Some(hints.clone()), None, None);
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/sda");
    let node = hinted_node(
        Some(hints.clone()),
        None,
        Some(json!([{"model": "qemu harddisk"}])),
    );
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/vda");
    let node = hinted_node(
        Some(hints),
        None,
        Some(json!([{"hctl": "0:0:0:0"}, {"serial": "overlayblk"}])),
    );
    let err = install_device(&t, &node).unwrap_err().to_string();
    assert!(
        err.contains("/dev/sda (entry {\"hctl\":\"0:0:0:0\"}), /dev/vda (entry"),
        "{err}"
    );
    // Everything skipped, no hints.
    let node = hinted_node(None, None, Some(json!([{"size": ">= 1"}])));
    let err = install_device(&t, &node).unwrap_err();
    assert!(matches!(err, HardwareError::DeviceNotFound(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("none of 0 disk(s) is at least 4 GiB; skipped by"),
        "{err}"
    );
}

#[test]
fn block_devices_check_skip_list() {
    let t = disk_tree();
    let m = t.manager();
    let node = hinted_node(
        None,
        None,
        Some(json!([{"name": "nvme0n1"}, {"name": "sda1"}])),
    );
    let all = m.list_block_devices_check_skip_list(None, true).unwrap();
    assert_eq!(all, m.list_block_devices(true).unwrap());
    let kept = m
        .list_block_devices_check_skip_list(Some(&node), true)
        .unwrap();
    assert_eq!(
        names(&kept),
        vec![
            "/dev/dm-1",
            "/dev/md0",
            "/dev/md127",
            "/dev/sda",
            "/dev/sdb",
            "/dev/vda"
        ],
        "a skipped disk takes its partitions with it; a partition can be skipped alone"
    );
    let disks = m
        .list_block_devices_check_skip_list(Some(&node), false)
        .unwrap();
    assert_eq!(
        names(&disks),
        vec!["/dev/dm-1", "/dev/md0", "/dev/sda", "/dev/sdb", "/dev/vda"]
    );
    let skipped = m
        .skip_list_for_disks(&node, &m.list_block_devices(true).unwrap())
        .unwrap();
    let skipped: Vec<&str> = skipped.iter().map(String::as_str).collect();
    assert_eq!(
        skipped,
        vec![
            "/dev/nvme0n1",
            "/dev/nvme0n1p1",
            "/dev/nvme0n1p2",
            "/dev/sda1"
        ]
    );
    // RAID volume entries do not remove disks.
    let node = hinted_node(None, None, Some(json!([{"volume_name": "data"}])));
    assert_eq!(
        m.list_block_devices_check_skip_list(Some(&node), false)
            .unwrap(),
        m.list_block_devices(false).unwrap()
    );
    let bad = hinted_node(None, None, Some(json!([{"nope": 1}])));
    assert!(matches!(
        m.list_block_devices_check_skip_list(Some(&bad), false),
        Err(HardwareError::InvalidArgs(_))
    ));
}

#[test]
fn guard_uses_allow_list_and_root() {
    let t = disk_tree();
    t.file("proc/mounts", "/dev/vda1 / ext4 rw 0 0\n")
        .file("sys/class/block/sdb/ro", "1\n");
    let open = t.manager().guard();
    assert!(matches!(
        open.check_writable(Path::new("/dev/vda")),
        Err(crate::guard::GuardError::Mounted(..))
    ));
    assert!(matches!(
        open.check_writable(Path::new("/dev/sdb")),
        Err(crate::guard::GuardError::ReadOnly(..))
    ));
    assert_eq!(open.check_writable(Path::new("/dev/sda")), Ok(()));
    let strict = t.manager_with(vec![PathBuf::from("/dev/loop0")]).guard();
    assert!(matches!(
        strict.check_writable(Path::new("/dev/sda")),
        Err(crate::guard::GuardError::NotAllowed(..))
    ));
    assert_eq!(strict.check_writable(Path::new("/dev/loop0")), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// DMI, boot, host name, logs, steps, BMC

#[test]
fn system_vendor_info() {
    let t = Tree::new();
    assert_eq!(
        t.manager().get_system_vendor_info().unwrap(),
        SystemVendorInfo::default()
    );
    t.file("sys/class/dmi/id/product_name", "PowerEdge R640\n")
        .file("sys/class/dmi/id/product_serial", "ABC1234\n")
        .file("sys/class/dmi/id/sys_vendor", "Dell Inc.\n")
        .file("sys/class/dmi/id/bios_vendor", "Dell Inc.\n")
        .file("sys/class/dmi/id/bios_version", "2.17.1\n")
        .file("sys/class/dmi/id/bios_date", "09/14/2022\n");
    assert_eq!(
        serde_json::to_value(t.manager().get_system_vendor_info().unwrap()).unwrap(),
        json!({"product_name": "PowerEdge R640", "serial_number": "ABC1234",
               "manufacturer": "Dell Inc.",
               "firmware": {"vendor": "Dell Inc.", "version": "2.17.1", "build_date": "09/14/2022"}})
    );
    // lshw (IPA's source) appends a set SKU number to the product name.
    t.file(
        "sys/class/dmi/id/product_sku",
        "SKU=NotProvided;ModelName=PowerEdge R640\n",
    );
    assert_eq!(
        t.manager().get_system_vendor_info().unwrap().product_name,
        "PowerEdge R640 (SKU=NotProvided;ModelName=PowerEdge R640)"
    );
    t.file("sys/class/dmi/id/product_sku", "\n");
    assert_eq!(
        t.manager().get_system_vendor_info().unwrap().product_name,
        "PowerEdge R640",
        "an empty SKU adds nothing"
    );
}

#[test]
fn boot_mode() {
    let t = Tree::new();
    let boot = t.manager().get_boot_info().unwrap();
    assert_eq!(boot.current_boot_mode, "bios");
    assert_eq!(boot.pxe_interface.as_deref(), Some("01-aa-bb-cc-dd-ee-ff"));
    t.dir("sys/firmware/efi");
    assert_eq!(
        t.manager().get_boot_info().unwrap().current_boot_mode,
        "uefi"
    );
}

#[test]
fn hostname_and_logs_and_no_steps() {
    let t = Tree::new();
    assert!(t.manager().get_hostname().is_err());
    t.file("proc/sys/kernel/hostname", "node-1\n")
        .file("proc/mdstat", "Personalities : \nunused devices: <none>\n")
        .file("proc/mounts", "proc /proc proc rw 0 0\n");
    let m = t.manager();
    assert_eq!(m.get_hostname().unwrap(), "node-1");
    let logs = m.collect_system_logs().unwrap();
    let files: Vec<&str> = logs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        files,
        vec!["mdstat", "mount"],
        "no commands under a fake root"
    );
    assert_eq!(logs[1].1, b"proc /proc proc rw 0 0\n");
    assert!(
        m.get_steps(StepKind::Clean, &StepContext::default())
            .unwrap()
            .is_empty()
    );
    assert!(
        m.execute_step(
            "erase_devices",
            &StepContext::default(),
            &Default::default()
        )
        .unwrap_err()
        .is_incompatible()
    );
    assert!(m.full_sync().is_ok());
    assert_eq!(m.version().name, "generic_hardware_manager");
    assert_eq!(m.version().version, "1.2");
}

#[test]
fn no_ipmi_device_means_no_bmc() {
    let m = Tree::new().manager();
    assert_eq!(m.get_bmc_address().unwrap(), None);
    assert_eq!(m.get_bmc_v6address().unwrap(), None);
    assert_eq!(m.get_bmc_mac().unwrap(), None);
}

/// A manager over `tree` whose tools are `runner`.
fn manager_running(tree: &Tree, runner: &crate::runner::RecordingRunner) -> GenericHardwareManager {
    GenericHardwareManager::new(GenericConfig {
        root: tree.root().to_path_buf(),
        runner: Some(std::sync::Arc::new(runner.clone())),
        ..GenericConfig::default()
    })
}

#[test]
fn initialize_loads_the_ipmi_modules_once_and_tolerates_failures() {
    let runner = crate::runner::RecordingRunner::new(|_, args| match args {
        ["ipmi_si"] => Ok(crate::runner::Ran::failed(
            1,
            "modprobe: FATAL: Module ipmi_si not found",
        )),
        _ => Ok(crate::runner::Ran::ok("")),
    });
    let tree = Tree::new();
    let m = manager_running(&tree, &runner);
    m.initialize().unwrap();
    m.initialize().unwrap();
    assert_eq!(
        runner.calls(),
        [
            "modprobe ipmi_msghandler",
            "modprobe ipmi_devintf",
            "modprobe ipmi_si",
            "modprobe ipmi_ssif"
        ]
    );
    // Without a runner, a test root never runs modprobe.
    let plain = tree.manager();
    plain.initialize().unwrap();
}

#[test]
fn bmc_from_ipmitool_once_per_process() {
    let tree = Tree::new();
    tree.file("dev/ipmi0", "");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bmc");
    let runner = crate::runner::RecordingRunner::replaying(fixtures.join("ipv4_dhcp"));
    let m = manager_running(&tree, &runner);
    for _ in 0..2 {
        assert_eq!(
            m.get_bmc_address().unwrap().as_deref(),
            Some("10.16.218.144")
        );
        assert_eq!(m.get_bmc_v6address().unwrap().as_deref(), Some("::/0"));
        assert_eq!(
            m.get_bmc_mac().unwrap().as_deref(),
            Some("4c:d9:8f:03:e8:74")
        );
    }
    let scans = runner
        .calls()
        .iter()
        .filter(|c| *c == "ipmitool lan print 1")
        .count();
    assert_eq!(scans, 2, "one address scan and one MAC scan, then cached");

    // No MAC found: remembered as unavailable (IPA's "unavailable"), not rescanned.
    let unset = crate::runner::RecordingRunner::replaying(fixtures.join("unconfigured"));
    let m = manager_running(&tree, &unset);
    assert_eq!(m.get_bmc_mac().unwrap(), None);
    let n = unset.calls().len();
    assert_eq!(m.get_bmc_mac().unwrap(), None);
    assert_eq!(unset.calls().len(), n);

    // IPMI device nodes in sub-directories count too.
    let sub = Tree::new();
    sub.file("dev/ipmi/0", "");
    assert!(bmc::has_ipmi_device(sub.root(), true));
    assert!(!bmc::has_ipmi_device(sub.root(), false));
    let empty_dir = Tree::new();
    empty_dir.dir("dev/ipmidev");
    assert!(!bmc::has_ipmi_device(empty_dir.root(), true));
}

// ---------------------------------------------------------------------------------------------
// The real system, read-only.

#[test]
fn smoke_real_root() {
    let m = GenericHardwareManager::new(GenericConfig::default());
    let cpu = m.get_cpus().unwrap();
    let expected = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap();
    assert_eq!(cpu.count, expected);
    assert!(!cpu.architecture.is_empty());
    assert!(m.get_memory().unwrap().total > 0);
    let disks = m.list_block_devices(false).unwrap();
    assert!(
        disks
            .iter()
            .all(|d| d.name.starts_with("/dev/") && d.size > 0)
    );
    let _ = m.list_block_devices(true).unwrap();
    assert!(!m.get_hostname().unwrap().is_empty());
    let ifaces = m.list_network_interfaces().unwrap();
    assert!(
        ifaces
            .iter()
            .all(|i| i.name != "lo" && !i.mac_address.is_empty())
    );
    let _ = m.get_boot_info().unwrap();
    let _ = m.get_system_vendor_info().unwrap();
}

/// A backend standing in for the agent's step implementations.
#[derive(Debug)]
struct EchoBackend;

impl crate::generic::backend::StepBackend for EchoBackend {
    fn steps(&self, kind: crate::StepKind) -> Vec<crate::Step> {
        match kind {
            crate::StepKind::Deploy => vec![crate::Step::new("write_image", "deploy", 0)],
            _ => Vec::new(),
        }
    }

    fn execute(
        &self,
        name: &str,
        _ctx: &crate::StepContext,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> crate::HardwareResult<serde_json::Value> {
        match name {
            "write_image" => Ok(serde_json::json!({"echo": args.get("image_info")})),
            other => Err(crate::HardwareError::incompatible(other)),
        }
    }
}

#[test]
fn step_backend_steps_are_offered_and_forwarded() -> crate::HardwareResult<()> {
    use crate::HardwareManager;
    let ctx = crate::StepContext::default();
    let plain = GenericHardwareManager::new(GenericConfig::default());
    assert!(plain.get_steps(crate::StepKind::Deploy, &ctx)?.is_empty());
    assert!(
        plain
            .execute_step("write_image", &ctx, &serde_json::Map::new())
            .is_err()
    );

    let with = GenericHardwareManager::new(GenericConfig {
        step_backend: Some(std::sync::Arc::new(EchoBackend)),
        ..GenericConfig::default()
    });
    let steps = with.get_steps(crate::StepKind::Deploy, &ctx)?;
    assert_eq!(
        steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        vec!["write_image"]
    );
    assert!(with.get_steps(crate::StepKind::Clean, &ctx)?.is_empty());
    let mut args = serde_json::Map::new();
    args.insert("image_info".into(), serde_json::json!({"id": "x"}));
    assert_eq!(
        with.execute_step("write_image", &ctx, &args)?,
        serde_json::json!({"echo": {"id": "x"}})
    );
    assert!(
        with.execute_step("nope", &ctx, &args)
            .map_err(|e| e.is_incompatible())
            .err()
            .unwrap_or(false)
    );
    Ok(())
}

#[test]
fn install_device_prefers_an_md_array_over_its_members() {
    let t = Tree::new();
    // Two 6 GiB members holding md0 (RAID-1, 4 GiB) and md1 (RAID-0, 3 GiB) on partitions,
    // and a 5 GiB disk outside the RAID.
    t.block("vda", 6 * GIB_SECTORS)
        .file("sys/block/vda/vda1/partition", "1\n")
        .file("sys/block/vda/vda2/partition", "2\n")
        .block("vdb", 6 * GIB_SECTORS)
        .file("sys/block/vdb/vdb1/partition", "1\n")
        .file("sys/block/vdb/vdb2/partition", "2\n")
        .block("vdc", 5 * GIB_SECTORS)
        .block("md0", 4 * GIB_SECTORS)
        .file("sys/block/md0/md/level", "raid1\n")
        .dir("sys/block/md0/slaves/vda1")
        .dir("sys/block/md0/slaves/vdb1")
        .block("md1", 3 * GIB_SECTORS)
        .file("sys/block/md1/md/level", "raid0\n")
        .dir("sys/block/md1/slaves/vda2")
        .dir("sys/block/md1/slaves/vdb2");
    assert_eq!(t.manager().get_os_install_device(None).unwrap(), "/dev/md0");
    // Hints choose among the arrays and the other disks, never a member.
    let node = hinted_node(Some(json!({"size": ">= 5"})), None, None);
    assert_eq!(install_device(&t, &node).unwrap(), "/dev/vdc");
    let node = hinted_node(Some(json!({"name": "/dev/vdb"})), None, None);
    assert!(install_device(&t, &node).is_err());
}

/// A backend that knows a RAID root volume.
#[derive(Debug)]
struct RaidRootBackend;

impl crate::generic::backend::StepBackend for RaidRootBackend {
    fn steps(&self, _kind: crate::StepKind) -> Vec<crate::Step> {
        Vec::new()
    }

    fn execute(
        &self,
        name: &str,
        _ctx: &crate::StepContext,
        _args: &serde_json::Map<String, serde_json::Value>,
    ) -> crate::HardwareResult<serde_json::Value> {
        Err(crate::HardwareError::incompatible(name))
    }

    fn install_device(&self, _node: Option<&Node>) -> crate::HardwareResult<Option<String>> {
        Ok(Some("/dev/md3".into()))
    }
}

#[test]
fn the_backends_raid_root_volume_wins_over_hints() {
    let t = disk_tree();
    let m = GenericHardwareManager::new(GenericConfig {
        root: t.root().to_path_buf(),
        step_backend: Some(std::sync::Arc::new(RaidRootBackend)),
        ..GenericConfig::default()
    });
    let node = hinted_node(Some(json!({"name": "/dev/sda"})), None, None);
    assert_eq!(m.get_os_install_device(Some(&node)).unwrap(), "/dev/md3");
}
