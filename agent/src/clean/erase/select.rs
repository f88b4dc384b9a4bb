//! Which devices an erase step may write: the agent's disk guard first, then IPA's exclusions
//! (the virtual-media floppy, Linux RAID members, read-only devices).

use std::path::{Component, Path, PathBuf};

use hardware_managers::guard::{DiskGuard, GuardError};
use tracing::{info, warn};

use crate::disk::{blockdev, probe, table};

/// The label of the virtual-media floppy Ironic attaches (IPA never erases it).
const VMEDIA_LABEL_LINK: &str = "dev/disk/by-label/ir-vfd-dev";

/// What to do with a read-only device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {
    /// Leave it out (metadata and express erase; `erase_devices` with
    /// `agent_erase_skip_read_only`).
    Skip,
    /// Fail the device (`erase_devices` without `agent_erase_skip_read_only`).
    Fail,
}

/// The verdict on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Erase it.
    Erase,
    /// Leave it alone, for this reason (logged).
    Skip(String),
}

/// Where the checks read the system, and the guard they apply.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Filesystem root for `/sys` and `/dev/disk` (`/` in production).
    pub root: PathBuf,
    /// The agent's disk guard.
    pub guard: DiskGuard,
}

/// `path` with `.` and `..` resolved without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn base_name(dev: &str) -> &str {
    dev.rsplit('/').next().unwrap_or(dev)
}

/// Entries of a directory, sorted; empty when unreadable.
fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl Selector {
    /// The device the virtual-media floppy label points at, as a `/dev/...` path.
    pub fn vmedia_device(&self) -> Option<PathBuf> {
        let link = self.root.join(VMEDIA_LABEL_LINK);
        let target = std::fs::read_link(&link).ok()?;
        let base = Path::new("/dev/disk/by-label");
        Some(normalize(&base.join(target)))
    }

    fn sys_block(&self, name: &str) -> PathBuf {
        self.root.join("sys/class/block").join(name)
    }

    /// The holders of `name` and of its partitions (`md0`, `dm-1 (on sda2)`).
    pub fn holders(&self, name: &str) -> Vec<String> {
        let dir = self.sys_block(name);
        let mut held = list_dir(&dir.join("holders"));
        for part in list_dir(&dir)
            .into_iter()
            .filter(|p| p.starts_with(name) && dir.join(p).join("partition").is_file())
        {
            held.extend(
                list_dir(&dir.join(&part).join("holders"))
                    .into_iter()
                    .map(|h| format!("{h} (on {part})")),
            );
        }
        held
    }

    /// Whether the kernel flags `name` (or, for a partition, its disk `parent`) read-only.
    pub fn is_read_only(&self, name: &str, parent: Option<&str>) -> bool {
        let ro = |n: &str| {
            std::fs::read_to_string(self.sys_block(n).join("ro")).is_ok_and(|s| s.trim() == "1")
        };
        ro(name) || parent.is_some_and(ro)
    }

    /// Decides whether erase step code may write `dev` (a disk, or a partition of `parent`).
    ///
    /// # Errors
    /// A device that must not be skipped silently: refused by the guard for a reason other
    /// than the allow-list or a holder (mounted, the running root), or read-only under
    /// [`ReadOnly::Fail`].
    pub fn admit(
        &self,
        dev: &str,
        parent: Option<&str>,
        read_only: ReadOnly,
    ) -> Result<Admission, String> {
        let name = base_name(dev);
        let mut ro = self.is_read_only(name, parent);
        match self.guard.check_writable(Path::new(dev)) {
            Ok(()) => {}
            Err(e @ GuardError::NotAllowed(..)) => {
                warn!(device = dev, reason = %e, "not erasing {dev}: {e}");
                return Ok(Admission::Skip(e.to_string()));
            }
            Err(GuardError::Held(_, holders)) => {
                let why = format!(
                    "{dev} is in use by {holders} (a RAID member or device-mapper device); \
                     RAID members are skipped as IPA does"
                );
                info!(device = dev, holders = %holders, "skipping {dev}: {why}");
                return Ok(Admission::Skip(why));
            }
            Err(GuardError::ReadOnly(..)) => ro = true,
            Err(e) => {
                return Err(format!(
                    "{e}; nothing was erased on it. Unmount it, or name it in the node's \
                     properties.skip_block_devices to leave it alone"
                ));
            }
        }
        if let Some(vmedia) = self.vmedia_device()
            && Path::new(dev) == vmedia
        {
            info!(device = dev, "skipping the virtual media device {dev}");
            return Ok(Admission::Skip(format!(
                "{dev} is the virtual media device"
            )));
        }
        let holders = self.holders(name);
        if !holders.is_empty() {
            let why = format!(
                "{dev} is in use by {}; skipped as a RAID member",
                holders.join(", ")
            );
            info!(device = dev, "skipping {dev}: {why}");
            return Ok(Admission::Skip(why));
        }
        if let Some(where_) = raid_member_signature(Path::new(dev)) {
            let why = format!("{dev} is a Linux RAID member ({where_}); skipped as IPA does");
            info!(device = dev, "skipping {dev}: {why}");
            return Ok(Admission::Skip(why));
        }
        if ro {
            let flag = format!("/sys/class/block/{}/ro", parent.unwrap_or(name));
            return match read_only {
                ReadOnly::Skip => {
                    info!(device = dev, "skipping the read-only device {dev}");
                    Ok(Admission::Skip(format!("{dev} is read-only ({flag} is 1)")))
                }
                ReadOnly::Fail => Err(format!(
                    "Failed to invoke erase of device {dev} as the device is flagged read-only \
                     ({flag} is 1), and the conductor has not signaled this is a permitted \
                     case: set driver_internal_info.agent_erase_skip_read_only to true \
                     (Ironic's [deploy]erase_skip_read_only) to skip read-only devices"
                )),
            };
        }
        Ok(Admission::Erase)
    }
}

/// Where `dev` carries a Linux RAID member signature (the whole device, or a partition of its
/// table), as IPA's `lsblk --fs` check finds it. A device that cannot be read counts as a
/// member, as in IPA.
pub fn raid_member_signature(dev: &Path) -> Option<String> {
    let is_member = |found: &[probe::Probed]| found.iter().any(|p| p.fstype == "linux_raid_member");
    let size = match blockdev::size_bytes(dev) {
        Ok(s) => s,
        Err(e) => {
            warn!(device = %dev.display(), error = %e, "cannot check for RAID membership; skipping it");
            return Some(format!("unreadable: {e}"));
        }
    };
    match probe::probe_all_range(dev, 0, size) {
        Ok(found) if is_member(&found) => return Some("on the whole device".into()),
        Ok(_) => {}
        Err(e) => {
            warn!(device = %dev.display(), error = %e, "cannot check for RAID membership; skipping it");
            return Some(format!("unreadable: {e}"));
        }
    }
    let parts = match table::read_table(dev) {
        Ok(t) => t.map(|t| t.partitions).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for p in parts.iter().filter(|p| !p.is_extended() && p.start < size) {
        let len = p.size.min(size - p.start);
        if probe::probe_all_range(dev, p.start, len).is_ok_and(|f| is_member(&f)) {
            return Some(format!(
                "on partition {}",
                blockdev::partition_path(dev, p.number).display()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, text)?;
        Ok(())
    }

    #[test]
    fn sysfs_facts() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let r = t.path();
        std::fs::create_dir_all(r.join("sys/class/block/sdb/holders/md0"))?;
        write(r, "sys/class/block/sdc/sdc2/partition", "2\n")?;
        std::fs::create_dir_all(r.join("sys/class/block/sdc/sdc2/holders/dm-1"))?;
        write(r, "sys/class/block/sdd/ro", "1\n")?;
        write(r, "sys/class/block/sde/ro", "0\n")?;
        std::fs::create_dir_all(r.join("dev/disk/by-label"))?;
        std::os::unix::fs::symlink("../../sdf", r.join(VMEDIA_LABEL_LINK))?;
        let s = Selector {
            root: r.to_path_buf(),
            guard: DiskGuard::new(vec![], r),
        };
        assert_eq!(s.holders("sdb"), ["md0"]);
        assert_eq!(s.holders("sdc"), ["dm-1 (on sdc2)"]);
        assert!(s.holders("sde").is_empty());
        assert!(s.is_read_only("sdd", None));
        assert!(s.is_read_only("sdd1", Some("sdd")));
        assert!(!s.is_read_only("sde", None));
        assert_eq!(s.vmedia_device(), Some(PathBuf::from("/dev/sdf")));
        Ok(())
    }

    #[test]
    fn guard_refusals_become_skips_or_errors() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let r = t.path();
        write(r, "proc/mounts", "/dev/sdm1 /mnt ext4 rw 0 0\n")?;
        std::fs::create_dir_all(r.join("sys/class/block/sdh/holders/md127"))?;
        let s = Selector {
            root: r.to_path_buf(),
            guard: DiskGuard::new(vec![], r),
        };
        let e = s.admit("/dev/sdm", None, ReadOnly::Fail);
        assert!(
            e.as_ref().is_err_and(|e| e.contains("mounted at /mnt")),
            "{e:?}"
        );
        let held = s.admit("/dev/sdh", None, ReadOnly::Fail);
        assert!(
            matches!(&held, Ok(Admission::Skip(why)) if why.contains("md127")),
            "{held:?}"
        );
        let strict = Selector {
            root: r.to_path_buf(),
            guard: DiskGuard::new(vec![PathBuf::from("/dev/loop99")], r),
        };
        assert_eq!(
            strict.admit("/dev/sdz", None, ReadOnly::Fail),
            Ok(Admission::Skip(
                "refusing to write /dev/sdz: it is not in the --allow-device list (/dev/loop99)"
                    .into()
            ))
        );
        Ok(())
    }
}
