//! `usb-devices`: IPA 13's `usb_devices`, computed from `/sys/bus/usb/devices` the way lshw
//! (B.02.19, which IPA runs) builds the records IPA keeps.
//!
//! IPA lists `lshw -json` nodes with id exactly `usb` and class `generic` (at any depth),
//! each as `{"product", "vendor", "handle"}` (`''` for what lshw left out), then passes them
//! through the managers' `filter_device` (the generic manager keeps them all; this agent has
//! no filtering managers). lshw reads the kernel's USB device list (debugfs
//! `usb/devices`, the same data as sysfs) and, per device:
//!
//! - **handle**: `USB:<bus>:<devnum>`.
//! - **vendor / product**: the names of `idVendor` / `idVendor:idProduct` in `usb.ids` (on
//!   lshw's search path, see [`ids`]), then replaced by the device's `manufacturer` /
//!   `product` string when it has one — as lshw scans that string: control characters
//!   dropped, cut at the first character outside `' '..='z'` and after 80, spaces trimmed
//!   (see [`lshw_string`]).
//! - **id**: `usb` for a non-root-hub device; lshw renames siblings with the same id to
//!   `usb:0`, `usb:1`, ..., so only a device that is the *only* device on its hub's ports
//!   keeps `usb` (root hubs are `usbhost`). Devices on a hub with several are never listed.
//! - **class**: see [`class`]; hubs, HID, storage, audio, video, printers, communication and
//!   wireless devices are not `generic`, nor devices whose network, input or MMC host
//!   lshw's later scans merge into the USB node.
//!
//! Order: by bus number, then depth first by port (lshw's tree order within a bus; across
//! host controllers lshw follows its PCI tree, which may order buses differently).
//!
//! Remaining differences: sysfs shows only each interface's current alternate setting (lshw
//! also sees the class of inactive alternate settings); lshw without debugfs mounted (and
//! without the legacy `/proc/bus/usb/devices`) finds no USB device at all, while this reads
//! sysfs; a device name that is not valid UTF-8 in `usb.ids` is cut at the first invalid
//! byte as lshw does, but a string descriptor is read as bytes (lshw stops at non-ASCII,
//! too); lshw's framebuffer scan fills an empty product of a generic device with the
//! framebuffer's name (a DisplayLink adapter without strings), not done here; IPA fails the
//! collector when `lshw` fails, this never fails.

pub mod class;
pub mod ids;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ids::UsbIds;

/// One entry of `usb_devices` (IPA's `USBInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsbDevice {
    /// Product name, or `''`.
    pub product: String,
    /// Vendor name, or `''`.
    pub vendor: String,
    /// `USB:<bus>:<devnum>`.
    pub handle: String,
}

/// A USB device directory (not a root hub, not an interface).
#[derive(Debug, Clone)]
pub(crate) struct Dev {
    /// `1-2.3`.
    pub name: String,
    /// The port path: bus 1, ports `[2, 3]`.
    pub bus: u32,
    pub ports: Vec<u32>,
    /// Its directory, symlinks resolved.
    pub path: PathBuf,
}

impl Dev {
    /// The hub it hangs off: `usb<bus>` or the parent's name.
    fn parent(&self) -> String {
        match self.name.rsplit_once('.') {
            Some((p, _)) => p.to_string(),
            None => format!("usb{}", self.bus),
        }
    }
}

/// Parses a device name `B-P[.P]*`.
fn port_path(name: &str) -> Option<(u32, Vec<u32>)> {
    let (bus, ports) = name.split_once('-')?;
    let bus = bus.parse().ok()?;
    let ports = ports
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some((bus, ports))
}

/// The USB devices under `root/sys/bus/usb/devices`, sorted by bus then port path.
pub(crate) fn devices(root: &Path) -> Vec<Dev> {
    let dir = root.join("sys/bus/usb/devices");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<Dev> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (bus, ports) = port_path(&name)?;
            let path = fs::canonicalize(dir.join(&name)).ok()?;
            Some(Dev {
                name,
                bus,
                ports,
                path,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.bus, &a.ports).cmp(&(b.bus, &b.ports)));
    out
}

/// `usb_devices` for the machine under `root` (see the module documentation).
pub fn collect(root: &Path) -> Vec<UsbDevice> {
    let all = devices(root);
    let mut siblings: HashMap<String, usize> = HashMap::new();
    for d in &all {
        *siblings.entry(d.parent()).or_default() += 1;
    }
    let candidates: Vec<&Dev> = all
        .iter()
        .filter(|d| siblings.get(&d.parent()) == Some(&1))
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let merged = class::merged_devices(root, &all);
    let mut ids: Option<UsbIds> = None;
    let mut out = Vec::new();
    for d in candidates {
        if !class::stays_generic(d) || merged.contains(&d.name) {
            continue;
        }
        let (Some(bus), Some(devnum)) = (number(&d.path, "busnum"), number(&d.path, "devnum"))
        else {
            continue;
        };
        let ids = ids.get_or_insert_with(|| UsbIds::load(root));
        let vendor_id = hex(&d.path, "idVendor");
        let product_id = hex(&d.path, "idProduct");
        let (mut vendor, mut product) = vendor_id
            .map(|v| ids.describe(v, product_id.unwrap_or(0)))
            .unwrap_or_default();
        if let Ok(raw) = fs::read(d.path.join("manufacturer")) {
            vendor = lshw_string(&raw);
        }
        if let Ok(raw) = fs::read(d.path.join("product")) {
            product = lshw_string(&raw);
        }
        out.push(UsbDevice {
            product,
            vendor,
            handle: format!("USB:{bus}:{devnum}"),
        });
    }
    out
}

fn number(dir: &Path, file: &str) -> Option<u32> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

fn hex(dir: &Path, file: &str) -> Option<u16> {
    u16::from_str_radix(fs::read_to_string(dir.join(file)).ok()?.trim(), 16).ok()
}

/// A string descriptor (sysfs `manufacturer`, `product`, `serial`) as lshw ends up with it
/// from the kernel's `S:  Name=<at most 100 bytes>` line: the line stripped of control
/// characters and trailing blanks, the value scanned as `%80[ -z]` (at most 80 characters
/// from `' '` to `'z'`), then trimmed. A value starting outside that range gives `''`.
pub fn lshw_string(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = &raw[..raw.len().min(100)];
    let cleaned: Vec<u8> = raw.iter().copied().filter(|&b| b >= b' ').collect();
    let scanned: Vec<u8> = cleaned
        .iter()
        .copied()
        .take_while(|b| (b' '..=b'z').contains(b))
        .take(80)
        .collect();
    String::from_utf8_lossy(&scanned)
        .trim_matches(' ')
        .to_string()
}

#[cfg(test)]
mod tests;
