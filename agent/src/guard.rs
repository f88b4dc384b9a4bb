//! The disk guard: the one check every destructive operation passes first.

use std::path::{Path, PathBuf};

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
}

/// Checks devices against the allow-list, the mount table and holder links.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    allow: Vec<PathBuf>,
    root: PathBuf,
}

impl DiskGuard {
    /// A guard with `allow` (empty = no allow-list), reading `/proc` and `/sys` under `root`.
    pub fn new(allow: Vec<PathBuf>, root: &Path) -> Self {
        DiskGuard {
            allow,
            root: root.to_path_buf(),
        }
    }

    fn canonical(p: &Path) -> PathBuf {
        std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
    }

    /// Refuses `device` unless it is allowed, not mounted and not held.
    pub fn check_writable(&self, device: &Path) -> Result<(), GuardError> {
        let dev = Self::canonical(device);
        let shown = device.display().to_string();
        if !self.allow.is_empty() && !self.allow.iter().any(|a| Self::canonical(a) == dev) {
            let list: Vec<String> = self.allow.iter().map(|a| a.display().to_string()).collect();
            return Err(GuardError::NotAllowed(shown, list.join(", ")));
        }
        let name = dev
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| GuardError::NotADevice(shown.clone(), "no device name".into()))?
            .to_string();
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
        let holders = self
            .root
            .join("sys/class/block")
            .join(&name)
            .join("holders");
        if let Ok(entries) = std::fs::read_dir(&holders) {
            let names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !names.is_empty() {
                return Err(GuardError::Held(shown, names.join(", ")));
            }
        }
        Ok(())
    }
}

/// Whether `candidate` is a partition node of `disk` (`/dev/sda1` of `/dev/sda`,
/// `/dev/nvme0n1p1` or `/dev/loop0p1` of theirs).
fn is_partition_of(candidate: &str, disk: &str) -> bool {
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
    fn partition_names() {
        assert!(is_partition_of("/dev/sda1", "/dev/sda"));
        assert!(is_partition_of("/dev/nvme0n1p3", "/dev/nvme0n1"));
        assert!(is_partition_of("/dev/loop3p2", "/dev/loop3"));
        assert!(!is_partition_of("/dev/sdab", "/dev/sda"));
        assert!(!is_partition_of("/dev/loop30", "/dev/loop3"));
        assert!(!is_partition_of("/dev/sda", "/dev/sda"));
    }
}
