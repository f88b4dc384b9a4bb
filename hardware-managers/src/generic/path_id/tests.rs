//! Fake sysfs trees laid out as the kernel lays them out, with the names udev 252 gives.

use std::fs;
use std::path::Path;

use super::*;
use crate::generic::fakesys::FakeSys;

/// The by-path names of `name` without their directory.
fn links(f: &FakeSys, name: &str) -> Vec<String> {
    by_path_links(f.root(), name)
        .into_iter()
        .map(|l| l.trim_start_matches("/dev/disk/by-path/").to_string())
        .collect()
}

const PCI: (&str, Option<&str>, Option<&str>) = ("pci0000:00", None, None);
const SCSI_HOST: Option<&str> = Some("scsi_host");
const SCSI: Option<&str> = Some("scsi");

/// AHCI: `/sys/block/sda -> ../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda`.
fn ahci(f: &FakeSys) {
    let ata = "pci0000:00/0000:00:1f.2/ata1";
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:1f.2", Some("pci"), None),
            ("ata1", None, None),
            ("host0", SCSI, SCSI_HOST),
            ("target0:0:0", SCSI, Some("scsi_target")),
            ("0:0:0:0", SCSI, Some("scsi_device")),
        ],
    )
    .dev(&format!("{ata}/ata_port/ata1"), Some("ata_port"), None)
    .attr(&format!("{ata}/ata_port/ata1"), "port_no", "1\n")
    .class("ata_port", "ata1", &format!("{ata}/ata_port/ata1"))
    .block(&format!("{ata}/host0/target0:0:0/0:0:0:0/block/sda"))
    .block(&format!("{ata}/host0/target0:0:0/0:0:0:0/block/sda/sda1"))
    // A disk behind port 2 of a port multiplier on the same link.
    .chain(
        &format!("{ata}/host0"),
        &[
            ("target0:2:0", SCSI, Some("scsi_target")),
            ("0:2:0:0", SCSI, Some("scsi_device")),
        ],
    )
    .block(&format!("{ata}/host0/target0:2:0/0:2:0:0/block/sdb"));
}

#[test]
fn ahci_disks_get_the_port_and_the_compat_names() {
    let f = FakeSys::new();
    ahci(&f);
    assert_eq!(
        links(&f, "sda"),
        vec!["pci-0000:00:1f.2-ata-1", "pci-0000:00:1f.2-ata-1.0"]
    );
    assert_eq!(
        links(&f, "sda1"),
        vec![
            "pci-0000:00:1f.2-ata-1-part1",
            "pci-0000:00:1f.2-ata-1.0-part1"
        ]
    );
    assert_eq!(
        links(&f, "sdb"),
        vec!["pci-0000:00:1f.2-ata-1", "pci-0000:00:1f.2-ata-1.2.0"]
    );
    assert_eq!(
        by_path(f.root(), "sda").as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1")
    );
}

#[test]
fn virtio_blk_has_the_pci_and_the_legacy_virtio_names() {
    let f = FakeSys::new();
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:02.0", Some("pci"), None),
            ("virtio1", Some("virtio"), None),
        ],
    )
    .block("pci0000:00/0000:00:02.0/virtio1/block/vda")
    .block("pci0000:00/0000:00:02.0/virtio1/block/vda/vda1");
    assert_eq!(
        links(&f, "vda"),
        vec!["pci-0000:00:02.0", "virtio-pci-0000:00:02.0"]
    );
    assert_eq!(
        links(&f, "vda1"),
        vec!["pci-0000:00:02.0-part1", "virtio-pci-0000:00:02.0-part1"]
    );
}

#[test]
fn virtio_scsi_rebases_the_host_number() {
    let f = FakeSys::new();
    let base = "pci0000:00/0000:00:03.0/virtio0";
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:03.0", Some("pci"), None),
            ("virtio0", Some("virtio"), None),
            ("host2", SCSI, SCSI_HOST),
            ("target2:0:1", SCSI, Some("scsi_target")),
            ("2:0:1:0", SCSI, Some("scsi_device")),
        ],
    )
    .block(&format!("{base}/host2/target2:0:1/2:0:1:0/block/sdb"));
    assert_eq!(links(&f, "sdb"), vec!["pci-0000:00:03.0-scsi-0:0:1:0"]);
}

#[test]
fn nvme_namespaces_and_multipath_heads() {
    let f = FakeSys::new();
    let ctrl = "pci0000:00/0000:00:04.0/nvme/nvme0";
    f.chain("", &[PCI, ("0000:00:04.0", Some("pci"), None)])
        .dev(ctrl, Some("nvme"), None)
        .class("nvme", "nvme0", ctrl)
        .block(&format!("{ctrl}/nvme0n1"))
        .attr(&format!("{ctrl}/nvme0n1"), "nsid", "1\n")
        .block(&format!("{ctrl}/nvme0n1/nvme0n1p2"));
    assert_eq!(links(&f, "nvme0n1"), vec!["pci-0000:00:04.0-nvme-1"]);
    assert_eq!(
        links(&f, "nvme0n1p2"),
        vec!["pci-0000:00:04.0-nvme-1-part2"]
    );

    // NVMe multipath: the head lives under the virtual nvme-subsystem device.
    let f = FakeSys::new();
    f.chain("", &[PCI, ("0000:00:04.0", Some("pci"), None)])
        .dev(ctrl, Some("nvme"), None)
        .class("nvme", "nvme0", ctrl)
        .chain(
            "virtual",
            &[
                ("nvme-subsystem", None, None),
                ("nvme-subsys0", Some("nvme-subsystem"), None),
            ],
        )
        .block("virtual/nvme-subsystem/nvme-subsys0/nvme0n2")
        .attr("virtual/nvme-subsystem/nvme-subsys0/nvme0n2", "nsid", "2\n");
    assert_eq!(links(&f, "nvme0n2"), vec!["pci-0000:00:04.0-nvme-2"]);
}

#[test]
fn usb_storage_names_the_port_path_and_the_lun() {
    let f = FakeSys::new();
    let usb = "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0";
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:14.0", Some("pci"), None),
            ("usb1", Some("usb"), Some("usb_device")),
            ("1-1", Some("usb"), Some("usb_device")),
            ("1-1:1.0", Some("usb"), Some("usb_interface")),
            ("host6", SCSI, SCSI_HOST),
            ("target6:0:0", SCSI, Some("scsi_target")),
            ("6:0:0:0", SCSI, Some("scsi_device")),
        ],
    )
    .block(&format!("{usb}/host6/target6:0:0/6:0:0:0/block/sdc"));
    assert_eq!(
        links(&f, "sdc"),
        vec!["pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"]
    );
}

/// mpt3sas: `.../0000:01:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sdd`.
fn sas(f: &FakeSys, num_phys: &str) {
    let host = "pci0000:00/0000:00:01.0/0000:01:00.0/host0";
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:01.0", Some("pci"), None),
            ("0000:01:00.0", Some("pci"), None),
            ("host0", SCSI, SCSI_HOST),
            ("port-0:0", None, None),
            ("end_device-0:0", None, None),
            ("target0:0:0", SCSI, Some("scsi_target")),
            ("0:0:0:0", SCSI, Some("scsi_device")),
        ],
    )
    .dev(
        &format!("{host}/port-0:0/sas_port/port-0:0"),
        Some("sas_port"),
        None,
    )
    .attr(
        &format!("{host}/port-0:0/sas_port/port-0:0"),
        "num_phys",
        format!("{num_phys}\n"),
    )
    .class(
        "sas_port",
        "port-0:0",
        &format!("{host}/port-0:0/sas_port/port-0:0"),
    )
    .dev(
        &format!("{host}/port-0:0/end_device-0:0/sas_device/end_device-0:0"),
        Some("sas_device"),
        None,
    )
    .attr(
        &format!("{host}/port-0:0/end_device-0:0/sas_device/end_device-0:0"),
        "sas_address",
        "0x5000c500a1b2c3d5\n",
    )
    .attr(
        &format!("{host}/port-0:0/end_device-0:0/sas_device/end_device-0:0"),
        "phy_identifier",
        "4\n",
    )
    .class(
        "sas_device",
        "end_device-0:0",
        &format!("{host}/port-0:0/end_device-0:0/sas_device/end_device-0:0"),
    )
    .block(&format!(
        "{host}/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sdd"
    ));
}

#[test]
fn sas_direct_wide_and_expander_attached() {
    let f = FakeSys::new();
    sas(&f, "1");
    assert_eq!(links(&f, "sdd"), vec!["pci-0000:01:00.0-sas-phy4-lun-0"]);

    let f = FakeSys::new();
    sas(&f, "4");
    assert_eq!(
        links(&f, "sdd"),
        vec!["pci-0000:01:00.0-sas-0x5000c500a1b2c3d5-lun-0"]
    );

    // Behind an expander: host0/port-0:0/expander-0:0/port-0:0:3/end_device-0:0:3/...
    let f = FakeSys::new();
    let host = "pci0000:00/0000:00:01.0/0000:01:00.0/host0";
    let exp = format!("{host}/port-0:0/expander-0:0");
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:01.0", Some("pci"), None),
            ("0000:01:00.0", Some("pci"), None),
            ("host0", SCSI, SCSI_HOST),
            ("port-0:0", None, None),
            ("expander-0:0", None, None),
            ("port-0:0:3", None, None),
            ("end_device-0:0:3", None, None),
            ("target0:0:3", SCSI, Some("scsi_target")),
            ("0:0:3:257", SCSI, Some("scsi_device")),
        ],
    )
    .class("sas_device", "expander-0:0", &exp)
    .attr(&exp, "sas_address", "0x500605b0000272bf\n")
    .class("sas_port", "port-0:0:3", &format!("{exp}/port-0:0:3"))
    .attr(&format!("{exp}/port-0:0:3"), "num_phys", "1\n")
    .class(
        "sas_device",
        "end_device-0:0:3",
        &format!("{exp}/port-0:0:3/end_device-0:0:3"),
    )
    .attr(
        &format!("{exp}/port-0:0:3/end_device-0:0:3"),
        "phy_identifier",
        "3\n",
    )
    .block(&format!(
        "{exp}/port-0:0:3/end_device-0:0:3/target0:0:3/0:0:3:257/block/sde"
    ));
    assert_eq!(
        links(&f, "sde"),
        vec!["pci-0000:01:00.0-sas-exp0x500605b0000272bf-phy3-lun-0x0101000000000000"]
    );
}

#[test]
fn iscsi_and_fibre_channel() {
    let f = FakeSys::new();
    let session = "platform/host3/session1";
    f.chain(
        "",
        &[
            ("platform", None, None),
            ("host3", SCSI, SCSI_HOST),
            ("session1", None, None),
            ("target3:0:0", SCSI, Some("scsi_target")),
            ("3:0:0:1", SCSI, Some("scsi_device")),
        ],
    )
    .dev(
        &format!("{session}/iscsi_session/session1"),
        Some("iscsi_session"),
        None,
    )
    .class(
        "iscsi_session",
        "session1",
        &format!("{session}/iscsi_session/session1"),
    )
    .attr(
        &format!("{session}/iscsi_session/session1"),
        "targetname",
        "iqn.2004-04.com.example:t1\n",
    )
    .dev(&format!("{session}/connection1:0"), None, None)
    .dev(
        &format!("{session}/connection1:0/iscsi_connection/connection1:0"),
        Some("iscsi_connection"),
        None,
    )
    .class(
        "iscsi_connection",
        "connection1:0",
        &format!("{session}/connection1:0/iscsi_connection/connection1:0"),
    )
    .attr(
        &format!("{session}/connection1:0/iscsi_connection/connection1:0"),
        "persistent_address",
        "10.0.0.1\n",
    )
    .attr(
        &format!("{session}/connection1:0/iscsi_connection/connection1:0"),
        "persistent_port",
        "3260\n",
    )
    .block(&format!("{session}/target3:0:0/3:0:0:1/block/sdf"));
    assert_eq!(
        links(&f, "sdf"),
        vec!["ip-10.0.0.1:3260-iscsi-iqn.2004-04.com.example:t1-lun-1"]
    );

    let f = FakeSys::new();
    let rport = "pci0000:00/0000:00:02.0/0000:05:00.0/host4/rport-4:0-0";
    f.chain(
        "",
        &[
            PCI,
            ("0000:00:02.0", Some("pci"), None),
            ("0000:05:00.0", Some("pci"), None),
            ("host4", SCSI, SCSI_HOST),
            ("rport-4:0-0", None, None),
            ("target4:0:0", SCSI, Some("scsi_target")),
            ("4:0:0:2", SCSI, Some("scsi_device")),
        ],
    )
    .dev(
        &format!("{rport}/target4:0:0/fc_transport/target4:0:0"),
        Some("fc_transport"),
        None,
    )
    .class(
        "fc_transport",
        "target4:0:0",
        &format!("{rport}/target4:0:0/fc_transport/target4:0:0"),
    )
    .attr(
        &format!("{rport}/target4:0:0/fc_transport/target4:0:0"),
        "port_name",
        "0x500a0981891b8dc5\n",
    )
    .block(&format!("{rport}/target4:0:0/4:0:0:2/block/sdg"));
    assert_eq!(
        links(&f, "sdg"),
        vec!["pci-0000:05:00.0-fc-0x500a0981891b8dc5-lun-2"]
    );
}

#[test]
fn platform_mmc_with_boot_areas() {
    let f = FakeSys::new();
    let card = "platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001";
    f.chain(
        "",
        &[
            ("platform", None, None),
            ("soc", Some("platform"), None),
            ("fe340000.mmc", Some("platform"), None),
        ],
    )
    .dev(
        "platform/soc/fe340000.mmc/mmc_host/mmc0",
        Some("mmc_host"),
        None,
    )
    .dev(card, Some("mmc"), Some("MMC"))
    .block(&format!("{card}/block/mmcblk0"))
    .block(&format!("{card}/block/mmcblk0/mmcblk0p1"))
    .block(&format!("{card}/block/mmcblk0boot0"));
    assert_eq!(links(&f, "mmcblk0"), vec!["platform-fe340000.mmc"]);
    assert_eq!(links(&f, "mmcblk0p1"), vec!["platform-fe340000.mmc-part1"]);
    assert_eq!(
        links(&f, "mmcblk0boot0"),
        vec!["platform-fe340000.mmc-boot0"]
    );
}

#[test]
fn virtual_and_unknown_devices_have_no_name() {
    let f = FakeSys::new();
    f.chain("", &[("virtual", None, None), ("block", None, None)])
        .block("virtual/block/loop0")
        .block("virtual/block/md0");
    assert!(links(&f, "loop0").is_empty());
    assert!(links(&f, "md0").is_empty());
    assert!(links(&f, "nonexistent").is_empty());
    // A disk under a PCI device with no known transport.
    f.chain("", &[PCI, ("0000:00:09.0", Some("pci"), None)])
        .block("pci0000:00/0000:00:09.0/block/sdz");
    assert!(links(&f, "sdz").is_empty());
    // No sysfs at all.
    assert!(by_path_links(Path::new("/nonexistent/ironic-agent"), "sda").is_empty());
}

/// Compares with `udevadm test-builtin path_id` on this machine's real block devices, when
/// udevadm is installed (it is on the Debian hosts that build the agent).
#[test]
fn agrees_with_udevadm_on_this_host() {
    let Ok(entries) = fs::read_dir("/sys/class/block") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(out) = std::process::Command::new("udevadm")
            .args(["test-builtin", "path_id"])
            .arg(entry.path())
            .output()
        else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let theirs = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ID_PATH="))
            .map(str::to_string);
        let tree = SysTree::new(Path::new("/")).unwrap();
        let ours = tree
            .device(&entry.path())
            .and_then(|d| path_id(&tree, &d))
            .map(|p| p.id_path);
        eprintln!("{name}: ours {ours:?}, udev {theirs:?}");
        assert_eq!(ours, theirs, "{name}");
    }
}
