//! The overwrite fallback (IPA runs `shred --force [--zero] --iterations N`; the ramdisk only
//! has busybox, so it is done here): `iterations` passes of pseudo-random data, then a pass of
//! zeros when `zeroize`, written with `O_DIRECT` in 4 MiB aligned chunks and synced after each
//! pass. Progress is logged every 10 %.
//!
//! The random data comes from a fast non-cryptographic generator (xoshiro) seeded from the
//! operating system's random source: like shred's, it only has to be unpredictable enough that
//! the old contents cannot be told from it, and it must keep up with the disk.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;
use rand::Rng;
use rand::rngs::SmallRng;
use tracing::info;

use crate::disk::blockdev;

/// Bytes written per call.
const CHUNK: usize = 4 << 20;
/// Buffer alignment for `O_DIRECT`.
const ALIGN: usize = 4096;

/// What one pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Random,
    Zeros,
}

/// Overwrites all of `dev`: `iterations` random passes, then zeros when `zeroize`.
/// Only call after the disk guard accepted `dev`.
///
/// # Errors
/// Nothing to write with (`iterations` 0 and `zeroize` false: IPA's "device is unsupported"),
/// or an I/O error, naming the pass and the byte offset.
pub fn overwrite(dev: &Path, iterations: u32, zeroize: bool) -> Result<(), String> {
    let shown = dev.display();
    if iterations == 0 && !zeroize {
        return Err(format!(
            "Unable to erase block device {shown}: device is unsupported (no secure erase \
             applied, and driver_internal_info sets agent_erase_devices_iterations to 0 and \
             agent_erase_devices_zeroize to false, so there is nothing to overwrite it with)"
        ));
    }
    let size = blockdev::size_bytes(dev).map_err(|e| e.to_string())?;
    let direct = blockdev::is_block_device(dev);
    let mut opts = OpenOptions::new();
    opts.write(true);
    if direct {
        opts.custom_flags(OFlag::O_DIRECT.bits());
    }
    let file = opts
        .open(dev)
        .map_err(|e| format!("opening {shown} for writing: {e}"))?;

    let mut passes: Vec<Fill> = vec![Fill::Random; iterations as usize];
    if zeroize {
        passes.push(Fill::Zeros);
    }
    let total = size.saturating_mul(passes.len() as u64).max(1);
    info!(
        device = %shown,
        method = "overwrite",
        random_passes = iterations,
        zeroize,
        size,
        "erasing {shown} by overwriting it: {iterations} random pass(es){}",
        if zeroize { " and a pass of zeros" } else { "" }
    );

    let mut raw = vec![0u8; CHUNK + ALIGN];
    let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
    let buf = &mut raw[start..start + CHUNK];
    let mut written_total = 0u64;
    let mut last_tenth = 0u64;
    for (i, fill) in passes.iter().enumerate() {
        let pass = i + 1;
        let mut rng: SmallRng = rand::make_rng();
        if *fill == Fill::Zeros {
            buf.fill(0);
        }
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(CHUNK as u64) as usize;
            if *fill == Fill::Random {
                rng.fill_bytes(&mut buf[..n]);
            }
            file.write_all_at(&buf[..n], offset).map_err(|e| {
                format!(
                    "overwriting {shown} failed in pass {pass} of {} ({fill:?}) at byte \
                     {offset}: {e}",
                    passes.len()
                )
            })?;
            offset += n as u64;
            written_total += n as u64;
            let tenth = written_total.saturating_mul(10) / total;
            if tenth > last_tenth {
                last_tenth = tenth;
                info!(
                    device = %shown,
                    pass,
                    passes = passes.len(),
                    percent = tenth * 10,
                    "overwriting {shown}: {}% done",
                    tenth * 10
                );
            }
        }
        file.sync_data()
            .map_err(|e| format!("syncing {shown} after pass {pass}: {e}"))?;
    }
    drop(file);
    blockdev::flush(dev).map_err(|e| e.to_string())?;
    info!(device = %shown, method = "overwrite", "{shown} overwritten");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Read;

    use super::*;
    use crate::testutil::LoopDevice;

    const SIZE: u64 = 9 << 20; // not a multiple of the chunk size

    fn contents(path: &Path) -> anyhow::Result<Vec<u8>> {
        let mut v = Vec::new();
        File::open(path)?.read_to_end(&mut v)?;
        Ok(v)
    }

    /// A loop device over a file filled with a recognisable pattern.
    fn patterned(dir: &Path) -> anyhow::Result<(LoopDevice, Vec<u8>)> {
        let file = dir.join("disk.img");
        let pattern: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8 | 1).collect();
        std::fs::write(&file, &pattern)?;
        Ok((LoopDevice::attach(&file)?, pattern))
    }

    #[test]
    fn random_then_zeros_leaves_zeros() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (lo, _) = patterned(dir.path())?;
        overwrite(&lo.path, 1, true).map_err(anyhow::Error::msg)?;
        let after = contents(&lo.path)?;
        assert_eq!(after.len() as u64, SIZE);
        assert!(after.iter().all(|b| *b == 0), "not all zeros");
        Ok(())
    }

    #[test]
    fn random_only_replaces_everything() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (lo, before) = patterned(dir.path())?;
        overwrite(&lo.path, 2, false).map_err(anyhow::Error::msg)?;
        let after = contents(&lo.path)?;
        assert_eq!(after.len(), before.len());
        assert!(!after.iter().all(|b| *b == 0), "all zeros without zeroize");
        // Every 4 KiB block changed (random data matching the pattern is as good as impossible).
        for (i, (a, b)) in after.chunks(4096).zip(before.chunks(4096)).enumerate() {
            assert_ne!(a, b, "block {i} kept its old contents");
        }
        // Roughly uniform bytes: no value is more than twice as frequent as expected.
        let mut counts = [0u64; 256];
        for b in &after {
            counts[*b as usize] += 1;
        }
        let expected = SIZE / 256;
        assert!(
            counts.iter().all(|c| *c < expected * 2),
            "skewed random data"
        );
        Ok(())
    }

    #[test]
    fn nothing_to_write_is_unsupported() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("f");
        std::fs::write(&f, b"data")?;
        let e = overwrite(&f, 0, false).err().unwrap_or_default();
        assert!(e.contains("device is unsupported"), "{e}");
        assert_eq!(std::fs::read(&f)?, b"data");
        // Zeros only (iterations 0) is fine; regular files work too.
        overwrite(&f, 0, true).map_err(anyhow::Error::msg)?;
        assert_eq!(std::fs::read(&f)?, [0u8; 4]);
        Ok(())
    }
}
