//! Boot mode, host name and cache flushing.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use tracing::debug;

use super::sysfs::read_trimmed;
use crate::error::{HardwareError, HardwareResult};
use crate::inventory::BootInfo;

/// `uefi` when the kernel was booted by UEFI firmware (`/sys/firmware/efi` exists), else
/// `bios`; the PXE interface is the raw `BOOTIF` parameter.
pub(crate) fn boot_info(root: &Path, bootif: Option<&str>) -> BootInfo {
    let mode = if root.join("sys/firmware/efi").exists() {
        "uefi"
    } else {
        "bios"
    };
    BootInfo {
        current_boot_mode: mode.to_string(),
        pxe_interface: bootif.map(str::to_string),
    }
}

/// The kernel's host name; on the real root falls back to `gethostname(2)`.
pub(crate) fn hostname(root: &Path) -> HardwareResult<String> {
    if let Some(name) = read_trimmed(&root.join("proc/sys/kernel/hostname")) {
        return Ok(name);
    }
    if root == Path::new("/") {
        return system_hostname();
    }
    Err(HardwareError::io(
        "reading proc/sys/kernel/hostname",
        std::io::Error::new(std::io::ErrorKind::NotFound, "no host name"),
    ))
}

/// `gethostname(2)`.
fn system_hostname() -> HardwareResult<String> {
    let name = nix::unistd::gethostname()
        .map_err(|e| HardwareError::io("gethostname", std::io::Error::from(e)))?;
    Ok(name.to_string_lossy().trim().to_string())
}

/// Flushes dirty pages to disk and, on the real root, asks the kernel to drop its caches.
pub(crate) fn full_sync(root: &Path) {
    nix::unistd::sync();
    if root != Path::new("/") {
        return;
    }
    let drop_caches = root.join("proc/sys/vm/drop_caches");
    let result = OpenOptions::new()
        .write(true)
        .open(&drop_caches)
        .and_then(|mut f| f.write_all(b"3"));
    if let Err(e) = result {
        debug!(error = %e, "could not drop caches (ignored)");
    }
}
