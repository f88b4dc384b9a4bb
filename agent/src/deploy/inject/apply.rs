//! Writing: each target filesystem is mounted read-write in turn and every item written or
//! deleted through the confined [`Walker`].

use std::fs::Permissions;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hardware_managers::HardwareResult;
use hardware_managers::guard::DiskGuard;
use tracing::info;

use super::error::InjectError;
use super::mount::Mounted;
use super::plan::disk_of;
use super::validate::{Action, FileSpec};
use super::walker::{
    DEFAULT_FILE_MODE, Kind, Walker, c_name, create_at, file_kind, open_root, readlink_at, stat_at,
    unlink_at,
};
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
                    "DeploymentError",
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
                    "CommandExecutionError",
                    format!("no content was downloaded for {}", f.describe()),
                )
            })?),
        };
        let done = apply_one(&m.dir, f, content).map_err(|e| {
            failed(
                "CommandExecutionError",
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
    let root = open_root(mount).map_err(InjectError::io(format!("opening {}", mount.display())))?;
    let mut w = Walker::new(root.as_fd());
    let Some((name, parents)) = f.components.split_last() else {
        return Err(InjectError::Path("the path names no file".into()));
    };
    let parents = parents.iter().map(|c| c.as_bytes().to_vec());
    let Some(content) = content else {
        // Delete: a missing directory means there is nothing to delete.
        if !w.walk(parents, None)? {
            return Ok("already absent".into());
        }
        let at = w.shown(Some(name.as_bytes()));
        let cname = c_name(name.as_bytes())?;
        return match unlink_at(w.cur(), &cname) {
            Ok(()) => Ok("deleted".into()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok("already absent".into()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => Err(
                InjectError::Path(format!("{at} is a directory; only files can be deleted")),
            ),
            Err(e) => Err(InjectError::io(format!("deleting {at}"))(e)),
        };
    };

    if !w.walk(parents, Some(f.dirmode))? {
        return Err(InjectError::Path(
            "the directory could not be created".into(),
        ));
    }
    let mut name = name.as_bytes().to_vec();
    let existed = loop {
        let at = w.shown(Some(&name));
        let cname = c_name(&name)?;
        let Some(st) =
            stat_at(w.cur(), &cname).map_err(InjectError::io(format!("inspecting {at}")))?
        else {
            break false;
        };
        match file_kind(&st) {
            Kind::File => break true,
            Kind::Dir => return Err(InjectError::Path(format!("{at} is a directory"))),
            Kind::Other => {
                return Err(InjectError::Path(format!(
                    "{at} is not a regular file (a device, FIFO or socket); refusing to write it"
                )));
            }
            Kind::Link => {
                w.hop(&at)?;
                let target = readlink_at(w.cur(), &cname)
                    .map_err(InjectError::io(format!("reading link {at}")))?;
                if target.ends_with(b"/") {
                    return Err(InjectError::Path(format!(
                        "{at} is a symbolic link to a directory"
                    )));
                }
                if target.starts_with(b"/") {
                    w.back_to_root();
                }
                let mut comps: Vec<Vec<u8>> = target
                    .split(|b| *b == b'/')
                    .filter(|c| !c.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
                match comps.pop() {
                    Some(last) if last != b"." && last != b".." => {
                        if !w.walk(comps, None)? {
                            return Err(InjectError::Path(format!(
                                "{at} is a symbolic link into a directory missing from the image"
                            )));
                        }
                        name = last;
                    }
                    _ => {
                        return Err(InjectError::Path(format!(
                            "{at} is a symbolic link to a directory"
                        )));
                    }
                }
            }
        }
    };
    let at = w.shown(Some(&name));
    let mut file =
        create_at(w.cur(), &c_name(&name)?).map_err(InjectError::io(format!("opening {at}")))?;
    let meta = file
        .metadata()
        .map_err(InjectError::io(format!("inspecting {at}")))?;
    if !meta.file_type().is_file() {
        return Err(InjectError::Path(format!("{at} is not a regular file")));
    }
    file.write_all(content)
        .map_err(InjectError::io(format!("writing {at}")))?;
    // Ownership first: chown(2) clears set-id bits, which `mode` may ask for.
    if f.owner.is_some() || f.group.is_some() {
        std::os::unix::fs::fchown(&file, f.owner, f.group)
            .map_err(InjectError::io(format!("changing the owner of {at}")))?;
    }
    let mode = f.mode.or((!existed).then_some(DEFAULT_FILE_MODE));
    if let Some(m) = mode {
        file.set_permissions(Permissions::from_mode(m))
            .map_err(InjectError::io(format!("changing the mode of {at}")))?;
    }
    file.sync_all()
        .map_err(InjectError::io(format!("syncing {at}")))?;
    Ok(format!(
        "wrote {} bytes to {at}{}",
        content.len(),
        if existed { " (replaced)" } else { "" }
    ))
}
