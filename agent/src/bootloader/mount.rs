//! Mounting for the bootloader work: a [`Mounter`] (the real one runs `mount`/`umount`) and a
//! [`MountStack`] that unmounts everything it mounted, newest first, on every exit path.
//!
//! Mount points are fresh directories under a scratch directory; they are removed with
//! `remove_dir` (never recursively) once unmounted, so a mount that could not be undone never
//! has its contents deleted.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tracing::{debug, warn};

use crate::tools::{self, ToolError, Tools};

/// How long one `mount`/`umount` may take.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts of an unmount before it counts as failed (IPA: 3 attempts).
const UMOUNT_ATTEMPTS: u32 = 3;

/// Why mounting, unmounting or making a mount point failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// `mount` or `umount` failed (the error names the command and quotes its stderr).
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Every fresh name for a directory was taken.
    #[error("cannot create a directory for {purpose} under {}", scratch.display())]
    NoFreeName {
        /// What the directory was for.
        purpose: String,
        /// Where it was to be made.
        scratch: PathBuf,
    },
    /// A missing mount point could not be created.
    #[error("cannot create mount point {}: {source}", path.display())]
    MountPoint {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Mounting failed.
    #[error("mounting {} on {} failed: {cause}", device.display(), target.display())]
    Mount {
        /// What was mounted.
        device: PathBuf,
        /// Where.
        target: PathBuf,
        /// Why.
        cause: Box<MountError>,
    },
    /// Unmounting failed on every attempt.
    #[error("unmounting {} failed after {UMOUNT_ATTEMPTS} attempts: {last}", target.display())]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The last attempt's error.
        last: Box<MountError>,
    },
    /// Several unmounts failed.
    #[error("{}", join(.0))]
    Several(Vec<MountError>),
}

fn join(errors: &[MountError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl MountError {
    /// One error for the unmounts in `failed` (none: `Ok`).
    fn all(mut failed: Vec<MountError>) -> Result<(), MountError> {
        match failed.len() {
            0 => Ok(()),
            1 => Err(failed.remove(0)),
            _ => Err(MountError::Several(failed)),
        }
    }
}

/// What a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind<'a> {
    /// A filesystem on a device, of an optional type (`vfat`, `ext4`…).
    Device(Option<&'a str>),
    /// A bind mount of a directory.
    Bind,
    /// A pseudo filesystem (`sysfs`, `efivarfs`) that has no device.
    Pseudo(&'a str),
}

/// Mounts and unmounts.
pub trait Mounter: Sync {
    /// Mounts `source` on the existing directory `target`.
    ///
    /// # Errors
    /// The tool's error.
    fn mount(&self, source: &Path, target: &Path, kind: MountKind<'_>) -> Result<(), MountError>;

    /// Unmounts `target`.
    ///
    /// # Errors
    /// The tool's error.
    fn umount(&self, target: &Path) -> Result<(), MountError>;
}

/// The machine's `mount` and `umount`.
pub struct SystemMounter<'a> {
    /// Runs the tools.
    pub tools: &'a dyn Tools,
}

impl Mounter for SystemMounter<'_> {
    fn mount(&self, source: &Path, target: &Path, kind: MountKind<'_>) -> Result<(), MountError> {
        let (src, dst) = (source.to_string_lossy(), target.to_string_lossy());
        let args: Vec<&str> = match kind {
            MountKind::Device(Some(fstype)) => vec!["-t", fstype, &src, &dst],
            MountKind::Device(None) => vec![&src, &dst],
            MountKind::Bind => vec!["-o", "bind", &src, &dst],
            MountKind::Pseudo(fstype) => vec!["-t", fstype, fstype, &dst],
        };
        tools::run_checked(self.tools, "mount", &args, MOUNT_TIMEOUT)?;
        Ok(())
    }

    fn umount(&self, target: &Path) -> Result<(), MountError> {
        match tools::run_checked(
            self.tools,
            "umount",
            &[&target.to_string_lossy()],
            MOUNT_TIMEOUT,
        ) {
            Ok(_) => Ok(()),
            // Already gone (e.g. taken along by a `umount -a` inside the chroot).
            Err(ToolError::Failed { detail, .. }) if detail.contains("not mounted") => {
                debug!(target = %target.display(), "already unmounted");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A fresh, empty directory under `scratch` named after `purpose`.
///
/// # Errors
/// When it cannot be created.
pub fn fresh_dir(scratch: &Path, purpose: &str) -> Result<PathBuf, MountError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = scratch.join(format!("ironic-agent-{purpose}-{}-{n}", std::process::id()));
        match std::fs::create_dir_all(scratch).and_then(|()| std::fs::create_dir(&dir)) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(MountError::CreateDir { path: dir, source }),
        }
    }
    Err(MountError::NoFreeName {
        purpose: purpose.to_string(),
        scratch: scratch.to_path_buf(),
    })
}

/// Everything mounted for one operation; unmounted newest first by [`MountStack::release`],
/// or on drop when an early return skipped it.
pub struct MountStack<'a> {
    mounter: &'a dyn Mounter,
    /// Mounted targets, oldest first.
    mounted: Vec<PathBuf>,
    /// Directories this stack created (removed when empty after unmounting), oldest first.
    created: Vec<PathBuf>,
    retry_delay: Duration,
}

impl<'a> MountStack<'a> {
    /// An empty stack.
    pub fn new(mounter: &'a dyn Mounter) -> Self {
        MountStack {
            mounter,
            mounted: Vec::new(),
            created: Vec::new(),
            retry_delay: Duration::from_secs(1),
        }
    }

    /// Waits `delay` between unmount attempts (tests use zero).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// A fresh directory under `scratch`, removed again by [`MountStack::release`].
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn dir(&mut self, scratch: &Path, purpose: &str) -> Result<PathBuf, MountError> {
        let dir = fresh_dir(scratch, purpose)?;
        self.created.push(dir.clone());
        Ok(dir)
    }

    /// Mounts `source` on `target` (created when missing) and remembers it.
    ///
    /// # Errors
    /// A message naming the mount and the tool's error.
    pub fn mount(
        &mut self,
        source: &Path,
        target: &Path,
        kind: MountKind<'_>,
    ) -> Result<(), MountError> {
        if !target.is_dir() {
            std::fs::create_dir_all(target).map_err(|source| MountError::MountPoint {
                path: target.to_path_buf(),
                source,
            })?;
        }
        debug!(source = %source.display(), target = %target.display(), ?kind, "mounting");
        self.mounter
            .mount(source, target, kind)
            .map_err(|e| MountError::Mount {
                device: source.to_path_buf(),
                target: target.to_path_buf(),
                cause: Box::new(e),
            })?;
        self.mounted.push(target.to_path_buf());
        Ok(())
    }

    /// Whether `target` is mounted by this stack.
    pub fn is_mounted(&self, target: &Path) -> bool {
        self.mounted.iter().any(|m| m == target)
    }

    /// Unmounts `target` (and whatever this stack mounted on top of it) now.
    ///
    /// # Errors
    /// The unmounts that failed after all attempts.
    pub fn unmount(&mut self, target: &Path) -> Result<(), MountError> {
        let Some(at) = self.mounted.iter().position(|m| m == target) else {
            return Ok(());
        };
        let above: Vec<PathBuf> = self.mounted.drain(at..).collect();
        let mut failed = Vec::new();
        for m in above.iter().rev() {
            if let Err(e) = self.umount_with_retries(m) {
                failed.push(e);
            }
        }
        MountError::all(failed)
    }

    fn umount_with_retries(&self, target: &Path) -> Result<(), MountError> {
        let mut attempt = 1;
        loop {
            match self.mounter.umount(target) {
                Ok(()) => {
                    debug!(target = %target.display(), "unmounted");
                    return Ok(());
                }
                Err(e) => {
                    warn!(target = %target.display(), attempt, error = %e, "unmount failed");
                    if attempt >= UMOUNT_ATTEMPTS {
                        return Err(MountError::Unmount {
                            target: target.to_path_buf(),
                            last: Box::new(e),
                        });
                    }
                    attempt += 1;
                    std::thread::sleep(self.retry_delay);
                }
            }
        }
    }

    /// Unmounts everything, newest first, then removes the directories it created (only
    /// the empty ones: a directory still holding a mount is never emptied).
    ///
    /// # Errors
    /// Every unmount that failed after all attempts.
    pub fn release(&mut self) -> Result<(), MountError> {
        let mut failed = Vec::new();
        while let Some(m) = self.mounted.pop() {
            if let Err(e) = self.umount_with_retries(&m) {
                failed.push(e);
            }
        }
        if failed.is_empty() {
            for dir in self.created.drain(..).rev() {
                remove_empty_tree(&dir);
            }
        } else {
            self.created.clear();
        }
        MountError::all(failed)
    }
}

impl Drop for MountStack<'_> {
    fn drop(&mut self) {
        if !self.mounted.is_empty()
            && let Err(e) = self.release()
        {
            warn!(error = %e, "mounts left behind");
        }
    }
}

/// Removes `dir` and the empty directories below it (mount points made inside it); stops at
/// anything that is not an empty directory, and never descends into another filesystem (a
/// mount that is somehow still there keeps all its directories).
fn remove_empty_tree(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let same_fs = e
                .path()
                .symlink_metadata()
                .is_ok_and(|m| m.is_dir() && m.dev() == top.dev());
            if same_fs {
                remove_empty_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
pub(crate) mod fake {
    //! A mounter for unit tests: "mounting" a device copies a fixture tree into the target,
    //! unmounting empties it again (after copying changes back, so tests can check what was
    //! written to the "filesystem").

    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::{MountError, MountKind, Mounter};
    use crate::tools::ToolError;

    /// What a failing `mount`/`umount` would report.
    fn refused(command: String, detail: impl ToString) -> MountError {
        MountError::Tool(ToolError::Failed {
            command,
            status: "exit status 32".into(),
            detail: detail.to_string(),
        })
    }

    /// See the module documentation.
    #[derive(Debug, Default)]
    pub struct FakeMounter {
        /// Device → directory standing for its filesystem.
        pub filesystems: HashMap<PathBuf, PathBuf>,
        /// Targets whose unmount fails.
        pub stuck: Vec<PathBuf>,
        /// Every call so far.
        pub calls: Mutex<Vec<String>>,
        /// What is mounted: target and the fixture behind it.
        pub mounted: Mutex<Vec<(PathBuf, Option<PathBuf>)>>,
    }

    impl FakeMounter {
        /// Every call, in order: `mount SRC TARGET` / `umount TARGET`.
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }

        /// Targets still mounted.
        pub fn still_mounted(&self) -> Vec<PathBuf> {
            self.mounted
                .lock()
                .map(|m| m.iter().map(|(t, _)| t.clone()).collect())
                .unwrap_or_default()
        }
    }

    fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let dst = to.join(e.file_name());
            if e.file_type()?.is_dir() {
                copy_tree(&e.path(), &dst)?;
            } else {
                std::fs::copy(e.path(), &dst)?;
            }
        }
        Ok(())
    }

    fn clear(dir: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                std::fs::remove_dir_all(e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    impl Mounter for FakeMounter {
        fn mount(
            &self,
            source: &Path,
            target: &Path,
            kind: MountKind<'_>,
        ) -> Result<(), MountError> {
            let line = format!("mount {} {}", source.display(), target.display());
            if let Ok(mut c) = self.calls.lock() {
                c.push(line.clone());
            }
            let backing = match kind {
                MountKind::Device(_) => {
                    let fs = self.filesystems.get(source).ok_or_else(|| {
                        refused(
                            line.clone(),
                            format!("mount: {}: no such device", source.display()),
                        )
                    })?;
                    copy_tree(fs, target).map_err(|e| refused(line.clone(), e))?;
                    Some(fs.clone())
                }
                MountKind::Bind | MountKind::Pseudo(_) => None,
            };
            if let Ok(mut m) = self.mounted.lock() {
                m.push((target.to_path_buf(), backing));
            }
            Ok(())
        }

        fn umount(&self, target: &Path) -> Result<(), MountError> {
            let line = format!("umount {}", target.display());
            if let Ok(mut c) = self.calls.lock() {
                c.push(line.clone());
            }
            let fail = |detail: String| refused(line.clone(), detail);
            if self.stuck.iter().any(|s| s == target) {
                return Err(fail(format!(
                    "umount: {}: target is busy.",
                    target.display()
                )));
            }
            let mut m = self.mounted.lock().map_err(|e| fail(e.to_string()))?;
            let at = m
                .iter()
                .rposition(|(t, _)| t == target)
                .ok_or_else(|| fail(format!("umount: {}: not mounted.", target.display())))?;
            let (_, backing) = m.remove(at);
            if let Some(fs) = backing {
                // Write back what changed, then empty the mount point.
                std::fs::remove_dir_all(&fs).map_err(|e| fail(e.to_string()))?;
                copy_tree(target, &fs).map_err(|e| fail(e.to_string()))?;
                clear(target).map_err(|e| fail(e.to_string()))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::fake::FakeMounter;
    use super::*;

    #[test]
    fn releases_newest_first_and_removes_its_directories() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let fs = tmp.path().join("fs");
        std::fs::create_dir_all(fs.join("etc"))?;
        let mounter = FakeMounter {
            filesystems: HashMap::from([(PathBuf::from("/dev/sda2"), fs.clone())]),
            ..Default::default()
        };
        let mut stack = MountStack::new(&mounter).with_retry_delay(Duration::ZERO);
        let root = stack.dir(tmp.path(), "root").map_err(anyhow::Error::msg)?;
        stack
            .mount(Path::new("/dev/sda2"), &root, MountKind::Device(None))
            .map_err(anyhow::Error::msg)?;
        stack
            .mount(Path::new("/dev"), &root.join("dev"), MountKind::Bind)
            .map_err(anyhow::Error::msg)?;
        std::fs::write(root.join("etc/fstab"), "x")?;
        stack.release().map_err(anyhow::Error::msg)?;
        let calls = mounter.calls();
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert!(calls[2].starts_with("umount") && calls[2].ends_with("/dev"));
        assert!(calls[3].starts_with("umount") && !calls[3].ends_with("/dev"));
        assert!(!root.exists(), "the mount point is removed");
        assert_eq!(std::fs::read_to_string(fs.join("etc/fstab"))?, "x");
        Ok(())
    }

    #[test]
    fn a_stuck_mount_is_reported_and_its_directory_kept() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let fs = tmp.path().join("fs");
        std::fs::create_dir_all(&fs)?;
        std::fs::write(fs.join("keep"), "data")?;
        let target = tmp.path().join("esp");
        let mounter = FakeMounter {
            filesystems: HashMap::from([(PathBuf::from("/dev/sda1"), fs)]),
            stuck: vec![target.clone()],
            ..Default::default()
        };
        {
            let mut stack = MountStack::new(&mounter).with_retry_delay(Duration::ZERO);
            stack
                .mount(
                    Path::new("/dev/sda1"),
                    &target,
                    MountKind::Device(Some("vfat")),
                )
                .map_err(anyhow::Error::msg)?;
            let err = stack
                .release()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("after 3 attempts") && err.contains("busy"),
                "{err}"
            );
        }
        assert_eq!(
            mounter
                .calls()
                .iter()
                .filter(|c| c.starts_with("umount"))
                .count(),
            3
        );
        assert!(
            target.join("keep").exists(),
            "a busy mount's files are never deleted"
        );
        Ok(())
    }

    #[test]
    fn dropping_unmounts_after_an_early_return() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mounter = FakeMounter::default();
        let attempt = || -> Result<(), MountError> {
            let mut stack = MountStack::new(&mounter).with_retry_delay(Duration::ZERO);
            stack.mount(
                Path::new("/proc"),
                &tmp.path().join("proc"),
                MountKind::Bind,
            )?;
            stack.mount(
                Path::new("/nonexistent"),
                &tmp.path().join("x"),
                MountKind::Device(None),
            )?;
            Ok(())
        };
        assert!(attempt().is_err());
        assert!(mounter.still_mounted().is_empty(), "{:?}", mounter.calls());
        Ok(())
    }
}
