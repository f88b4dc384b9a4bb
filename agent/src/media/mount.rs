//! A device mounted read-only for as long as a guard lives: the existing mount point when the
//! device is already mounted (a config drive mounted by the init scripts), else a fresh private
//! directory that is unmounted and removed on drop.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use tracing::{debug, error, warn};

use super::MediaError;
use super::label::{FsKind, read_label};

/// The mount table read to find an existing mount.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Unmount attempts before a lazy detach.
const UMOUNT_TRIES: u32 = 5;

/// A read-only view of a device's filesystem.
#[derive(Debug)]
pub struct ReadOnlyMount {
    path: PathBuf,
    device: PathBuf,
    /// Whether this guard mounted it (and so unmounts it and removes `path`).
    owned: bool,
}

impl ReadOnlyMount {
    /// Mounts `device` read-only (`nodev,nosuid,noexec`), or reuses where it is already
    /// mounted according to `/proc/self/mountinfo`.
    pub fn new(device: &Path) -> Result<ReadOnlyMount, MediaError> {
        Self::with_mountinfo(device, Path::new(MOUNTINFO))
    }

    /// [`ReadOnlyMount::new`] with another mount table (tests).
    pub fn with_mountinfo(device: &Path, mountinfo: &Path) -> Result<ReadOnlyMount, MediaError> {
        let table = std::fs::read_to_string(mountinfo).unwrap_or_default();
        if let Some(existing) = mounted_at(device, &table) {
            debug!(device = %device.display(), at = %existing.display(), "already mounted");
            return Ok(ReadOnlyMount {
                path: existing,
                device: device.to_path_buf(),
                owned: false,
            });
        }
        let kinds: Vec<FsKind> = match read_label(device)? {
            Some(l) => vec![l.kind],
            None => vec![FsKind::Iso9660, FsKind::Vfat, FsKind::Ext],
        };
        let dir = private_dir()?;
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        let mut errors = Vec::new();
        for kind in kinds {
            match mount(
                Some(device),
                &dir,
                Some(kind.mount_type()),
                flags,
                None::<&str>,
            ) {
                Ok(()) => {
                    debug!(device = %device.display(), dir = %dir.display(), fs = kind.mount_type(), "mounted read-only");
                    return Ok(ReadOnlyMount {
                        path: dir,
                        device: device.to_path_buf(),
                        owned: true,
                    });
                }
                Err(e) => errors.push(format!("{}: {e}", kind.mount_type())),
            }
        }
        let _ = std::fs::remove_dir(&dir);
        Err(MediaError::Mount {
            device: device.to_path_buf(),
            message: errors.join("; "),
        })
    }

    /// Where the filesystem is visible.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Whether the device was already mounted (and stays so after the guard).
    pub fn was_mounted(&self) -> bool {
        !self.owned
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let mut unmounted = false;
        for attempt in 1..=UMOUNT_TRIES + 1 {
            let lazy = attempt > UMOUNT_TRIES;
            let flags = if lazy {
                MntFlags::MNT_DETACH
            } else {
                MntFlags::empty()
            };
            match umount2(&self.path, flags) {
                Ok(()) => {
                    if lazy {
                        warn!(dir = %self.path.display(), "the mount was busy; detached it lazily");
                    }
                    unmounted = true;
                    break;
                }
                Err(e) => {
                    debug!(dir = %self.path.display(), error = %e, attempt, "unmount failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        if !unmounted {
            error!(dir = %self.path.display(), device = %self.device.display(),
                "could not unmount; leaving the mount point in place");
            return;
        }
        // Only an empty directory is removed: never anything of the filesystem.
        if let Err(e) = std::fs::remove_dir(&self.path) {
            warn!(dir = %self.path.display(), error = %e, "could not remove the mount point");
        }
    }
}

/// The mount point of `device` in `mountinfo` text: the first line whose `major:minor` is the
/// device's number, or whose source is the same path.
pub fn mounted_at(device: &Path, mountinfo: &str) -> Option<PathBuf> {
    let rdev = std::fs::metadata(device)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|m| m.rdev());
    let number = rdev.map(|r| {
        let (major, minor) = (nix::sys::stat::major(r), nix::sys::stat::minor(r));
        format!("{major}:{minor}")
    });
    let wanted = device.to_string_lossy();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(numbers), Some(point), Some(source)) =
            (fields.get(2), fields.get(4), fields.get(sep + 2))
        else {
            continue;
        };
        if number.as_deref() == Some(*numbers) || unescape(source) == wanted {
            return Some(PathBuf::from(unescape(point)));
        }
    }
    None
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A new empty directory only root can enter, under the temp directory.
fn private_dir() -> Result<PathBuf, MediaError> {
    let base = std::env::temp_dir();
    let mut last = io::Error::other("no free name");
    for _ in 0..16 {
        let p = base.join(format!("ironic-agent-media-{:016x}", rand::random::<u64>()));
        match DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(MediaError::io("creating a mount point in", base)(e)),
        }
    }
    Err(MediaError::io("creating a mount point in", base)(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_existing_mounts() {
        let table = "\
22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
40 22 11:0 / /mnt/config ro,relatime shared:20 - iso9660 /dev/sr0 ro
41 22 7:3 / /mnt/with\\040space ro - vfat /tmp/fake\\040dev ro
";
        assert_eq!(
            mounted_at(Path::new("/dev/sr0"), table),
            Some(PathBuf::from("/mnt/config"))
        );
        assert_eq!(
            mounted_at(Path::new("/tmp/fake dev"), table),
            Some(PathBuf::from("/mnt/with space"))
        );
        assert_eq!(mounted_at(Path::new("/dev/sdb"), table), None);
        assert_eq!(mounted_at(Path::new("/dev/sr0"), "garbage\n- -\n"), None);
    }

    #[test]
    fn already_mounted_is_reused_and_left_alone() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let table = dir.path().join("mountinfo");
        let point = dir.path().join("point");
        std::fs::create_dir(&point)?;
        std::fs::write(
            &table,
            format!(
                "40 22 0:99 / {} ro - vfat /dev/fakevfd ro\n",
                point.display()
            ),
        )?;
        let m = ReadOnlyMount::with_mountinfo(Path::new("/dev/fakevfd"), &table)?;
        assert!(m.was_mounted());
        assert_eq!(m.path(), point);
        drop(m);
        assert!(point.is_dir(), "an existing mount point is never removed");
        Ok(())
    }

    #[test]
    fn unmountable_is_a_clear_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![0u8; 4096])?;
        let e = ReadOnlyMount::with_mountinfo(&junk, &dir.path().join("none"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("mounting") && e.contains("junk"), "{e}");
        Ok(())
    }
}
