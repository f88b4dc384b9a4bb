//! Generated disk images and the small byte helpers the deploy tests check them with.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::sh;

/// One MiB.
pub const MIB: u64 = 1 << 20;

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The SHA-256 of the file `p`, in lower-case hex.
pub fn sha256_file(p: &Path) -> anyhow::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(p)?)))
}

/// `len` bytes of deterministic, mildly compressible content (hex of a SHA-256 chain started
/// from `seed`).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = Sha256::digest(seed.to_le_bytes()).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(hex(&block).as_bytes());
    }
    out.truncate(len);
    out
}

/// A whole-disk raw image of `size` bytes with an msdos table (one Linux partition) and
/// `data` bytes of [`pattern`] from 1 MiB on, at most up to 1 MiB before the end (the rest
/// stays sparse zeros).
pub fn whole_disk_image(path: &Path, size: u64, data: u64) -> anyhow::Result<()> {
    std::fs::File::create(path)?.set_len(size)?;
    sh(&format!(
        "printf 'label: dos\\n,,L\\n' | sfdisk -q {}",
        path.display()
    ))?;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(MIB))?;
    f.write_all(&pattern(usize::try_from(data.min(size - 2 * MIB))?, size))?;
    Ok(())
}

/// Whether every byte of `b` is zero.
pub fn zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// Creates the folder `images` under `dir` (what an [`crate::image_server::ImageServer`] or
/// the shim's `--images` serves) and returns its path.
pub fn images_dir(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let images = dir.join("images");
    std::fs::create_dir(&images)?;
    Ok(images)
}
