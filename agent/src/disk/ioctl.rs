//! The block-device ioctls the agent issues, each behind one small safe function.
//!
//! nix's `ioctl_*!` macros encode the request numbers and generate `unsafe fn`s (the kernel
//! cannot check what the argument points at). Each generated function is called from exactly
//! one safe wrapper here, whose `// SAFETY:` note says why the argument is what the kernel reads
//! or writes for that request. Nothing else in the agent issues ioctls.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::libc::{c_int, c_uint};
use nix::sys::ioctl::ioctl_num_type;

/// Re-read the partition table (`_IO(0x12, 95)`).
const BLKRRPART: ioctl_num_type = nix::request_code_none!(0x12, 95);
/// Flush the buffer cache (`_IO(0x12, 97)`).
const BLKFLSBUF: ioctl_num_type = nix::request_code_none!(0x12, 97);
/// Size in bytes (`_IOR(0x12, 114, size_t)`; the kernel writes a `u64` whatever `size_t` is).
const BLKGETSIZE64: ioctl_num_type =
    nix::request_code_read!(0x12, 114, std::mem::size_of::<usize>());
/// Logical sector size, an `int` (`_IO(0x12, 104)`).
const BLKSSZGET: ioctl_num_type = nix::request_code_none!(0x12, 104);
/// Physical sector size, an `unsigned int` (`_IO(0x12, 123)`).
const BLKPBSZGET: ioctl_num_type = nix::request_code_none!(0x12, 123);
/// Zero the byte range `{start, len}` (two `u64`) (`_IO(0x12, 127)`).
const BLKZEROOUT: ioctl_num_type = nix::request_code_none!(0x12, 127);

/// The generated `unsafe fn`s; only the wrappers below call them.
mod raw {
    use super::*;

    nix::ioctl_none_bad!(blkrrpart, BLKRRPART);
    nix::ioctl_none_bad!(blkflsbuf, BLKFLSBUF);
    nix::ioctl_read_bad!(blkgetsize64, BLKGETSIZE64, u64);
    nix::ioctl_read_bad!(blksszget, BLKSSZGET, c_int);
    nix::ioctl_read_bad!(blkpbszget, BLKPBSZGET, c_uint);
    nix::ioctl_write_ptr_bad!(blkzeroout, BLKZEROOUT, [u64; 2]);
}

/// `BLKRRPART`: makes the kernel re-read the partition table of the open disk `file`.
pub(crate) fn blkrrpart(file: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument, so no memory is read or written; `file` is borrowed,
    // hence open, for the duration of the call.
    unsafe { raw::blkrrpart(file.as_raw_fd()) }?;
    Ok(())
}

/// `BLKFLSBUF`: flushes and drops the buffer cache of the open block device `file`.
pub(crate) fn blkflsbuf(file: &File) -> io::Result<()> {
    // SAFETY: BLKFLSBUF takes no argument, so no memory is read or written; `file` is borrowed,
    // hence open, for the duration of the call.
    unsafe { raw::blkflsbuf(file.as_raw_fd()) }?;
    Ok(())
}

/// `BLKGETSIZE64`: the size in bytes of the open block device `file`.
pub(crate) fn blkgetsize64(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at a live local u64;
    // `file` is borrowed, hence open, for the duration of the call.
    unsafe { raw::blkgetsize64(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// `BLKSSZGET`: the logical sector size of the open block device `file`.
pub(crate) fn blksszget(file: &File) -> io::Result<u32> {
    let mut size: c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at a live local int;
    // `file` is borrowed, hence open, for the duration of the call.
    unsafe { raw::blksszget(file.as_raw_fd(), &mut size) }?;
    u32::try_from(size).map_err(|_| io::Error::other(format!("negative sector size {size}")))
}

/// `BLKPBSZGET`: the physical sector size of the open block device `file`.
pub(crate) fn blkpbszget(file: &File) -> io::Result<u32> {
    let mut size: c_uint = 0;
    // SAFETY: BLKPBSZGET writes one unsigned int through the pointer, which points at a live
    // local of that type; `file` is borrowed, hence open, for the duration of the call.
    unsafe { raw::blkpbszget(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// `BLKZEROOUT`: zeroes `len` bytes at `start` of the block device `file` (opened for writing;
/// both sector-aligned, else the kernel answers `EINVAL`).
pub(crate) fn blkzeroout(file: &File, start: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [start, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) through the pointer, which points at a
    // live local array of exactly that; `file` is borrowed, hence open, for the call.
    unsafe { raw::blkzeroout(file.as_raw_fd(), &range) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            // `as u32`: the request type is `c_int` on musl, `c_ulong` on glibc.
            assert_eq!(BLKRRPART as u32, 0x125f);
            assert_eq!(BLKFLSBUF as u32, 0x1261);
            assert_eq!(BLKGETSIZE64 as u32, 0x8008_1272);
            assert_eq!(BLKSSZGET as u32, 0x1268);
            assert_eq!(BLKPBSZGET as u32, 0x127b);
            assert_eq!(BLKZEROOUT as u32, 0x127f);
        }
        assert_eq!(BLKSSZGET, nix::libc::BLKSSZGET);
        assert_eq!(BLKPBSZGET, nix::libc::BLKPBSZGET);
    }

    #[test]
    fn regular_files_are_refused() -> anyhow::Result<()> {
        let file = tempfile::tempfile()?;
        file.set_len(1 << 20)?;
        assert!(blkgetsize64(&file).is_err());
        assert!(blksszget(&file).is_err());
        assert!(blkzeroout(&file, 0, 4096).is_err());
        Ok(())
    }

    #[test]
    fn every_wrapper_works_on_a_loop_device() -> anyhow::Result<()> {
        use std::os::unix::fs::FileExt;

        let dir = tempfile::tempdir()?;
        let backing = dir.path().join("disk.img");
        {
            let f = File::create(&backing)?;
            f.set_len(8 << 20)?;
            f.write_all_at(&[0xAAu8; 3 * 4096], 4096)?;
        }
        let lo = crate::testutil::LoopDevice::attach(&backing)?;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lo.path)?;
        assert_eq!(blkgetsize64(&dev)?, 8 << 20);
        assert_eq!(blksszget(&dev)?, 512);
        assert!(blkpbszget(&dev)? >= 512);
        blkzeroout(&dev, 2 * 4096, 4096)?;
        blkflsbuf(&dev)?;
        // A loop device without partition scanning refuses BLKRRPART (EINVAL); either answer
        // proves the request reached the block layer rather than being unknown (ENOTTY).
        if let Err(e) = blkrrpart(&dev) {
            assert_ne!(e.raw_os_error(), Some(nix::libc::ENOTTY), "{e}");
        }
        drop(dev);
        let back = std::fs::read(&backing)?;
        assert!(back[4096..2 * 4096].iter().all(|&b| b == 0xAA));
        assert!(back[2 * 4096..3 * 4096].iter().all(|&b| b == 0));
        assert!(back[3 * 4096..4 * 4096].iter().all(|&b| b == 0xAA));
        Ok(())
    }
}
