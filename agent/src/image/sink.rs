//! The write end: a block device (or file) region written with aligned `O_DIRECT` writes,
//! holding back the first MiB until the image is verified, and wiping the partition-table areas
//! when anything fails so a half-written disk never boots.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use tracing::{info, warn};

use super::buffer::{ALIGN, Block};
use super::error::ImageError;

/// Where the image goes: a block device or file, from `offset`, at most `max_len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Block device (or regular file) path; must exist.
    pub path: PathBuf,
    /// Byte offset of the region (a partition start, a spool area).
    pub offset: u64,
    /// Size of the region; `None` = to the end of the device (unbounded for a file).
    pub max_len: Option<u64>,
}

/// Bytes at the start of the target kept back until the checksum verifies, and the size of
/// each area wiped on failure (the primary GPT/MBR lives in the first MiB, the backup GPT in
/// the last).
pub const HOLD_BACK: u64 = 1 << 20;

/// Smallest direct write worth issuing without staging.
const MIN_DIRECT: usize = 64 << 10;

/// An open target region.
pub struct Sink {
    path: PathBuf,
    /// Buffered descriptor: the held-back head, unaligned tails, wipes, the buffered fallback.
    file: File,
    /// `O_DIRECT` descriptor, when the target accepts it.
    direct: Option<File>,
    offset: u64,
    capacity: Option<u64>,
    /// Length of the region that existed before we started (files), relative to `offset`.
    existing_len: u64,
    head: Vec<u8>,
    stage: Block,
    pos: u64,
    touched: bool,
    block_device: bool,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("capacity", &self.capacity)
            .field("direct", &self.direct.is_some())
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::EINVAL as i32)
}

impl Sink {
    /// Opens `target` for writing (it must exist: a block device or a regular file). Uses
    /// `O_DIRECT` when `direct_io` is set, the offset is aligned and the filesystem accepts it;
    /// otherwise buffered writes with a final `fdatasync`. Nothing is written yet.
    pub fn open(target: &Target, block_size: usize, direct_io: bool) -> Result<Self, ImageError> {
        let path = target.path.clone();
        let werr = |reason: String| ImageError::Write {
            target: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(&path).map_err(|e| werr(format!("cannot stat: {e}")))?;
        let block_device = meta.file_type().is_block_device();
        if !block_device && !meta.is_file() {
            return Err(werr("not a block device or regular file".into()));
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| werr(format!("cannot open for writing: {e}")))?;
        let size = if block_device {
            (&file)
                .seek(SeekFrom::End(0))
                .map_err(|e| werr(format!("cannot read the device size: {e}")))?
        } else {
            meta.len()
        };
        let capacity = if block_device {
            let room = size.checked_sub(target.offset).ok_or_else(|| {
                werr(format!(
                    "offset {} is beyond the end of the device ({size} bytes)",
                    target.offset
                ))
            })?;
            Some(target.max_len.map_or(room, |m| m.min(room)))
        } else {
            target.max_len
        };
        let direct = if direct_io && target.offset.is_multiple_of(ALIGN as u64) {
            Self::open_direct(&path)?
        } else {
            None
        };
        info!(target = %path.display(), offset = target.offset, ?capacity,
              direct = direct.is_some(), "image target opened");
        Ok(Sink {
            path,
            file,
            direct,
            offset: target.offset,
            capacity,
            existing_len: size.saturating_sub(target.offset),
            head: Vec::new(),
            stage: Block::new(block_size.max(ALIGN)),
            pos: 0,
            touched: false,
            block_device,
        })
    }

    fn open_direct(path: &Path) -> Result<Option<File>, ImageError> {
        match OpenOptions::new()
            .write(true)
            .custom_flags(OFlag::O_DIRECT.bits())
            .open(path)
        {
            Ok(f) => Ok(Some(f)),
            Err(e) if is_einval(&e) => {
                warn!(target = %path.display(), "O_DIRECT refused; using buffered writes");
                Ok(None)
            }
            Err(e) => Err(ImageError::Write {
                target: path.display().to_string(),
                reason: format!("cannot open with O_DIRECT: {e}"),
            }),
        }
    }

    /// Room in the target, when bounded (block devices, or `max_len`).
    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    /// Whether `O_DIRECT` is in use.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes accepted so far (including the held-back head).
    pub fn bytes_accepted(&self) -> u64 {
        self.pos
    }

    /// Errors if an image of `size` bytes cannot fit.
    pub fn check_fits(&self, size: u64) -> Result<(), ImageError> {
        match self.capacity {
            Some(cap) if size > cap => Err(self.too_large(size, cap)),
            _ => Ok(()),
        }
    }

    fn too_large(&self, size: u64, capacity: u64) -> ImageError {
        ImageError::TooLarge {
            size,
            capacity,
            target: self.path.display().to_string(),
        }
    }

    fn io_error(&self, what: &str, e: &io::Error) -> ImageError {
        if e.raw_os_error() == Some(Errno::ENOSPC as i32) {
            ImageError::OutOfSpace {
                target: self.path.display().to_string(),
                written: self.pos,
            }
        } else {
            ImageError::Write {
                target: self.path.display().to_string(),
                reason: format!("{what}: {e}"),
            }
        }
    }

    fn zero_range(&self, rel_start: u64, len: u64) -> Result<(), ImageError> {
        let zeros = vec![0u8; HOLD_BACK as usize];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(HOLD_BACK);
            let at = self.offset + rel_start + done;
            self.file
                .write_all_at(&zeros[..n as usize], at)
                .map_err(|e| self.io_error(&format!("zeroing at byte {at}"), &e))?;
            done += n;
        }
        Ok(())
    }

    /// Before the first write: clear the old partition table so a disk interrupted mid-way
    /// does not boot an old table over new data. Never extends a file.
    fn start(&mut self) -> Result<(), ImageError> {
        self.touched = true;
        let room = if self.block_device {
            self.capacity.unwrap_or(0)
        } else {
            self.existing_len.min(self.capacity.unwrap_or(u64::MAX))
        };
        self.zero_range(0, HOLD_BACK.min(room))
    }

    /// Appends `data` to the image.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), ImageError> {
        if data.is_empty() {
            return Ok(());
        }
        let end = self.pos + data.len() as u64;
        if let Some(cap) = self.capacity
            && end > cap
        {
            return Err(self.too_large(end, cap));
        }
        if !self.touched {
            self.start()?;
        }
        if self.pos < HOLD_BACK {
            let take = ((HOLD_BACK - self.pos) as usize).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            self.pos += take as u64;
            data = &data[take..];
        }
        // Bounded: every turn consumes bytes of `data`.
        while !data.is_empty() {
            if self.direct.is_none() {
                self.write_buffered(data, self.pos)?;
                self.pos += data.len() as u64;
                return Ok(());
            }
            let aligned = data.as_ptr().align_offset(ALIGN) == 0;
            let whole = data.len() - data.len() % ALIGN;
            if self.stage.is_empty() && aligned && whole >= MIN_DIRECT {
                self.write_direct(&data[..whole], self.pos)?;
                self.pos += whole as u64;
                data = &data[whole..];
                continue;
            }
            let n = self.stage.extend(data);
            self.pos += n as u64;
            data = &data[n..];
            if self.stage.is_full() {
                self.flush_stage()?;
            }
        }
        Ok(())
    }

    fn write_buffered(&self, data: &[u8], rel: u64) -> Result<(), ImageError> {
        let at = self.offset + rel;
        self.file
            .write_all_at(data, at)
            .map_err(|e| self.io_error(&format!("writing {} bytes at {at}", data.len()), &e))
    }

    /// A direct write of an aligned buffer; falls back to buffered writes for good when the
    /// kernel refuses it.
    fn write_direct(&mut self, data: &[u8], rel: u64) -> Result<(), ImageError> {
        let at = self.offset + rel;
        let Some(d) = &self.direct else {
            return self.write_buffered(data, rel);
        };
        match d.write_all_at(data, at) {
            Ok(()) => Ok(()),
            Err(e) if is_einval(&e) => {
                warn!(target = %self.path.display(), "O_DIRECT write refused; using buffered writes");
                self.direct = None;
                self.write_buffered(data, rel)
            }
            Err(e) => Err(self.io_error(&format!("writing {} bytes at {at}", data.len()), &e)),
        }
    }

    /// Writes the staged bytes: the aligned part directly, any tail buffered.
    fn flush_stage(&mut self) -> Result<(), ImageError> {
        if self.stage.is_empty() {
            return Ok(());
        }
        let len = self.stage.len();
        let rel = self.pos - len as u64;
        let whole = len - len % ALIGN;
        let stage = std::mem::replace(&mut self.stage, Block::new(0));
        let r = (|| {
            if whole > 0 {
                self.write_direct(&stage.data()[..whole], rel)?;
            }
            if whole < len {
                self.write_buffered(&stage.data()[whole..], rel + whole as u64)?;
            }
            Ok(())
        })();
        self.stage = stage;
        self.stage.clear();
        r
    }

    fn sync(&self) -> Result<(), ImageError> {
        if let Some(d) = &self.direct {
            d.sync_data().map_err(|e| self.io_error("syncing", &e))?;
        }
        self.file
            .sync_data()
            .map_err(|e| self.io_error("syncing", &e))
    }

    /// Writes everything but the held-back head and syncs. Returns the image size.
    pub fn finish(&mut self) -> Result<u64, ImageError> {
        self.flush_stage()?;
        self.sync()?;
        Ok(self.pos)
    }

    /// After verification: writes the held-back head and syncs.
    pub fn commit(&mut self) -> Result<(), ImageError> {
        let head = std::mem::take(&mut self.head);
        if !head.is_empty() {
            self.write_buffered(&head, 0)?;
        }
        self.sync()?;
        info!(target = %self.path.display(), bytes = self.pos, "image committed");
        Ok(())
    }

    /// Zeroes the first and last MiB of the target region (and of the part written), so
    /// neither an old nor a partial partition table remains. A no-op when nothing was written.
    pub fn wipe(&mut self) -> Result<(), ImageError> {
        self.head.clear();
        self.stage.clear();
        if !self.touched {
            return Ok(());
        }
        let mut ends = vec![self.pos, self.capacity.unwrap_or(self.existing_len)];
        if !self.block_device {
            // Never grow a file just to wipe it.
            let limit = self.existing_len.max(self.pos);
            ends.iter_mut().for_each(|e| *e = (*e).min(limit));
        }
        let first = HOLD_BACK.min(ends.iter().copied().max().unwrap_or(0));
        self.zero_range(0, first)?;
        ends.sort_unstable();
        ends.dedup();
        for end in ends {
            let len = HOLD_BACK.min(end);
            self.zero_range(end - len, len)?;
        }
        self.sync()?;
        warn!(target = %self.path.display(), offset = self.offset,
              "image write failed: partition-table areas wiped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    fn target(path: &Path, offset: u64, max_len: Option<u64>) -> Target {
        Target {
            path: path.to_path_buf(),
            offset,
            max_len,
        }
    }

    fn write_in_pieces(s: &mut Sink, data: &[u8], piece: usize) -> Result<(), ImageError> {
        for c in data.chunks(piece) {
            // Copy into an aligned block, as the pipeline does.
            let mut b = Block::new(piece);
            b.extend(c);
            s.write(b.data())?;
        }
        Ok(())
    }

    #[test]
    fn head_is_held_back_until_commit() -> anyhow::Result<()> {
        for direct in [true, false] {
            let dir = tempfile::tempdir()?;
            let p = dir.path().join("disk");
            std::fs::write(&p, vec![0xAAu8; 4 << 20])?;
            let data = pattern((3 << 20) + 1234);
            let mut s = Sink::open(&target(&p, 0, None), 256 << 10, direct)?;
            write_in_pieces(&mut s, &data, 200_000)?;
            assert_eq!(s.finish()?, data.len() as u64);
            let before = std::fs::read(&p)?;
            assert!(before[..HOLD_BACK as usize].iter().all(|&b| b == 0));
            assert_eq!(
                &before[HOLD_BACK as usize..data.len()],
                &data[HOLD_BACK as usize..]
            );
            s.commit()?;
            let after = std::fs::read(&p)?;
            assert_eq!(&after[..data.len()], &data[..]);
            assert!(after[data.len()..].iter().all(|&b| b == 0xAA));
        }
        Ok(())
    }

    #[test]
    fn offset_and_max_len_are_respected() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("disk");
        std::fs::write(&p, vec![0xAAu8; 6 << 20])?;
        let off = 1 << 20;
        let mut s = Sink::open(&target(&p, off, Some(2 << 20)), 128 << 10, true)?;
        assert!(s.check_fits(2 << 20).is_ok());
        assert!(s.check_fits((2 << 20) + 1).is_err());
        let data = pattern(3 << 20);
        let r = write_in_pieces(&mut s, &data, 512 << 10);
        match r {
            Err(ImageError::TooLarge { size, capacity, .. }) => {
                assert_eq!(capacity, 2 << 20);
                assert!(size > capacity);
            }
            other => anyhow::bail!("expected TooLarge, got {other:?}"),
        }
        s.wipe()?;
        let img = std::fs::read(&p)?;
        let off = off as usize;
        assert!(
            img[..off].iter().all(|&b| b == 0xAA),
            "before the region untouched"
        );
        assert!(
            img[off + (2 << 20)..].iter().all(|&b| b == 0xAA),
            "after the region untouched"
        );
        assert!(
            img[off..off + (2 << 20)].iter().all(|&b| b == 0),
            "region wiped"
        );
        Ok(())
    }

    #[test]
    fn small_images_and_wipe_of_a_file_do_not_grow_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("disk");
        std::fs::write(&p, b"")?;
        let data = pattern(10_000);
        let mut s = Sink::open(&target(&p, 0, None), 64 << 10, true)?;
        s.write(&data)?;
        s.finish()?;
        s.commit()?;
        assert_eq!(std::fs::read(&p)?, data);

        std::fs::write(&p, vec![0x55u8; 5 << 20])?;
        let mut s = Sink::open(&target(&p, 0, None), 64 << 10, true)?;
        write_in_pieces(&mut s, &pattern(2 << 20), 64 << 10)?;
        s.finish()?;
        s.wipe()?;
        let img = std::fs::read(&p)?;
        assert_eq!(img.len(), 5 << 20);
        let mib = 1 << 20;
        assert!(img[..mib].iter().all(|&b| b == 0));
        assert!(
            img[(5 << 20) - mib..].iter().all(|&b| b == 0),
            "old backup GPT area"
        );
        assert!(
            img[mib..2 * mib].iter().all(|&b| b == 0),
            "end of the written part"
        );
        assert!(img[2 * mib..3 * mib].iter().all(|&b| b == 0x55));
        Ok(())
    }

    #[test]
    fn refuses_missing_targets_and_directories() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(Sink::open(&target(&dir.path().join("nope"), 0, None), 65536, true).is_err());
        assert!(Sink::open(&target(dir.path(), 0, None), 65536, true).is_err());
        Ok(())
    }
}
