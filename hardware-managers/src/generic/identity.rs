//! Serials and WWNs of a disk as udev (Debian 12, udev 252) records them, computed from
//! sysfs when there is no udev database (the minimal ramdisk), and the inventory's view of
//! them, which is lsblk's (IPA reads `SERIAL` and `WWN` from lsblk).
//!
//! What udev's rules and helpers would set, by device kind:
//!
//! | device | source | properties |
//! |---|---|---|
//! | NVMe namespace | `serial`, `model` (controller), `wwid`, `nsid` | `ID_SERIAL_SHORT`, `ID_WWN` (verbatim `eui.`/`naa.`/`nvme.` id), `ID_SERIAL` = model_serial_nsid (escaped) |
//! | virtio-blk | `serial` | `ID_SERIAL` |
//! | libata (`vendor` `ATA`) | `vpd_pg89` IDENTIFY data (as `ata_id`), else libata's SAT pages 0x80/0x83 | `ID_SERIAL_SHORT`, `ID_SERIAL`, `ID_WWN` = `ID_WWN_WITH_EXTENSION` (NAA 5) |
//! | USB mass storage | USB `serial`, SCSI vendor/model (as `usb_id`) | `ID_SERIAL_SHORT`, `ID_SERIAL` |
//! | other SCSI (SAS, virtio-scsi, FC, iSCSI, RAID LUNs) | `vpd_pg83`, `vpd_pg80` (as `scsi_id`) | `ID_SERIAL`, `ID_SERIAL_SHORT`, `ID_WWN`, `ID_WWN_WITH_EXTENSION`, `ID_WWN_VENDOR_EXTENSION`, `ID_SCSI_SERIAL` |
//!
//! Not covered: a SATA disk behind a USB bridge, where udev's `ata_id` may reach the disk
//! through ATA pass-through (we report the bridge's USB serial, as `usb_id` does).

use std::fs;
use std::path::Path;

use super::sysdev::{SysDevice, SysTree};
use super::udev::UdevProperties;
use super::vpd::{self, udev_clean};

/// The identifiers the inventory shows for a disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DiskIds {
    /// `serial`.
    pub serial: Option<String>,
    /// `wwn`.
    pub wwn: Option<String>,
    /// `wwn_with_extension`.
    pub wwn_with_extension: Option<String>,
    /// `wwn_vendor_extension`.
    pub wwn_vendor_extension: Option<String>,
}

impl DiskIds {
    /// Each field of `self`, else of `other`.
    pub fn or(self, other: DiskIds) -> DiskIds {
        DiskIds {
            serial: self.serial.or(other.serial),
            wwn: self.wwn.or(other.wwn),
            wwn_with_extension: self.wwn_with_extension.or(other.wwn_with_extension),
            wwn_vendor_extension: self.wwn_vendor_extension.or(other.wwn_vendor_extension),
        }
    }
}

/// Properties that identify a device (as opposed to filesystem or partition properties).
const IDENTITY_KEYS: &[&str] = &[
    "ID_SERIAL",
    "ID_SERIAL_SHORT",
    "ID_SCSI_SERIAL",
    "SCSI_IDENT_SERIAL",
    "ID_WWN",
    "ID_WWN_WITH_EXTENSION",
];

/// Whether udev's record names the device (has a serial or WWN).
pub(crate) fn has_identity(props: &UdevProperties) -> bool {
    IDENTITY_KEYS.iter().any(|k| props.get(k).is_some())
}

/// The inventory's identifiers from udev properties, as lsblk (2.38) derives its `SERIAL`
/// (`SCSI_IDENT_SERIAL`, `ID_SCSI_SERIAL`, `ID_SERIAL_SHORT`, `ID_SERIAL`, whitespace
/// normalised) and `WWN` (`ID_WWN_WITH_EXTENSION`, else `ID_WWN`) columns, plus IPA's own
/// `ID_WWN_WITH_EXTENSION` / `ID_WWN_VENDOR_EXTENSION` look-ups.
pub(crate) fn inventory_view(props: &UdevProperties) -> DiskIds {
    let serial = [
        "SCSI_IDENT_SERIAL",
        "ID_SCSI_SERIAL",
        "ID_SERIAL_SHORT",
        "ID_SERIAL",
    ]
    .iter()
    .find_map(|k| props.get(k))
    .map(|s| normalize_whitespace(&s))
    .filter(|s| !s.is_empty());
    DiskIds {
        serial,
        wwn: props
            .get("ID_WWN_WITH_EXTENSION")
            .or_else(|| props.get("ID_WWN")),
        wwn_with_extension: props.get("ID_WWN_WITH_EXTENSION"),
        wwn_vendor_extension: props.get("ID_WWN_VENDOR_EXTENSION"),
    }
}

/// util-linux's `normalize_whitespace`: trimmed, inner runs of whitespace as one space.
fn normalize_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The identity properties udev would have recorded for disk `name` whose sysfs directory
/// is `dir`; `None` for devices this module does not know (the caller keeps its sysfs
/// fallbacks then).
pub(crate) fn synthesize(root: &Path, dir: &Path, name: &str) -> Option<UdevProperties> {
    let tree = SysTree::new(root)?;
    let dev = tree.device(dir)?;
    let mut props = UdevProperties::default();
    if is_nvme_namespace(name) {
        nvme(&tree, &dev, &mut props);
    } else if name.starts_with("vd") {
        if let Some(serial) = attr_up(&tree, &dev, "serial") {
            props.set("ID_SERIAL", &serial);
        }
    } else if name.starts_with("sd") {
        scsi(&tree, &dev, &mut props)?;
    } else {
        return None;
    }
    Some(props)
}

/// `nvme<N>n<M>` (a namespace, not a partition or a controller path).
fn is_nvme_namespace(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("nvme") else {
        return false;
    };
    let Some((ctrl, ns)) = rest.split_once('n') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(ctrl) && digits(ns)
}

/// A `$attr{}` value as udev substitutes it: trailing whitespace removed, unusual
/// characters replaced (spaces stay); leading whitespace is removed too, as lsblk's
/// normalisation does before the inventory sees it.
fn attr_value(raw: &str) -> Option<String> {
    let v: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "#+-.:=@_/ $%?,".contains(c) || !c.is_ascii() {
                c
            } else if c.is_ascii_whitespace() {
                ' '
            } else {
                '_'
            }
        })
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Attribute `name` of `dev` or, like a udev `ATTRS{}` match, of its nearest ancestor
/// having it (the `device` link is tried first, as fake trees may lack `uevent` files).
fn attr_up(tree: &SysTree, dev: &SysDevice, name: &str) -> Option<String> {
    if let Some(v) = dev.attr(name).as_deref().and_then(attr_value) {
        return Some(v);
    }
    if let Some(v) = fs::read_to_string(dev.path().join("device").join(name))
        .ok()
        .as_deref()
        .and_then(attr_value)
    {
        return Some(v);
    }
    let mut cur = tree.parent(dev);
    while let Some(d) = cur {
        if let Some(v) = d.attr(name).as_deref().and_then(attr_value) {
            return Some(v);
        }
        cur = tree.parent(&d);
    }
    None
}

/// The NVMe rules of `60-persistent-storage.rules`.
fn nvme(tree: &SysTree, dev: &SysDevice, props: &mut UdevProperties) {
    let serial = attr_up(tree, dev, "serial");
    let model = attr_up(tree, dev, "model");
    let nsid = attr_up(tree, dev, "nsid");
    if let Some(wwid) = attr_up(tree, dev, "wwid") {
        props.set("ID_WWN", &wwid);
    }
    if let Some(serial) = &serial {
        props.set("ID_SERIAL_SHORT", serial);
        if let Some(model) = &model {
            let id = match &nsid {
                Some(nsid) => format!("{model}_{serial}_{nsid}"),
                None => format!("{model}_{serial}"),
            };
            // The rule sets OPTIONS="string_escape=replace": spaces and the like become `_`.
            props.set("ID_SERIAL", &vpd::replace_chars(&id));
        }
    }
}

/// SCSI disks: `ata_id` for libata disks, `usb_id` for USB storage, else `scsi_id`. `None`
/// when sysfs has none of the data these helpers read.
fn scsi(tree: &SysTree, dev: &SysDevice, props: &mut UdevProperties) -> Option<()> {
    // The SCSI device: the disk's `device` link, else its parent device.
    let link = dev.path().join("device");
    let sdev = if link.is_dir() {
        link
    } else {
        tree.parent(dev)?.path().to_path_buf()
    };
    let raw = |attr: &str| {
        fs::read(sdev.join(attr)).ok().map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\n')
                .to_string()
        })
    };
    let page = |n: &str| fs::read(sdev.join(format!("vpd_pg{n}"))).ok();
    let (p80, p83, p89) = (page("80"), page("83"), page("89"));
    let vendor = raw("vendor").unwrap_or_default();
    let model = raw("model").unwrap_or_default();

    if vendor.trim_end() == "ATA" {
        let ata = p89
            .as_deref()
            .and_then(vpd::page89_identify)
            .and_then(vpd::ata_identify)
            .or_else(|| vpd::ata_from_sat(p83.as_deref(), p80.as_deref()));
        if let Some(ata) = ata {
            let serial = udev_clean(&ata.serial);
            let model = if ata.model.trim().is_empty() {
                udev_clean(&model)
            } else {
                udev_clean(&ata.model)
            };
            if serial.is_empty() {
                props.set("ID_SERIAL", &model);
            } else {
                props.set("ID_SERIAL", &format!("{model}_{serial}"));
                props.set("ID_SERIAL_SHORT", &serial);
            }
            if let Some(wwn) = ata.wwn {
                props.set("ID_WWN", &format!("0x{wwn:x}"));
                props.set("ID_WWN_WITH_EXTENSION", &format!("0x{wwn:x}"));
            }
            return Some(());
        }
    }

    if let Some(usb) = usb_device(tree, dev) {
        // usb_id ignores serials with control, non-ASCII or comma characters.
        let serial = usb
            .attr("serial")
            .filter(|s| s.bytes().all(|b| (0x20..=0x7f).contains(&b) && b != b','))
            .map(|s| udev_clean(&s))
            .unwrap_or_default();
        let mut id = format!("{}_{}", udev_clean(&vendor), udev_clean(&model));
        if !serial.is_empty() {
            id = format!("{id}_{serial}");
        }
        // The instance: target and LUN of the SCSI device (`-0:0`).
        let name = sdev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let [_, _, target, lun] = name.split(':').collect::<Vec<_>>()[..] {
            id = format!("{id}-{target}:{lun}");
        }
        props.set("ID_SERIAL", &id);
        if !serial.is_empty() {
            props.set("ID_SERIAL_SHORT", &serial);
        }
        return Some(());
    }

    if p83.is_none() && p80.is_none() {
        return None;
    }
    let ident = vpd::scsi_ident(
        p83.as_deref(),
        p80.as_deref(),
        vendor.as_bytes(),
        model.as_bytes(),
    );
    if let (Some(serial), Some(short)) = (&ident.serial, &ident.serial_short) {
        props.set("ID_SERIAL", &udev_clean(serial));
        props.set("ID_SERIAL_SHORT", &udev_clean(short));
    }
    if let Some(wwn) = &ident.wwn {
        props.set("ID_WWN", &format!("0x{wwn}"));
        match &ident.wwn_vendor_extension {
            Some(ext) => {
                props.set("ID_WWN_VENDOR_EXTENSION", &format!("0x{ext}"));
                props.set("ID_WWN_WITH_EXTENSION", &format!("0x{wwn}{ext}"));
            }
            None => props.set("ID_WWN_WITH_EXTENSION", &format!("0x{wwn}")),
        }
    }
    if let Some(unit) = &ident.unit_serial {
        props.set("ID_SCSI_SERIAL", unit);
    }
    Some(())
}

/// The USB device (`usb_device`, the one with `idVendor`) a SCSI disk sits behind.
fn usb_device(tree: &SysTree, dev: &SysDevice) -> Option<SysDevice> {
    let mut cur = tree.parent(dev);
    while let Some(d) = cur {
        if d.in_subsystem("usb") && d.devtype().as_deref() == Some("usb_device") {
            return Some(d);
        }
        cur = tree.parent(&d);
    }
    None
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
