//! VPD pages as real devices return them.

use super::*;

/// Builds a page: code, then designators/payload, with the 2-byte length filled in.
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

const QEMU_VENDOR: &[u8] = b"QEMU    ";
const QEMU_MODEL: &[u8] = b"QEMU HARDDISK   ";

#[test]
fn qemu_scsi_hd_vendor_specific_id() {
    // QEMU's scsi-hd: one vendor-specific ASCII designator holding the device id.
    let p83 = page(0x83, &designator(0x02, 0x00, b"drive-scsi0-0-0-0"));
    let p80 = page(0x80, b"QM00002");
    let id = scsi_ident(Some(&p83), Some(&p80), QEMU_VENDOR, QEMU_MODEL);
    assert_eq!(
        udev_clean(id.serial.as_deref().unwrap()),
        "0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-0"
    );
    assert_eq!(id.serial_short.as_deref(), Some("drive-scsi0-0-0-0"));
    assert_eq!(id.unit_serial.as_deref(), Some("QM00002"));
    assert_eq!(id.wwn, None);
}

#[test]
fn sas_disk_prefers_the_logical_unit_naa() {
    // Seagate SAS: LU NAA 5, then target port NAA and relative port (association 1).
    let mut body = designator(
        0x01,
        0x03,
        &[0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd4],
    );
    body.extend(designator(
        0x61,
        0x93,
        &[0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd5],
    ));
    body.extend(designator(0x61, 0x94, &[0, 0, 0, 1]));
    let p83 = page(0x83, &body);
    let p80 = page(0x80, b"Z1Z0ABCD0000C123ABCD");
    let id = scsi_ident(Some(&p83), Some(&p80), b"SEAGATE ", b"ST600MM0006     ");
    assert_eq!(id.serial.as_deref(), Some("35000c500a1b2c3d4"));
    assert_eq!(id.serial_short.as_deref(), Some("5000c500a1b2c3d4"));
    assert_eq!(id.wwn.as_deref(), Some("5000c500a1b2c3d4"));
    assert_eq!(id.wwn_vendor_extension, None);
    assert_eq!(id.unit_serial.as_deref(), Some("Z1Z0ABCD0000C123ABCD"));
}

#[test]
fn raid_lun_naa6_has_a_vendor_extension() {
    // An HP Smart Array logical drive: T10 vendor id first, NAA 6 registered extended later;
    // scsi_id still picks the NAA.
    let mut body = designator(0x02, 0x01, b"HP      LOGICAL VOLUME  PDNLH0BRH9V0BG");
    body.extend(designator(
        0x01,
        0x03,
        &[
            0x60, 0x05, 0x08, 0xb1, 0x00, 0x1c, 0x4d, 0x0c, 0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a,
            0x79, 0x80,
        ],
    ));
    let id = scsi_ident(
        Some(&page(0x83, &body)),
        None,
        b"HP      ",
        b"LOGICAL VOLUME  ",
    );
    assert_eq!(id.wwn.as_deref(), Some("600508b1001c4d0c"));
    assert_eq!(id.wwn_vendor_extension.as_deref(), Some("1f2e3d4c5b6a7980"));
    assert_eq!(
        id.serial.as_deref(),
        Some("3600508b1001c4d0c1f2e3d4c5b6a7980")
    );
    assert_eq!(id.unit_serial, None);
}

#[test]
fn t10_and_eui64_and_page80_fallbacks() {
    let t10 = page(
        0x83,
        &designator(0x02, 0x01, b"ATA     QEMU HARDDISK  QM00001"),
    );
    let id = scsi_ident(Some(&t10), None, QEMU_VENDOR, QEMU_MODEL);
    assert_eq!(
        udev_clean(id.serial.as_deref().unwrap()),
        "1ATA_QEMU_HARDDISK_QM00001"
    );
    let eui = page(
        0x83,
        &designator(0x01, 0x02, &[0x00, 0x25, 0x38, 0x8b, 1, 2, 3, 4]),
    );
    let id = scsi_ident(Some(&eui), None, QEMU_VENDOR, QEMU_MODEL);
    assert_eq!(id.serial.as_deref(), Some("20025388b01020304"));
    assert_eq!(id.wwn, None);
    // No usable page 0x83: "S" + vendor + model + page 0x80 serial.
    let id = scsi_ident(
        None,
        Some(&page(0x80, b"  AB12  ")),
        QEMU_VENDOR,
        QEMU_MODEL,
    );
    assert_eq!(
        udev_clean(id.serial.as_deref().unwrap()),
        "SQEMU_QEMU_HARDDISK_AB12"
    );
    assert_eq!(udev_clean(id.serial_short.as_deref().unwrap()), "AB12");
    assert_eq!(id.unit_serial.as_deref(), Some("  AB12  "));
    // A short vendor string disables the vendor-prefixed forms, as in scsi_id.
    let id = scsi_ident(None, Some(&page(0x80, b"AB12")), b"QEMU", QEMU_MODEL);
    assert_eq!(id.serial, None);
}

/// 512 bytes of IDENTIFY data with `serial`, `model` and `wwn` words 108-111.
fn identify(serial: &[u8; 20], model: &[u8; 40], wwn: [u16; 4]) -> Vec<u8> {
    let mut id = vec![0u8; 512];
    let put = |id: &mut Vec<u8>, word: usize, s: &[u8]| {
        for (k, pair) in s.chunks(2).enumerate() {
            id[2 * (word + k)] = pair[1];
            id[2 * (word + k) + 1] = pair[0];
        }
    };
    put(&mut id, 10, serial);
    put(&mut id, 27, model);
    for (k, w) in wwn.iter().enumerate() {
        id[2 * (108 + k)..2 * (108 + k) + 2].copy_from_slice(&w.to_le_bytes());
    }
    id
}

#[test]
fn ata_identify_through_page89_and_sat_pages() {
    let id = identify(
        b"    S3Z9NB0K123456A ",
        b"Samsung SSD 860 EVO 500GB               ",
        [0x5002, 0x538e, 0x4012, 0x3456],
    );
    let mut p89 = vec![0, 0x89, 0x02, 0x38];
    p89.resize(60, 0);
    p89.extend_from_slice(&id);
    let ata = ata_identify(page89_identify(&p89).unwrap()).unwrap();
    assert_eq!(udev_clean(&ata.serial), "S3Z9NB0K123456A");
    assert_eq!(udev_clean(&ata.model), "Samsung_SSD_860_EVO_500GB");
    assert_eq!(ata.wwn, Some(0x5002_538e_4012_3456));
    // No NAA 5 in word 108: no WWN.
    let id = identify(&[b' '; 20], &[b' '; 40], [0, 0, 0, 0]);
    assert_eq!(ata_identify(&id).unwrap().wwn, None);

    // libata's SAT pages for the same disk.
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
    let p83 = page(0x83, &body);
    let p80 = page(0x80, b"    S3Z9NB0K123456A ");
    let sat = ata_from_sat(Some(&p83), Some(&p80)).unwrap();
    assert_eq!(udev_clean(&sat.serial), "S3Z9NB0K123456A");
    assert_eq!(udev_clean(&sat.model), "Samsung_SSD_860_EVO_500GB");
    assert_eq!(sat.wwn, Some(0x5002_538e_4012_3456));
}

#[test]
fn udev_string_clean_up() {
    assert_eq!(replace_whitespace("  a  b\tc  "), "a_b_c");
    assert_eq!(replace_chars("a/b c\\x20é,"), "a_b_c\\x20é_");
    assert_eq!(udev_clean("WDC WD10EZEX-08W"), "WDC_WD10EZEX-08W");
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for len in 0..600 {
        for _ in 0..8 {
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 1 {
                bytes[1] = [0x80, 0x83, 0x89][len % 3];
            }
            if len > 6 && len % 2 == 0 {
                bytes[6] = 0;
            }
            let _ = scsi_ident(Some(&bytes), Some(&bytes), &bytes, &bytes);
            let _ = page80_serial(&bytes);
            let _ = ata_from_sat(Some(&bytes), Some(&bytes));
            let _ = page89_identify(&bytes).and_then(ata_identify);
            let _ = ata_identify(&bytes);
        }
    }
    for prefix in 0..40 {
        let mut body = designator(0x01, 0x03, &[0x60; 16]);
        body.extend(designator(0x02, 0x00, b"x"));
        let p = page(0x83, &body);
        let _ = scsi_ident(Some(&p[..prefix.min(p.len())]), None, b"", b"");
    }
}
