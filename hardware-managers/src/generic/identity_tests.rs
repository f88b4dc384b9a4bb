//! Disks in fake sysfs trees, with the properties udev 252 records for them.

use super::*;
use crate::generic::fakesys::FakeSys;

fn page(code: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u16;
    let mut p = vec![0, code, (len >> 8) as u8, len as u8];
    p.extend_from_slice(body);
    p
}

fn designator(code_set: u8, assoc_type: u8, id: &[u8]) -> Vec<u8> {
    let mut d = vec![code_set, assoc_type, 0, id.len() as u8];
    d.extend_from_slice(id);
    d
}

fn props_of(f: &FakeSys, name: &str) -> Option<UdevProperties> {
    let dir = f.root().join("sys/class/block").join(name);
    synthesize(f.root(), &dir, name)
}

fn get(p: &UdevProperties, k: &str) -> Option<String> {
    p.get(k)
}

/// A SCSI disk `sd<x>` under `base` (a `target/h:b:t:l` directory chain already made).
fn scsi_disk(f: &FakeSys, sdev: &str, name: &str, vendor: &str, model: &str) {
    f.attr(sdev, "vendor", format!("{vendor}\n"))
        .attr(sdev, "model", format!("{model}\n"))
        .block(&format!("{sdev}/block/{name}"));
}

#[test]
fn nvme_namespace() {
    let f = FakeSys::new();
    let ctrl = "pci0000:00/0000:00:04.0/nvme/nvme0";
    f.chain(
        "",
        &[
            ("pci0000:00", None, None),
            ("0000:00:04.0", Some("pci"), None),
        ],
    )
    .dev(ctrl, Some("nvme"), None)
    .attr(ctrl, "serial", "S5GXNF0R123456      \n")
    .attr(ctrl, "model", "Samsung SSD 980 PRO 1TB                 \n")
    .block(&format!("{ctrl}/nvme0n1"))
    .attr(&format!("{ctrl}/nvme0n1"), "nsid", "1\n")
    .attr(&format!("{ctrl}/nvme0n1"), "wwid", "eui.002538b111b2c3d4\n");
    let p = props_of(&f, "nvme0n1").unwrap();
    assert_eq!(
        get(&p, "ID_SERIAL_SHORT").as_deref(),
        Some("S5GXNF0R123456")
    );
    assert_eq!(
        get(&p, "ID_SERIAL").as_deref(),
        Some("Samsung_SSD_980_PRO_1TB_S5GXNF0R123456_1")
    );
    assert_eq!(get(&p, "ID_WWN").as_deref(), Some("eui.002538b111b2c3d4"));
    assert_eq!(
        inventory_view(&p),
        DiskIds {
            serial: Some("S5GXNF0R123456".into()),
            wwn: Some("eui.002538b111b2c3d4".into()),
            wwn_with_extension: None,
            wwn_vendor_extension: None,
        }
    );
}

#[test]
fn virtio_blk_serial() {
    let f = FakeSys::new();
    f.chain(
        "",
        &[
            ("pci0000:00", None, None),
            ("0000:00:02.0", Some("pci"), None),
            ("virtio1", Some("virtio"), None),
        ],
    )
    .block("pci0000:00/0000:00:02.0/virtio1/block/vda")
    .attr(
        "pci0000:00/0000:00:02.0/virtio1/block/vda",
        "serial",
        "overlayblk",
    );
    let p = props_of(&f, "vda").unwrap();
    assert_eq!(get(&p, "ID_SERIAL").as_deref(), Some("overlayblk"));
    assert_eq!(inventory_view(&p).serial.as_deref(), Some("overlayblk"));
    assert_eq!(inventory_view(&p).wwn, None);
}

fn ahci_sdev(f: &FakeSys) -> String {
    let sdev = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    f.chain(
        "",
        &[
            ("pci0000:00", None, None),
            ("0000:00:1f.2", Some("pci"), None),
            ("ata1", None, None),
            ("host0", Some("scsi"), Some("scsi_host")),
            ("target0:0:0", Some("scsi"), Some("scsi_target")),
            ("0:0:0:0", Some("scsi"), Some("scsi_device")),
        ],
    );
    scsi_disk(f, sdev, "sda", "ATA     ", "Samsung SSD 860 ");
    sdev.to_string()
}

#[test]
fn libata_disk_from_identify_or_sat_pages() {
    // Page 0x89 carries the IDENTIFY data ata_id reads.
    let f = FakeSys::new();
    let sdev = ahci_sdev(&f);
    let mut id = vec![0u8; 512];
    let put = |id: &mut Vec<u8>, word: usize, s: &[u8]| {
        for (k, pair) in s.chunks(2).enumerate() {
            id[2 * (word + k)] = pair[1];
            id[2 * (word + k) + 1] = pair[0];
        }
    };
    put(&mut id, 10, b"    S3Z9NB0K123456A ");
    put(&mut id, 27, b"Samsung SSD 860 EVO 500GB               ");
    for (k, w) in [0x5002u16, 0x538e, 0x4012, 0x3456].iter().enumerate() {
        id[2 * (108 + k)..2 * (108 + k) + 2].copy_from_slice(&w.to_le_bytes());
    }
    let mut p89 = vec![0, 0x89, 0x02, 0x38];
    p89.resize(60, 0);
    p89.extend_from_slice(&id);
    f.attr(&sdev, "vpd_pg89", &p89);
    let p = props_of(&f, "sda").unwrap();
    assert_eq!(
        get(&p, "ID_SERIAL_SHORT").as_deref(),
        Some("S3Z9NB0K123456A")
    );
    assert_eq!(
        get(&p, "ID_SERIAL").as_deref(),
        Some("Samsung_SSD_860_EVO_500GB_S3Z9NB0K123456A")
    );
    assert_eq!(get(&p, "ID_WWN").as_deref(), Some("0x5002538e40123456"));
    let ids = inventory_view(&p);
    assert_eq!(ids.serial.as_deref(), Some("S3Z9NB0K123456A"));
    assert_eq!(ids.wwn.as_deref(), Some("0x5002538e40123456"));
    assert_eq!(
        ids.wwn_with_extension.as_deref(),
        Some("0x5002538e40123456")
    );

    // Older kernels: only pages 0x80 and 0x83 (libata's SAT translation).
    let f = FakeSys::new();
    let sdev = ahci_sdev(&f);
    let mut body = designator(0x02, 0x00, b"    S3Z9NB0K123456A ");
    body.extend(designator(
        0x02,
        0x01,
        b"ATA     Samsung SSD 860 EVO 500GB                   S3Z9NB0K123456A ",
    ));
    body.extend(designator(
        0x01,
        0x03,
        &[0x50, 0x02, 0x53, 0x8e, 0x40, 0x12, 0x34, 0x56],
    ));
    f.attr(&sdev, "vpd_pg83", page(0x83, &body)).attr(
        &sdev,
        "vpd_pg80",
        page(0x80, b"    S3Z9NB0K123456A "),
    );
    let p2 = props_of(&f, "sda").unwrap();
    assert_eq!(p2.get("ID_SERIAL"), p.get("ID_SERIAL"));
    assert_eq!(p2.get("ID_WWN"), p.get("ID_WWN"));
    assert_eq!(inventory_view(&p2), ids);
}

fn virtio_scsi_sdev(f: &FakeSys) -> String {
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
    );
    "pci0000:00/0000:00:03.0/virtio0/host2/target2:0:0/2:0:0:0".to_string()
}

#[test]
fn scsi_disks_as_scsi_id_names_them() {
    // QEMU scsi-hd with serial=QM00002: vendor-specific designator, page 0x80 serial.
    let f = FakeSys::new();
    let sdev = virtio_scsi_sdev(&f);
    scsi_disk(&f, &sdev, "sdb", "QEMU    ", "QEMU HARDDISK   ");
    f.attr(
        &sdev,
        "vpd_pg83",
        page(0x83, &designator(0x02, 0x00, b"QM00002")),
    )
    .attr(&sdev, "vpd_pg80", page(0x80, b"QM00002"));
    let p = props_of(&f, "sdb").unwrap();
    assert_eq!(
        get(&p, "ID_SERIAL").as_deref(),
        Some("0QEMU_QEMU_HARDDISK_QM00002")
    );
    assert_eq!(get(&p, "ID_SERIAL_SHORT").as_deref(), Some("QM00002"));
    assert_eq!(get(&p, "ID_SCSI_SERIAL").as_deref(), Some("QM00002"));
    assert_eq!(inventory_view(&p).serial.as_deref(), Some("QM00002"));
    assert_eq!(inventory_view(&p).wwn, None);

    // A RAID logical drive: NAA 6 with a vendor extension; lsblk's WWN is the long form.
    let f = FakeSys::new();
    let sdev = virtio_scsi_sdev(&f);
    scsi_disk(&f, &sdev, "sdc", "HP      ", "LOGICAL VOLUME  ");
    let naa = [
        0x60, 0x05, 0x08, 0xb1, 0x00, 0x1c, 0x4d, 0x0c, 0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79,
        0x80,
    ];
    f.attr(&sdev, "vpd_pg83", page(0x83, &designator(0x01, 0x03, &naa)))
        .attr(&sdev, "vpd_pg80", page(0x80, b"PDNLH0BRH9V0BG  "));
    let ids = inventory_view(&props_of(&f, "sdc").unwrap());
    assert_eq!(
        ids,
        DiskIds {
            serial: Some("PDNLH0BRH9V0BG".into()),
            wwn: Some("0x600508b1001c4d0c1f2e3d4c5b6a7980".into()),
            wwn_with_extension: Some("0x600508b1001c4d0c1f2e3d4c5b6a7980".into()),
            wwn_vendor_extension: Some("0x1f2e3d4c5b6a7980".into()),
        }
    );

    // No VPD pages: nothing known, the caller keeps its fallbacks.
    let f = FakeSys::new();
    let sdev = virtio_scsi_sdev(&f);
    scsi_disk(&f, &sdev, "sdd", "QEMU    ", "QEMU HARDDISK   ");
    assert!(props_of(&f, "sdd").is_none());
}

#[test]
fn usb_storage_uses_the_usb_serial() {
    let f = FakeSys::new();
    let usb = "pci0000:00/0000:00:14.0/usb1/1-1";
    f.chain(
        "",
        &[
            ("pci0000:00", None, None),
            ("0000:00:14.0", Some("pci"), None),
            ("usb1", Some("usb"), Some("usb_device")),
            ("1-1", Some("usb"), Some("usb_device")),
            ("1-1:1.0", Some("usb"), Some("usb_interface")),
            ("host6", Some("scsi"), Some("scsi_host")),
            ("target6:0:0", Some("scsi"), Some("scsi_target")),
            ("6:0:0:0", Some("scsi"), Some("scsi_device")),
        ],
    )
    .attr(usb, "serial", "4C530001230315117432\n");
    scsi_disk(
        &f,
        &format!("{usb}/1-1:1.0/host6/target6:0:0/6:0:0:0"),
        "sde",
        "SanDisk ",
        "Cruzer Blade    ",
    );
    let p = props_of(&f, "sde").unwrap();
    assert_eq!(
        get(&p, "ID_SERIAL_SHORT").as_deref(),
        Some("4C530001230315117432")
    );
    assert_eq!(
        get(&p, "ID_SERIAL").as_deref(),
        Some("SanDisk_Cruzer_Blade_4C530001230315117432-0:0")
    );
}

#[test]
fn udev_records_read_as_lsblk_reads_them() {
    // A SAS disk on Debian 12: lsblk prefers ID_SCSI_SERIAL and the WWN with extension.
    let p = UdevProperties::parse(
        "E:ID_SERIAL=35000c500a1b2c3d4\nE:ID_SERIAL_SHORT=5000c500a1b2c3d4\n\
         E:ID_WWN=0x5000c500a1b2c3d4\nE:ID_WWN_WITH_EXTENSION=0x5000c500a1b2c3d4\n\
         E:ID_SCSI_SERIAL=  Z1Z0ABCD0000C123ABCD \nE:ID_FS_TYPE=ext4\n",
    );
    assert!(has_identity(&p));
    assert_eq!(
        inventory_view(&p).serial.as_deref(),
        Some("Z1Z0ABCD0000C123ABCD")
    );
    assert!(!has_identity(&UdevProperties::parse("E:ID_FS_UUID=1234\n")));
    assert_eq!(
        DiskIds::default().or(inventory_view(&p)).wwn.as_deref(),
        Some("0x5000c500a1b2c3d4")
    );
}
