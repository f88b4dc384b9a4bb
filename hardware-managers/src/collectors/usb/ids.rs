//! The `usb.ids` names lshw gives a USB device before its own strings replace them.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// lshw's search path (its `DATADIR` is `/usr/share`), relative to the root; a name from an
/// earlier file wins over a later one.
pub const SEARCH_PATH: [&str; 7] = [
    "usr/share/usb.ids",
    "usr/share/lshw/usb.ids",
    "usr/local/share/usb.ids",
    "usr/share/usb.ids",
    "etc/usb.ids",
    "usr/share/hwdata/usb.ids",
    "usr/share/misc/usb.ids",
];

/// Vendor and product names.
#[derive(Debug, Default)]
pub struct UsbIds {
    vendors: HashMap<u16, String>,
    products: HashMap<u32, String>,
}

impl UsbIds {
    /// Every file of [`SEARCH_PATH`] under `root` (none in the minimal ramdisk).
    pub fn load(root: &Path) -> Self {
        let mut ids = UsbIds::default();
        for path in SEARCH_PATH.iter().rev() {
            if let Ok(text) = fs::read(root.join(path)) {
                ids.add(&text);
            }
        }
        ids
    }

    /// Adds the entries of one file's text, as lshw reads them: a line starting with four
    /// hex digits names a vendor, a tab then four hex digits a product of the last vendor.
    pub fn add(&mut self, text: &[u8]) {
        let mut vendor: u16 = 0;
        for line in text.split(|&b| b == b'\n') {
            let (product, line) = match line.strip_prefix(b"\t") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            if line.len() < 4 || !line[..4].iter().all(u8::is_ascii_hexdigit) {
                continue;
            }
            let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            // strtol: saturates at LONG_MAX; lshw then keeps the low bits.
            let id = std::str::from_utf8(&line[..digits])
                .ok()
                .and_then(|s| i64::from_str_radix(s, 16).ok())
                .unwrap_or(i64::MAX);
            let name = strip(&line[digits..]);
            if product {
                let key = (u32::from(vendor) << 16).wrapping_add(id as u32);
                self.products.insert(key, name);
            } else {
                vendor = id as u16;
                self.vendors.insert(vendor, name);
            }
        }
    }

    /// `(vendor, product)` names: both `''` when the vendor is unknown, the product `''`
    /// when only it is unknown.
    pub fn describe(&self, vendor: u16, product: u16) -> (String, String) {
        let Some(v) = self.vendors.get(&vendor) else {
            return Default::default();
        };
        let key = (u32::from(vendor) << 16) | u32::from(product);
        (
            v.clone(),
            self.products.get(&key).cloned().unwrap_or_default(),
        )
    }
}

/// lshw's `hw::strip`: blanks and control bytes trimmed, inner control bytes dropped, cut at
/// the first invalid UTF-8 sequence.
fn strip(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b > b' ').unwrap_or(raw.len());
    let end = raw.iter().rposition(|&b| b > b' ').map_or(start, |i| i + 1);
    let kept: Vec<u8> = raw[start..end.max(start)]
        .iter()
        .copied()
        .filter(|&b| b >= b' ')
        .collect();
    match std::str::from_utf8(&kept) {
        Ok(s) => s.to_string(),
        Err(e) => String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned(),
    }
}
