//! A disk's model as lsblk's `MODEL` column gives it to IPA: udev's `ID_MODEL_ENC` (its
//! `\xNN` escapes decoded) or `ID_MODEL` when udev recorded the disk, else sysfs
//! `device/model`; whitespace runs collapsed to one space and trimmed.
//!
//! With udev, a SATA disk's model is the full ATA IDENTIFY string (`Samsung SSD 860 EVO
//! 500GB`) that `ata_id` records, where sysfs only has the 16-character SCSI INQUIRY product.

use std::path::Path;

use super::sysfs::read_trimmed;
use super::udev::UdevProperties;

/// lsblk's model of the disk whose udev record is `udev` and sysfs device is `device`.
pub(crate) fn lsblk_model(udev: &UdevProperties, device: &Path) -> Option<String> {
    udev.get("ID_MODEL_ENC")
        .map(|m| unhexmangle(&m))
        .or_else(|| udev.get("ID_MODEL"))
        .or_else(|| read_trimmed(&device.join("model")))
        .map(|m| normalize_whitespace(&m))
        .filter(|m| !m.is_empty())
}

/// Decodes udev's `\xNN` escapes.
fn unhexmangle(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(b) = bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Collapses whitespace runs to one space and trims, as lsblk does.
fn normalize_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_then_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model"), "Samsung SSD 860 \n").unwrap();
        let none = UdevProperties::default();
        assert_eq!(
            lsblk_model(&none, dir.path()).as_deref(),
            Some("Samsung SSD 860")
        );
        let ata = UdevProperties::parse(
            "E:ID_MODEL=Samsung_SSD_860_EVO_500GB\n\
             E:ID_MODEL_ENC=Samsung\\x20SSD\\x20860\\x20EVO\\x20500GB\\x20\\x20\\x20\n",
        );
        assert_eq!(
            lsblk_model(&ata, dir.path()).as_deref(),
            Some("Samsung SSD 860 EVO 500GB")
        );
        let plain = UdevProperties::parse("E:ID_MODEL=QEMU_HARDDISK\n");
        assert_eq!(
            lsblk_model(&plain, dir.path()).as_deref(),
            Some("QEMU_HARDDISK")
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(lsblk_model(&none, empty.path()), None);
    }

    #[test]
    fn whitespace_and_escapes() {
        assert_eq!(
            normalize_whitespace("  LOGICAL   VOLUME  "),
            "LOGICAL VOLUME"
        );
        assert_eq!(unhexmangle("a\\x20b\\x2"), "a b\\x2");
        assert_eq!(unhexmangle("\\xzz"), "\\xzz");
    }
}
