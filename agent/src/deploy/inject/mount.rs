//! Mounting a target filesystem on a private temporary directory, undone on drop.

use std::ffi::OsStr;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, umount2};
use tracing::{debug, error, warn};

use super::error::InjectError;
use crate::tools::{Invocation, ToolError};

/// How long `mount` may take (a journal replay on a large filesystem).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(300);

/// Plain unmount attempts before falling back to a lazy detach.
pub(super) const UMOUNT_TRIES: u32 = 10;

/// A filesystem mounted on a private temporary directory (`nodev,nosuid,noexec`), unmounted
/// and its directory removed when dropped, on every path out of the code using it.
#[derive(Debug)]
pub(super) struct Mounted {
    /// The mount point.
    pub(super) dir: PathBuf,
    /// The mounted device.
    pub(super) device: PathBuf,
}

impl Mounted {
    /// Mounts `device` (read-write with `writable`, else read-only).
    pub(super) fn new(device: &Path, writable: bool) -> Result<Mounted, InjectError> {
        let dir = private_dir()?;
        // From here on, Drop cleans up whatever happens.
        let m = Mounted {
            dir,
            device: device.to_path_buf(),
        };
        let mode = if writable { "-w" } else { "-r" };
        Invocation::new("mount", MOUNT_TIMEOUT)
            .args([
                OsStr::new(mode),
                OsStr::new("-o"),
                OsStr::new("nodev,nosuid,noexec"),
                device.as_os_str(),
                m.dir.as_os_str(),
            ])
            .run_ok()
            .map_err(|e| match e {
                ToolError::Failed { detail, .. } => {
                    InjectError::Mount(format!("mount {} failed: {detail}", device.display()))
                }
                other => InjectError::Mount(other.to_string()),
            })?;
        if !is_mountpoint(&m.dir) {
            return Err(InjectError::Mount(format!(
                "mount {} reported success but nothing is mounted on {}",
                device.display(),
                m.dir.display()
            )));
        }
        debug!(device = %device.display(), dir = %m.dir.display(), writable, "mounted");
        Ok(m)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for attempt in 1..=UMOUNT_TRIES + 2 {
            if !is_mountpoint(&self.dir) {
                break;
            }
            let lazy = attempt > UMOUNT_TRIES;
            match umount(
                &self.dir,
                if lazy {
                    MntFlags::MNT_DETACH
                } else {
                    MntFlags::empty()
                },
            ) {
                Ok(()) if lazy => {
                    warn!(dir = %self.dir.display(), "the mount was busy; detached it lazily");
                }
                Ok(()) => {}
                Err(e) => {
                    debug!(dir = %self.dir.display(), error = %e, attempt, "unmount failed");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        if is_mountpoint(&self.dir) {
            error!(
                dir = %self.dir.display(), device = %self.device.display(),
                "could not unmount; leaving the mount point in place"
            );
            return;
        }
        // Only removes an empty directory: never anything of the unmounted filesystem.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "could not remove the mount point");
        }
    }
}

pub(super) fn umount(dir: &Path, flags: MntFlags) -> io::Result<()> {
    umount2(dir, flags).map_err(io::Error::from)
}

/// Whether something is mounted on `dir` (its device differs from its parent's).
pub(super) fn is_mountpoint(dir: &Path) -> bool {
    let (Ok(d), Some(parent)) = (std::fs::symlink_metadata(dir), dir.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != d.dev())
}

/// A new empty directory only root can enter, under the temp directory.
pub(super) fn private_dir() -> Result<PathBuf, InjectError> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let p = base.join(format!(
            "ironic-agent-inject-{:016x}",
            rand::random::<u64>()
        ));
        match DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(InjectError::io(format!(
                    "creating a mount point in {}",
                    base.display()
                ))(e));
            }
        }
    }
    Err(InjectError::Mount(format!(
        "no free mount point name in {}",
        base.display()
    )))
}
