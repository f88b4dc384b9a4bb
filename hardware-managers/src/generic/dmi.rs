//! System identification from `/sys/class/dmi/id` (what lshw reports as product, serial,
//! vendor and firmware). Machines without DMI (many Arm boards, this CI host) get empty
//! strings, as IPA reports them.

use std::path::Path;

use super::sysfs::read_trimmed;
use crate::inventory::{Firmware, SystemVendorInfo};

/// Reads the DMI identification under `root`.
pub(crate) fn system_vendor_info(root: &Path) -> SystemVendorInfo {
    let dir = root.join("sys/class/dmi/id");
    let field = |name: &str| read_trimmed(&dir.join(name)).unwrap_or_default();
    SystemVendorInfo {
        product_name: product_name(&field("product_name"), &field("product_sku")),
        serial_number: field("product_serial"),
        manufacturer: field("sys_vendor"),
        firmware: Firmware {
            vendor: field("bios_vendor"),
            version: field("bios_version"),
            build_date: field("bios_date"),
        },
    }
}

/// lshw's system `product`, which IPA reports: the DMI product name followed by the SKU
/// number in parentheses when the SKU is set (`PowerEdge R640 (SKU=NotProvided;ModelName=...)`,
/// `ProLiant DL360 Gen10 (867959-B21)`).
fn product_name(name: &str, sku: &str) -> String {
    if sku.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({sku})")
    }
}
