//! The disk guard: the one check every destructive operation passes first.
//!
//! [`DiskGuard::check_writable`] refuses a device that is outside the `--allow-device` list
//! (when one is set), that is or carries the running system's root filesystem, that is
//! mounted (itself or a partition), that is held by another device (RAID member,
//! device-mapper; itself or a partition) or that the kernel marks read-only. Everything is
//! read under the guard's root (`/` in production, a fake tree in tests).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{major, minor};

/// Why a device may not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not in the configured allow-list.
    #[error("refusing to write {0}: it is not in the --allow-device list ({1})")]
    NotAllowed(String, String),
    /// The device or one of its partitions is mounted.
    #[error("refusing to write {0}: it is mounted at {1}")]
    Mounted(String, String),
    /// The device is held by another device (RAID member, device-mapper).
    #[error("refusing to write {0}: it is in use by {1} (RAID member or device-mapper)")]
    Held(String, String),
    /// The path does not name a block device.
    #[error("refusing to write {0}: {1}")]
    NotADevice(String, String),
    /// The device (or a partition, or a device stacked on it) holds the running system's root
    /// filesystem, found by device number even when the mount table names it differently.
    #[error("refusing to write {0}: it holds the running system's root filesystem ({1})")]
    RootFilesystem(String, String),
    /// The kernel reports the device read-only (`/sys/class/block/<name>/ro` is 1).
    #[error("refusing to write {0}: the kernel reports it read-only ({1} is 1)")]
    ReadOnly(String, String),
}

/// Checks devices against the allow-list, the root filesystem, the mount table, holder links
/// and the read-only flag.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    allow: Vec<PathBuf>,
    root: PathBuf,
}

impl DiskGuard {
    /// A guard with `allow` (empty = no allow-list), reading `/proc` and `/sys` under `root`.
    /// The running system's root filesystem is the one holding `root`.
    pub fn new(allow: Vec<PathBuf>, root: &Path) -> Self {
        DiskGuard {
            allow,
            root: root.to_path_buf(),
        }
    }

    fn canonical(p: &Path) -> PathBuf {
        std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
    }

    /// Refuses `device` unless it is allowed, does not hold the root filesystem, is not
    /// mounted, not held and not read-only.
    pub fn check_writable(&self, device: &Path) -> Result<(), GuardError> {
        let dev = Self::canonical(device);
        let shown = device.display().to_string();
        let name = dev
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| GuardError::NotADevice(shown.clone(), "no device name".into()))?
            .to_string();
        if !self.is_allowed(device) {
            let list: Vec<String> = self.allow.iter().map(|a| a.display().to_string()).collect();
            return Err(GuardError::NotAllowed(shown, list.join(", ")));
        }
        let mounts = std::fs::read_to_string(self.root.join("proc/mounts")).unwrap_or_default();
        let dev_str = dev.display().to_string();
        for line in mounts.lines() {
            let mut f = line.split_whitespace();
            let (Some(src), Some(mnt)) = (f.next(), f.next()) else {
                continue;
            };
            if src == dev_str || is_partition_of(src, &dev_str) {
                return Err(GuardError::Mounted(shown, mnt.to_string()));
            }
        }
        let class = self.root.join("sys/class/block");
        let parts = partitions(&class.join(&name), &name);
        if let Some(why) = self.root_filesystem_on(&class, &name, &parts) {
            return Err(GuardError::RootFilesystem(shown, why));
        }
        let mut held = list_dir(&class.join(&name).join("holders"));
        for part in &parts {
            let holders = list_dir(&class.join(&name).join(part).join("holders"));
            held.extend(holders.into_iter().map(|h| format!("{h} (on {part})")));
        }
        if !held.is_empty() {
            return Err(GuardError::Held(shown, held.join(", ")));
        }
        if read_trimmed(&class.join(&name).join("ro")).as_deref() == Some("1") {
            return Err(GuardError::ReadOnly(
                shown,
                format!("/sys/class/block/{name}/ro"),
            ));
        }
        Ok(())
    }

    /// The allow-list part of [`DiskGuard::check_writable`]: true without an allow-list, for a
    /// listed device, and for a stacked device (md RAID, device-mapper) built only on listed
    /// disks or their partitions.
    pub fn is_allowed(&self, device: &Path) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let dev = Self::canonical(device);
        if self.allow.iter().any(|a| Self::canonical(a) == dev) {
            return true;
        }
        dev.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| self.stacked_on_allowed(name))
    }

    /// Whether `name` is a stacked device (md RAID, device-mapper) built only on allowed
    /// disks: every lowest device under it (through `slaves/`) is an allowed disk or a
    /// partition of one. A stacked device without slaves is not allowed.
    fn stacked_on_allowed(&self, name: &str) -> bool {
        let class = self.root.join("sys/class/block");
        let lower = lower_devices(&class, name);
        let leaves: Vec<&String> = lower
            .iter()
            .filter(|d| list_dir(&class.join(d).join("slaves")).is_empty())
            .collect();
        let allowed: BTreeSet<String> = self
            .allow
            .iter()
            .filter_map(|a| {
                Self::canonical(a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .collect();
        !leaves.is_empty()
            && leaves.iter().all(|leaf| {
                if allowed.contains(leaf.as_str()) {
                    return true;
                }
                // A partition's sysfs directory sits inside its disk's.
                let dir = class.join(leaf);
                dir.join("partition").is_file()
                    && std::fs::canonicalize(&dir)
                        .ok()
                        .and_then(|p| {
                            p.parent()
                                .and_then(|d| d.file_name())
                                .map(|n| n.to_string_lossy().into_owned())
                        })
                        .is_some_and(|disk| allowed.contains(&disk))
            })
    }

    /// Why device `name` (with partitions `parts`) carries the filesystem mounted at the
    /// guard's root, comparing device numbers (`st_dev` of the root with the `dev` attribute
    /// of the device, its partitions and, through `slaves/`, whatever the root's device is
    /// stacked on: LVM, dm-crypt, md). `None` when it does not (or nothing can be read).
    /// A root on a filesystem with an anonymous device number (overlay, tmpfs, btrfs) matches
    /// no block device here; the mount-table check covers those by name.
    fn root_filesystem_on(&self, class: &Path, name: &str, parts: &[String]) -> Option<String> {
        let st_dev = std::fs::metadata(&self.root).ok()?.dev();
        let root_dev = format!("{}:{}", major(st_dev), minor(st_dev));
        let own: Vec<(String, PathBuf)> = std::iter::once((name.to_string(), class.join(name)))
            .chain(parts.iter().map(|p| (p.clone(), class.join(name).join(p))))
            .collect();
        for (n, dir) in &own {
            if read_trimmed(&dir.join("dev")).as_deref() == Some(root_dev.as_str()) {
                return Some(format!("/dev/{n} is the device of / ({root_dev})"));
            }
        }
        for top in list_dir(class) {
            if read_trimmed(&class.join(&top).join("dev")).as_deref() != Some(root_dev.as_str()) {
                continue;
            }
            let lower = lower_devices(class, &top);
            if let Some((n, _)) = own.iter().find(|(n, _)| lower.contains(n)) {
                return Some(format!(
                    "/ is on /dev/{top} ({root_dev}), which is built on /dev/{n}"
                ));
            }
        }
        None
    }
}

/// Every device below `top` through `slaves/` links, recursively.
fn lower_devices(class: &Path, top: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![top.to_string()];
    while let Some(dev) = pending.pop() {
        for slave in list_dir(&class.join(&dev).join("slaves")) {
            if seen.insert(slave.clone()) {
                pending.push(slave);
            }
        }
    }
    seen
}

/// The partitions of disk `name` (directory `dir`): sub-directories named after it that have
/// a `partition` attribute.
fn partitions(dir: &Path, name: &str) -> Vec<String> {
    list_dir(dir)
        .into_iter()
        .filter(|p| p.starts_with(name) && dir.join(p).join("partition").is_file())
        .collect()
}

/// The sorted entry names of `dir`; empty when it cannot be read.
fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An attribute's trimmed text; `None` when unreadable.
fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether `candidate` is a partition node of `disk` (`/dev/sda1` of `/dev/sda`,
/// `/dev/nvme0n1p1` or `/dev/loop0p1` of theirs).
pub(crate) fn is_partition_of(candidate: &str, disk: &str) -> bool {
    let Some(rest) = candidate.strip_prefix(disk) else {
        return false;
    };
    // A disk whose name ends in a digit separates partition numbers with `p`.
    let number = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        match rest.strip_prefix('p') {
            Some(n) => n,
            None => return false,
        }
    } else {
        rest
    };
    !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> anyhow::Result<tempfile::TempDir> {
        let t = tempfile::tempdir()?;
        std::fs::create_dir_all(t.path().join("proc"))?;
        std::fs::write(
            t.path().join("proc/mounts"),
            "/dev/vda1 / ext4 rw 0 0\n/dev/loop3p2 /mnt ext4 rw 0 0\nproc /proc proc rw 0 0\n",
        )?;
        std::fs::create_dir_all(t.path().join("sys/class/block/sdb/holders/md0"))?;
        std::fs::create_dir_all(t.path().join("sys/class/block/loop5/holders"))?;
        Ok(t)
    }

    /// Writes `contents` to `rel` under `root`, creating directories.
    fn write(root: &Path, rel: &str, contents: &str) -> anyhow::Result<()> {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, contents)?;
        Ok(())
    }

    /// `major:minor` of the filesystem holding `path`, as sysfs writes a `dev` attribute.
    fn devnum(path: &Path) -> anyhow::Result<String> {
        let d = std::fs::metadata(path)?.dev();
        Ok(format!("{}:{}\n", major(d), minor(d)))
    }

    #[test]
    fn allow_list_mounts_and_holders() -> anyhow::Result<()> {
        let t = tree()?;
        let open = DiskGuard::new(vec![], t.path());
        assert!(
            matches!(open.check_writable(Path::new("/dev/vda")), Err(GuardError::Mounted(_, m)) if m == "/")
        );
        assert!(matches!(
            open.check_writable(Path::new("/dev/loop3")),
            Err(GuardError::Mounted(..))
        ));
        assert!(
            matches!(open.check_writable(Path::new("/dev/sdb")), Err(GuardError::Held(_, h)) if h == "md0")
        );
        assert_eq!(open.check_writable(Path::new("/dev/loop5")), Ok(()));
        assert_eq!(open.check_writable(Path::new("/dev/vdb")), Ok(()));

        let strict = DiskGuard::new(vec![PathBuf::from("/dev/loop5")], t.path());
        assert_eq!(strict.check_writable(Path::new("/dev/loop5")), Ok(()));
        let err = strict
            .check_writable(Path::new("/dev/vdb"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("refusing to write /dev/vdb: it is not in the --allow-device list (/dev/loop5)")
        );
        Ok(())
    }

    #[test]
    fn md_devices_on_allowed_disks_are_allowed() -> anyhow::Result<()> {
        let t = tree()?;
        let r = t.path();
        // md0 on vdb1 + nvme0n1p1 (partition directories inside their disks', linked from
        // class/block as sysfs does); md1 on vdb2 + vdc1; md2 has no slaves.
        let devices = r.join("sys/devices/virtual");
        for (disk, part) in [
            ("vdb", "vdb1"),
            ("vdb", "vdb2"),
            ("nvme0n1", "nvme0n1p1"),
            ("vdc", "vdc1"),
        ] {
            write(
                r,
                &format!("sys/devices/virtual/{disk}/{part}/partition"),
                "1\n",
            )?;
            let link = r.join("sys/class/block").join(part);
            if !link.exists() {
                std::os::unix::fs::symlink(devices.join(disk).join(part), link)?;
            }
        }
        for (md, slaves) in [
            ("md0", vec!["vdb1", "nvme0n1p1"]),
            ("md1", vec!["vdb2", "vdc1"]),
        ] {
            for s in slaves {
                std::fs::create_dir_all(r.join("sys/class/block").join(md).join("slaves").join(s))?;
            }
        }
        std::fs::create_dir_all(r.join("sys/class/block/md2"))?;
        let g = DiskGuard::new(
            vec![PathBuf::from("/dev/vdb"), PathBuf::from("/dev/nvme0n1")],
            r,
        );
        assert_eq!(g.check_writable(Path::new("/dev/md0")), Ok(()));
        assert!(matches!(
            g.check_writable(Path::new("/dev/md1")),
            Err(GuardError::NotAllowed(..))
        ));
        assert!(matches!(
            g.check_writable(Path::new("/dev/md2")),
            Err(GuardError::NotAllowed(..))
        ));
        Ok(())
    }

    #[test]
    fn partition_names() {
        assert!(is_partition_of("/dev/sda1", "/dev/sda"));
        assert!(is_partition_of("/dev/nvme0n1p3", "/dev/nvme0n1"));
        assert!(is_partition_of("/dev/loop3p2", "/dev/loop3"));
        assert!(!is_partition_of("/dev/sdab", "/dev/sda"));
        assert!(!is_partition_of("/dev/loop30", "/dev/loop3"));
        assert!(!is_partition_of("/dev/sda", "/dev/sda"));
    }

    #[test]
    fn read_only_devices() -> anyhow::Result<()> {
        let t = tree()?;
        write(t.path(), "sys/class/block/sdc/ro", "1\n")?;
        write(t.path(), "sys/class/block/sdd/ro", "0\n")?;
        let guard = DiskGuard::new(vec![], t.path());
        let err = guard.check_writable(Path::new("/dev/sdc")).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(
                "refusing to write /dev/sdc: the kernel reports it read-only \
                 (/sys/class/block/sdc/ro is 1)"
            )
        );
        assert_eq!(guard.check_writable(Path::new("/dev/sdd")), Ok(()));
        Ok(())
    }

    #[test]
    fn partition_holders() -> anyhow::Result<()> {
        let t = tree()?;
        write(t.path(), "sys/class/block/sde/sde1/partition", "1\n")?;
        std::fs::create_dir_all(t.path().join("sys/class/block/sde/sde1/holders/md1"))?;
        let guard = DiskGuard::new(vec![], t.path());
        assert!(matches!(
            guard.check_writable(Path::new("/dev/sde")),
            Err(GuardError::Held(_, h)) if h == "md1 (on sde1)"
        ));
        Ok(())
    }

    /// The fake tree lives on some filesystem; its device number plays the root's.
    #[test]
    fn root_filesystem_by_device_number() -> anyhow::Result<()> {
        let t = tree()?;
        let root_dev = devnum(t.path())?;
        let r = t.path();
        // The device itself.
        write(r, "sys/class/block/vdw/dev", &root_dev)?;
        // A partition (not in the mount table by this name).
        write(r, "sys/class/block/vdx/dev", "4000:16\n")?;
        write(r, "sys/class/block/vdx/vdx2/partition", "2\n")?;
        write(r, "sys/class/block/vdx/vdx2/dev", &root_dev)?;
        // Root on LVM: dm-0 (the root's device) is built on vdy3.
        write(r, "sys/class/block/vdy/dev", "4000:32\n")?;
        write(r, "sys/class/block/vdy/vdy3/partition", "3\n")?;
        write(r, "sys/class/block/vdy/vdy3/dev", "4000:35\n")?;
        write(r, "sys/class/block/dm-0/dev", &root_dev)?;
        std::fs::create_dir_all(r.join("sys/class/block/dm-0/slaves/vdy3"))?;
        // An unrelated disk.
        write(r, "sys/class/block/vdz/dev", "4000:48\n")?;
        write(r, "sys/class/block/vdz/vdz1/partition", "1\n")?;
        write(r, "sys/class/block/vdz/vdz1/dev", "4000:49\n")?;

        let guard = DiskGuard::new(vec![], r);
        let msg = |dev: &str| {
            guard
                .check_writable(Path::new(dev))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let root_dev = root_dev.trim();
        assert_eq!(
            msg("/dev/vdw"),
            format!(
                "refusing to write /dev/vdw: it holds the running system's root filesystem \
                 (/dev/vdw is the device of / ({root_dev}))"
            )
        );
        assert!(
            msg("/dev/vdx").contains("(/dev/vdx2 is the device of /"),
            "{}",
            msg("/dev/vdx")
        );
        assert!(
            msg("/dev/vdy").contains("/ is on /dev/dm-0") && msg("/dev/vdy").contains("/dev/vdy3"),
            "{}",
            msg("/dev/vdy")
        );
        assert_eq!(guard.check_writable(Path::new("/dev/vdz")), Ok(()));
        // The allow-list does not override the root check.
        let allowed = DiskGuard::new(vec![PathBuf::from("/dev/vdw")], r);
        assert!(matches!(
            allowed.check_writable(Path::new("/dev/vdw")),
            Err(GuardError::RootFilesystem(..))
        ));
        Ok(())
    }
}
