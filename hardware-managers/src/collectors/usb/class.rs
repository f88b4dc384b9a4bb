//! Whether lshw leaves a USB device in class `generic`.
//!
//! lshw sets the class from the device class (`bDeviceClass`), and while it is still
//! `generic`, from each interface of the active configuration in turn. Audio (1),
//! communication (2), HID (3), printer (7), mass storage (8), hub (9), video (0x0e) and
//! wireless (0xe0) give other classes; every other code (0 "per interface", data, smart card,
//! imaging, vendor specific, miscellaneous, ...) leaves `generic`. A device stays `generic`
//! when none of these codes gives another class.
//!
//! Later lshw scans merge into the USB node whose bus info (`usb@<bus>:<ports>`, from the
//! USB interface a class device sits on, or its parent) matches: an input device (with an
//! `id` directory) makes it `input`, an MMC host `bus`, and a network interface `network`
//! unless the USB device has a serial number different from the interface's MAC (lshw then
//! does not merge).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::{Dev, lshw_string};

/// The classes lshw gives a node other than `generic`.
const SPECIFIC: [u8; 8] = [0x01, 0x02, 0x03, 0x07, 0x08, 0x09, 0x0e, 0xe0];

fn class_code(dir: &Path, file: &str) -> Option<u8> {
    u8::from_str_radix(fs::read_to_string(dir.join(file)).ok()?.trim(), 16).ok()
}

/// Whether the device and its active configuration's interfaces keep lshw's `generic`.
pub(crate) fn stays_generic(dev: &Dev) -> bool {
    if class_code(&dev.path, "bDeviceClass").is_some_and(|c| SPECIFIC.contains(&c)) {
        return false;
    }
    // lshw reads interfaces only under an active configuration numbered above 0.
    let configured = fs::read_to_string(dev.path.join("bConfigurationValue"))
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|v| v > 0);
    if !configured {
        return true;
    }
    let prefix = format!("{}:", dev.name);
    let Ok(entries) = fs::read_dir(&dev.path) else {
        return true;
    };
    !entries.flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with(&prefix)
            && class_code(&e.path(), "bInterfaceClass").is_some_and(|c| SPECIFIC.contains(&c))
    })
}

/// The names of the devices (`1-2.3`) lshw's input, MMC and network scans merge into.
pub(crate) fn merged_devices(root: &Path, devices: &[Dev]) -> HashSet<String> {
    let mut out = HashSet::new();
    let class = root.join("sys/class");
    for entry in list(&class.join("input")) {
        if entry.join("id").is_dir()
            && let Some(d) = usb_device_of(root, &entry)
        {
            out.insert(d);
        }
    }
    for entry in list(&class.join("mmc_host")) {
        if let Some(d) = usb_device_of(root, &entry) {
            out.insert(d);
        }
    }
    for entry in list(&class.join("net")) {
        let Some(d) = usb_device_of(root, &entry) else {
            continue;
        };
        let serial = devices
            .iter()
            .find(|x| x.name == d)
            .and_then(|x| fs::read(x.path.join("serial")).ok())
            .map(|raw| lshw_string(&raw))
            .unwrap_or_default();
        if serial.is_empty() || serial == mac(&entry) {
            out.insert(d);
        }
    }
    out
}

fn list(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir)
        .map(|it| it.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// lshw's serial of a network interface: its MAC, `''` when all zero.
fn mac(entry: &Path) -> String {
    let a = fs::read_to_string(entry.join("address")).unwrap_or_default();
    let a = a.trim().to_ascii_lowercase();
    if a.chars().all(|c| c == '0' || c == ':') {
        String::new()
    } else {
        a
    }
}

/// The USB device (`1-2.3`) of lshw's bus info for class device `entry`: its `device` link
/// (or itself) resolved, when that or its parent is a USB interface (`1-2.3:1.0`).
fn usb_device_of(root: &Path, entry: &Path) -> Option<String> {
    let link = entry.join("device");
    let leaf = if link.is_dir() {
        fs::canonicalize(&link).ok()?
    } else {
        fs::canonicalize(entry).ok()?
    };
    let bus = root.join("sys/bus/usb/devices");
    [Some(leaf.as_path()), leaf.parent()]
        .into_iter()
        .flatten()
        .find_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let (device, interface) = name.split_once(':')?;
            let (config, number) = interface.split_once('.')?;
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (super::port_path(device).is_some() && numeric(config) && numeric(number))
                .then_some(())?;
            (fs::canonicalize(bus.join(&name)).ok()? == p).then(|| device.to_string())
        })
}
