//! `erase_pstore` (clean, priority 0, `deploy` interface): empties the kernel's persistent
//! store (pstore), where crash records of the previous owner may linger. The mount point comes
//! from `/proc/mounts` (filesystem type `pstore`); without one mounted there is nothing to do.

use std::path::{Path, PathBuf};

use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value};
use tracing::{debug, info};

use crate::clean::deploy_step;

/// `erase_pstore`.
pub const ERASE_PSTORE: &str = "erase_pstore";

/// The pstore step of `kind`: a clean step only, as IPA offers it.
pub fn steps(kind: StepKind) -> Vec<Step> {
    match kind {
        StepKind::Clean => vec![deploy_step(ERASE_PSTORE, 0, true)],
        StepKind::Deploy | StepKind::Service => Vec::new(),
    }
}

/// Runs `erase_pstore`; `Incompatible` for other names.
///
/// # Errors
/// `Io` when `/proc/mounts` cannot be read or an entry of the pstore cannot be removed.
pub fn execute(
    name: &str,
    _step_ctx: &StepContext,
    _args: &Map<String, Value>,
) -> HardwareResult<Value> {
    if name != ERASE_PSTORE {
        return Err(HardwareError::incompatible(name));
    }
    let mounts = std::fs::read_to_string("/proc/mounts")
        .map_err(|e| HardwareError::io("reading /proc/mounts", e))?;
    match pstore_mount_point(&mounts) {
        Some(dir) => erase_dir(&dir)?,
        None => debug!("no pstore mounted: nothing to erase"),
    }
    Ok(Value::Null)
}

/// The mount point of the first `pstore` filesystem in `mounts` (the text of `/proc/mounts`).
pub fn pstore_mount_point(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "pstore").then(|| PathBuf::from(unescape_mount_field(target)))
    })
}

/// Undoes the octal escapes (`\040` for a space, …) of a `/proc/mounts` field.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes everything under `dir` (files and, should there be any, directories), keeping
/// `dir` itself.
///
/// # Errors
/// `Io` naming the entry that could not be listed or removed.
pub fn erase_dir(dir: &Path) -> HardwareResult<()> {
    info!(path = %dir.display(), "cleaning up pstore");
    let entries = std::fs::read_dir(dir)
        .map_err(|e| HardwareError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| HardwareError::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| HardwareError::io(format!("removing {}", path.display()), e))?;
        debug!(path = %path.display(), "removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
pstore /sys/fs/pstore pstore rw,nosuid,nodev,noexec,relatime 0 0
efivarfs /sys/firmware/efi/efivars efivarfs rw,nosuid,nodev,noexec,relatime 0 0
";

    #[test]
    fn finds_the_pstore_mount_point() {
        assert_eq!(
            pstore_mount_point(MOUNTS),
            Some(PathBuf::from("/sys/fs/pstore"))
        );
        assert_eq!(
            pstore_mount_point("none /my\\040store pstore rw 0 0\n"),
            Some(PathBuf::from("/my store"))
        );
        let without = MOUNTS.replace("pstore /sys/fs/pstore pstore", "tmpfs /tmp tmpfs");
        assert_eq!(pstore_mount_point(&without), None);
        assert_eq!(pstore_mount_point(""), None);
    }

    #[test]
    fn erases_every_entry_but_keeps_the_mount_point() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("pstore");
        std::fs::create_dir(&dir)?;
        std::fs::write(dir.join("dmesg-efi-168000000001"), b"oops")?;
        std::fs::write(dir.join("console-ramoops-0"), b"log")?;
        std::fs::create_dir_all(dir.join("sub/deeper"))?;
        std::fs::write(dir.join("sub/deeper/x"), b"x")?;
        let mounts = format!("pstore {} pstore rw 0 0\n", dir.display());
        let found = pstore_mount_point(&mounts).ok_or_else(|| anyhow::anyhow!("not found"))?;
        erase_dir(&found)?;
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir)?.count(), 0);
        // Erasing an empty pstore is fine too.
        erase_dir(&dir)?;
        Ok(())
    }

    #[test]
    fn listed_as_a_clean_step_only() {
        let clean = steps(StepKind::Clean);
        assert_eq!(clean.len(), 1);
        assert_eq!(clean[0].step, ERASE_PSTORE);
        assert_eq!(clean[0].interface, "deploy");
        assert_eq!(clean[0].priority, 0);
        assert_eq!(clean[0].abortable, Some(true));
        assert!(!clean[0].reboot_requested);
        assert!(steps(StepKind::Deploy).is_empty());
        assert!(steps(StepKind::Service).is_empty());
    }
}
