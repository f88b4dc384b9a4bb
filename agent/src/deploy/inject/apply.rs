//! Writing: each target filesystem is mounted read-write in turn and every item written or
//! deleted through the confined [`Walker`].

use std::path::{Path, PathBuf};

use hardware_managers::HardwareResult;
use hardware_managers::IpaClass;
use hardware_managers::guard::DiskGuard;
use tracing::info;

use super::error::InjectError;
use super::mount::Mounted;
use super::plan::disk_of;
use super::validate::{Action, FileSpec};
use super::walker::{FileAttrs, delete_file, write_file};
use super::{failed, guard_error};

pub(super) fn apply_all(
    files: &[FileSpec],
    devices: &[PathBuf],
    fetched: &[Option<Vec<u8>>],
    guard: &DiskGuard,
) -> HardwareResult<()> {
    let mut current: Option<Mounted> = None;
    for ((f, dev), body) in files.iter().zip(devices).zip(fetched) {
        if current.as_ref().is_none_or(|m| m.device != *dev) {
            // Unmount the previous filesystem before the guard looks at the disk again.
            drop(current.take());
            guard.check_writable(&disk_of(dev)).map_err(guard_error)?;
            current = Some(Mounted::new(dev, true).map_err(|e| {
                failed(
                    IpaClass::DeploymentError,
                    format!("Cannot mount {} for {}: {e}", dev.display(), f.describe()),
                )
            })?);
        }
        let Some(m) = current.as_ref() else { continue };
        let content = match &f.action {
            Action::Delete => None,
            Action::Inline(b) => Some(b.as_slice()),
            // Never None here (fetched before); an error rather than a delete if it were.
            Action::Url(_) => Some(body.as_deref().ok_or_else(|| {
                failed(
                    IpaClass::CommandExecutionError,
                    format!("no content was downloaded for {}", f.describe()),
                )
            })?),
        };
        let done = apply_one(&m.dir, f, content).map_err(|e| {
            failed(
                IpaClass::CommandExecutionError,
                format!("Failed to process file {}: {e}", f.describe()),
            )
        })?;
        info!(file = %f.path, partition = %dev.display(), "{done}");
    }
    drop(current);
    Ok(())
}

/// Writes or deletes one file below `mount` (a mounted filesystem, treated as `/`). Returns
/// what happened, for the log.
pub(super) fn apply_one(
    mount: &Path,
    f: &FileSpec,
    content: Option<&[u8]>,
) -> Result<String, InjectError> {
    match content {
        None => delete_file(mount, &f.components),
        Some(content) => {
            let attrs = FileAttrs {
                mode: f.mode,
                dirmode: f.dirmode,
                owner: f.owner,
                group: f.group,
            };
            write_file(mount, &f.components, content, attrs)
        }
    }
}
