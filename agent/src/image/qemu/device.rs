//! Facts about the spool and target devices, and zeroing the spool once it is consumed.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;

use nix::fcntl::{FallocateFlags, fallocate};
use nix::libc::off_t;
use nix::sys::stat::{major, minor};

use crate::disk::ioctl;

const ZERO_CHUNK: usize = 1 << 20;

/// What `convert` needs to know about a device or file.
#[derive(Debug, Clone, Copy)]
pub(super) struct DeviceInfo {
    /// Size in bytes.
    pub size: u64,
    /// True for a block device (qemu's `host_device`), false for a regular file (`file`).
    pub is_block: bool,
    /// Logical sector size: the unit of offsets and sizes qemu accepts for the region.
    pub sector: u64,
    /// `st_rdev` of a block device, `(st_dev, st_ino)` packed for a file.
    id: (u64, u64),
}

impl DeviceInfo {
    /// Stats `path` (a block device or a regular file).
    pub fn of(path: &Path) -> std::io::Result<DeviceInfo> {
        let meta = std::fs::metadata(path)?;
        let ft = meta.file_type();
        if ft.is_block_device() {
            let mut f = File::open(path)?;
            let size = f.seek(SeekFrom::End(0))?;
            Ok(DeviceInfo {
                size,
                is_block: true,
                sector: logical_sector(&f)?,
                id: (meta.rdev(), 0),
            })
        } else if ft.is_file() {
            Ok(DeviceInfo {
                size: meta.len(),
                is_block: false,
                sector: 512,
                id: (meta.dev(), meta.ino()),
            })
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither a block device nor a regular file",
            ))
        }
    }

    /// Where `target` starts on `self`: 0 when they are the same device or file, the
    /// partition's start when `target` is a partition of `self`, `None` when unrelated.
    pub fn placement_of(&self, target: &DeviceInfo) -> Option<u64> {
        if self.is_block != target.is_block {
            return None;
        }
        if self.id == target.id {
            return Some(0);
        }
        if !self.is_block {
            return None;
        }
        // /sys/dev/block/M:m of a partition has `partition` and `start` (in 512-byte units),
        // and its parent directory is the whole disk.
        let sys = format!(
            "/sys/dev/block/{}:{}",
            major(target.id.0),
            minor(target.id.0)
        );
        let sys = std::fs::canonicalize(sys).ok()?;
        if !sys.join("partition").exists() {
            return None;
        }
        let parent_dev = std::fs::read_to_string(sys.parent()?.join("dev")).ok()?;
        let own = format!("{}:{}", major(self.id.0), minor(self.id.0));
        if parent_dev.trim() != own {
            return None;
        }
        let start: u64 = std::fs::read_to_string(sys.join("start"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        start.checked_mul(512)
    }
}

fn logical_sector(f: &File) -> std::io::Result<u64> {
    Some(u64::from(ioctl::blksszget(f)?))
        .filter(|s| s.is_power_of_two())
        .ok_or_else(|| std::io::Error::other("bad sector size"))
}

/// Flushes whatever the pipeline may have left in the page cache for `path`.
pub(super) fn flush(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Writes zeros over `[offset, offset + len)` of `path` and flushes: `BLKZEROOUT` on a block
/// device, a punched hole in a regular file, plain zero writes when either is refused.
pub(super) fn zero_range(
    path: &Path,
    info: &DeviceInfo,
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let end = offset.saturating_add(len).min(info.size);
    if end <= offset {
        return Ok(());
    }
    let f = OpenOptions::new().write(true).open(path)?;
    let done = if info.is_block {
        blk_zeroout(&f, offset, end, info.sector)?
    } else {
        punch_hole(&f, offset, end)
    };
    if !done {
        write_zeros(&f, offset, end)?;
    }
    f.sync_all()
}

/// BLKZEROOUT over the sector-aligned middle, zero writes for the edges. False when the
/// device refuses the ioctl.
fn blk_zeroout(f: &File, start: u64, end: u64, sector: u64) -> std::io::Result<bool> {
    let (inner_start, inner_end) = (start.next_multiple_of(sector), end / sector * sector);
    if inner_start >= inner_end {
        return Ok(false);
    }
    if let Err(err) = ioctl::blkzeroout(f, inner_start, inner_end - inner_start) {
        tracing::debug!(%err, "BLKZEROOUT refused; writing zeros");
        return Ok(false);
    }
    write_zeros(f, start, inner_start)?;
    write_zeros(f, inner_end, end)?;
    Ok(true)
}

/// Punches a hole (reads back as zeros). False when the filesystem cannot.
fn punch_hole(f: &File, start: u64, end: u64) -> bool {
    let (Ok(off), Ok(len)) = (off_t::try_from(start), off_t::try_from(end - start)) else {
        return false;
    };
    let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    fallocate(f, mode, off, len).is_ok()
}

fn write_zeros(f: &File, start: u64, end: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut at = start;
    while at < end {
        let n = usize::try_from(end - at).map_or(ZERO_CHUNK, |n| n.min(ZERO_CHUNK));
        f.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroing_a_regular_file_keeps_its_neighbours() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0xAAu8; 3 * 4096 + 100])?;
        let info = DeviceInfo::of(&path)?;
        zero_range(&path, &info, 1000, 2 * 4096)?;
        let back = std::fs::read(&path)?;
        assert_eq!(back.len(), 3 * 4096 + 100);
        assert!(back[..1000].iter().all(|&b| b == 0xAA));
        assert!(back[1000..1000 + 8192].iter().all(|&b| b == 0));
        assert!(back[1000 + 8192..].iter().all(|&b| b == 0xAA));
        // Past the end: nothing happens, nothing grows.
        zero_range(&path, &info, 1 << 20, 4096)?;
        assert_eq!(std::fs::metadata(&path)?.len(), 3 * 4096 + 100);
        Ok(())
    }

    #[test]
    fn same_file_and_unrelated_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a")?;
        std::fs::write(&b, b"b")?;
        let (ia, ib) = (DeviceInfo::of(&a)?, DeviceInfo::of(&b)?);
        assert_eq!(ia.placement_of(&DeviceInfo::of(&a)?), Some(0));
        assert_eq!(ia.placement_of(&ib), None);
        assert!(DeviceInfo::of(dir.path()).is_err());
        Ok(())
    }
}
