//! Block-device facts and primitives: size, sector sizes, partition node names, re-reading the
//! partition table, flushing and zeroing ranges.
//!
//! Regular files stand in for disks everywhere (size = file length, 512-byte sectors), so the
//! table and probe code is testable on temp files; loop devices cover the block-device paths.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use super::{DiskError, cmd, ioctl};

/// Sector size assumed for regular files.
pub const FILE_SECTOR_SIZE: u64 = 512;

/// True if `path` is a block device (following symlinks).
pub fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

fn open_read(path: &Path) -> Result<File, DiskError> {
    File::open(path).map_err(DiskError::io("opening", path))
}

/// Opens `path` for reading and writing (no `O_CREAT`: the device or file must exist).
///
/// Only call after the disk guard accepted `path`.
pub fn open_write(path: &Path) -> Result<File, DiskError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(DiskError::io("opening for writing", path))
}

/// Size of `path` in bytes: `BLKGETSIZE64` for block devices, the length for regular files.
pub fn size_bytes(path: &Path) -> Result<u64, DiskError> {
    let file = open_read(path)?;
    let meta = file.metadata().map_err(DiskError::io("inspecting", path))?;
    if !meta.file_type().is_block_device() {
        return Ok(meta.len());
    }
    ioctl::blkgetsize64(&file).map_err(DiskError::io("reading the size (BLKGETSIZE64) of", path))
}

/// A sector size of `path`: `read` (one of the sector-size ioctls) for block devices, 512 for
/// regular files.
fn sector_size(
    path: &Path,
    read: fn(&File) -> std::io::Result<u32>,
    what: &'static str,
) -> Result<u64, DiskError> {
    let file = open_read(path)?;
    let meta = file.metadata().map_err(DiskError::io("inspecting", path))?;
    if !meta.file_type().is_block_device() {
        return Ok(FILE_SECTOR_SIZE);
    }
    read(&file)
        .map(u64::from)
        .map_err(DiskError::io(what, path))
}

/// Logical sector size (`BLKSSZGET`; 512 for regular files).
pub fn logical_sector_size(path: &Path) -> Result<u64, DiskError> {
    sector_size(
        path,
        ioctl::blksszget,
        "reading the logical sector size (BLKSSZGET) of",
    )
}

/// Physical sector size (`BLKPBSZGET`; 512 for regular files).
pub fn physical_sector_size(path: &Path) -> Result<u64, DiskError> {
    sector_size(
        path,
        ioctl::blkpbszget,
        "reading the physical sector size (BLKPBSZGET) of",
    )
}

/// The kernel's name for partition `number` of `disk`: `/dev/sda1`, but `/dev/nvme0n1p1`,
/// `/dev/loop0p1`, `/dev/md0p1`, `/dev/mmcblk0p1` when the disk name ends in a digit.
/// `/dev/disk/by-*` links are resolved to the kernel name first.
pub fn partition_path(disk: &Path, number: u32) -> PathBuf {
    let disk = if disk.starts_with("/dev/disk") {
        std::fs::canonicalize(disk).unwrap_or_else(|_| disk.to_path_buf())
    } else {
        disk.to_path_buf()
    };
    let name = disk.as_os_str().to_string_lossy();
    let sep = if name.ends_with(|c: char| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    PathBuf::from(format!("{name}{sep}{number}"))
}

/// The partition number of `part` if it is a partition node of `disk` (inverse of
/// [`partition_path`]).
pub fn partition_number(disk: &Path, part: &Path) -> Option<u32> {
    let first = partition_path(disk, 1);
    let first = first.to_string_lossy();
    let prefix = first.strip_suffix('1')?;
    let n: u32 = part.to_string_lossy().strip_prefix(prefix)?.parse().ok()?;
    (n > 0).then_some(n)
}

fn missing_nodes(disk: &Path, expected: &[u32]) -> Vec<PathBuf> {
    expected
        .iter()
        .map(|n| partition_path(disk, *n))
        .filter(|p| !is_block_device(p))
        .collect()
}

fn wait_for_nodes(disk: &Path, expected: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if missing_nodes(disk, expected).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asks the kernel to drop and re-create the partitions of `disk` with `partx` (update, then add).
fn partx_sync(disk: &Path) {
    if let Err(e) = cmd::run("partx", [Path::new("-u"), disk]) {
        tracing::debug!(error = %e, "partx -u failed; trying partx -a");
        if let Err(e) = cmd::run("partx", [Path::new("-a"), disk]) {
            tracing::debug!(error = %e, "partx -a failed");
        }
    }
}

/// Makes the kernel re-read the partition table of `disk` and waits until the nodes of the
/// `expected` partition numbers exist as block devices.
///
/// `BLKRRPART` first; when the kernel refuses (a loop device without partition scanning, or a
/// busy disk) `partx -u` (then `partx -a`) updates the kernel's view. Three attempts, each waiting
/// up to about 5 s, as IPA does. Does not change the disk's contents.
pub fn reread_partitions(disk: &Path, expected: &[u32]) -> Result<(), DiskError> {
    if !is_block_device(disk) {
        return Ok(());
    }
    for attempt in 1..=3 {
        let file = open_read(disk)?;
        let kernel_ok = match ioctl::blkrrpart(&file) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(disk = %disk.display(), error = %e, "BLKRRPART refused");
                false
            }
        };
        drop(file);
        if !kernel_ok {
            partx_sync(disk);
        }
        if wait_for_nodes(disk, expected, Duration::from_secs(2)) {
            return Ok(());
        }
        if kernel_ok {
            partx_sync(disk);
        }
        if wait_for_nodes(disk, expected, Duration::from_secs(3)) {
            return Ok(());
        }
        tracing::warn!(disk = %disk.display(), attempt, "partition nodes did not appear yet");
        std::thread::sleep(Duration::from_secs(1));
    }
    let missing = missing_nodes(disk, expected)
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(DiskError::PartitionsMissing {
        disk: disk.to_path_buf(),
        missing,
    })
}

/// Flushes `path`: `fsync`, then `BLKFLSBUF` for block devices so later reads (and other tools)
/// see what is on the medium.
pub fn flush(path: &Path) -> Result<(), DiskError> {
    let file = open_read(path)?;
    file.sync_all().map_err(DiskError::io("syncing", path))?;
    if is_block_device(path)
        && let Err(e) = ioctl::blkflsbuf(&file)
    {
        tracing::debug!(device = %path.display(), error = %e, "BLKFLSBUF failed");
    }
    Ok(())
}

/// Zeroes the byte ranges `(offset, len)` of `path` (clipped to its size) and syncs.
///
/// Block devices are written with `O_DIRECT` when every range is aligned to the logical sector
/// size, so nothing lingers in the page cache. Only call after the disk guard accepted `path`.
pub fn zero_ranges(path: &Path, ranges: &[(u64, u64)]) -> Result<(), DiskError> {
    let size = size_bytes(path)?;
    let sector = logical_sector_size(path)?.max(512);
    let ranges: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|(off, _)| *off < size)
        .map(|(off, len)| (*off, (*len).min(size - off)))
        .filter(|(_, len)| *len > 0)
        .collect();
    let aligned = ranges
        .iter()
        .all(|(o, l)| o % sector == 0 && l % sector == 0);
    let direct = aligned && is_block_device(path);
    let mut opts = OpenOptions::new();
    opts.write(true);
    if direct {
        opts.custom_flags(OFlag::O_DIRECT.bits());
    }
    let file = opts
        .open(path)
        .map_err(DiskError::io("opening for writing", path))?;
    const CHUNK: usize = 1 << 20;
    const ALIGN: usize = 4096;
    let buf = vec![0u8; CHUNK + ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
    let zeros = &buf[start..start + CHUNK];
    for (off, len) in ranges {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            file.write_all_at(&zeros[..n], off + done)
                .map_err(DiskError::io("zeroing", path))?;
            done += n as u64;
        }
    }
    file.sync_all().map_err(DiskError::io("syncing", path))?;
    drop(file);
    flush(path)
}

/// Reads exactly `len` bytes at `offset` of an open file; `None` if the file is shorter.
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; len];
    match file.read_exact_at(&mut buf, offset) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::LoopDevice;

    #[test]
    fn partition_names() {
        let cases = [
            ("/dev/sda", 1, "/dev/sda1"),
            ("/dev/vdb", 12, "/dev/vdb12"),
            ("/dev/nvme0n1", 1, "/dev/nvme0n1p1"),
            ("/dev/loop0", 3, "/dev/loop0p3"),
            ("/dev/md0", 1, "/dev/md0p1"),
            ("/dev/mmcblk0", 2, "/dev/mmcblk0p2"),
        ];
        for (disk, n, want) in cases {
            assert_eq!(partition_path(Path::new(disk), n), PathBuf::from(want));
            assert_eq!(
                partition_number(Path::new(disk), Path::new(want)),
                Some(n),
                "{want}"
            );
        }
        assert_eq!(
            partition_number(Path::new("/dev/sda"), Path::new("/dev/sdb1")),
            None
        );
    }

    #[test]
    fn regular_files_have_length_and_512_sectors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        File::create(&p)?.set_len(3 << 20)?;
        assert_eq!(size_bytes(&p)?, 3 << 20);
        assert_eq!(logical_sector_size(&p)?, 512);
        assert_eq!(physical_sector_size(&p)?, 512);
        assert!(!is_block_device(&p));
        Ok(())
    }

    #[test]
    fn loop_device_size_sectors_and_zeroing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("disk.img");
        {
            let f = File::create(&file)?;
            f.set_len(16 << 20)?;
            f.write_all_at(&[0xAAu8; 8192], 0)?;
            f.write_all_at(&[0xBBu8; 4096], (16 << 20) - 4096)?;
        }
        let lo = LoopDevice::attach(&file)?;
        assert!(is_block_device(&lo.path));
        assert_eq!(size_bytes(&lo.path)?, 16 << 20);
        assert_eq!(logical_sector_size(&lo.path)?, 512);
        assert!(physical_sector_size(&lo.path)? >= 512);
        zero_ranges(&lo.path, &[(0, 4096), ((16 << 20) - 4096, 1 << 20)])?;
        let f = File::open(&file)?;
        let head = read_at(&f, 0, 8192)?.unwrap_or_default();
        assert!(head[..4096].iter().all(|b| *b == 0));
        assert!(head[4096..].iter().all(|b| *b == 0xAA));
        let tail = read_at(&f, (16 << 20) - 4096, 4096)?.unwrap_or_default();
        assert!(tail.iter().all(|b| *b == 0));
        Ok(())
    }

    #[test]
    fn reread_without_table_expecting_nothing_is_ok() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = LoopDevice::create(&dir.path().join("disk.img"), 8 << 20)?;
        reread_partitions(&lo.path, &[])?;
        Ok(())
    }
}
