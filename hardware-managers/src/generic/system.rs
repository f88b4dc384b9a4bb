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
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which lives across the call; the kernel
    // writes at most `buf.len()` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(HardwareError::io(
            "gethostname",
            std::io::Error::last_os_error(),
        ));
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).trim().to_string())
}

/// Flushes dirty pages to disk and, on the real root, asks the kernel to drop its caches.
pub(crate) fn full_sync(root: &Path) {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
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
