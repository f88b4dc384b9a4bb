//! Config drives: decode the value Ironic sends (gzip+base64 inline, or the downloaded content
//! of an `http(s)://` URL: such data or a raw image) into a bounded temp file, write it to a
//! partition, and, for whole-disk images, find or create the `config-2` partition at the end
//! of the disk. Fetching a URL is not done here (see `deploy::configdrive`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

use super::blockdev::{self, partition_path};
use super::table::{self, PartitionKind, TableKind};
use super::{DiskError, MIB, probe};

/// Largest config drive accepted (IPA's limit for whole-disk images, applied everywhere).
pub const MAX_CONFIGDRIVE_BYTES: u64 = 64 * MIB;
/// Size of the partition created at the end of a whole-disk image.
pub const CONFIGDRIVE_PARTITION_MIB: u64 = 64;
/// A decoded config drive in a temp file, removed when dropped.
#[derive(Debug)]
pub struct ConfigDriveFile {
    path: PathBuf,
    size: u64,
}

impl ConfigDriveFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its size in MiB, rounded up (the partition size for partition images).
    pub fn size_mib(&self) -> u64 {
        self.size.div_ceil(MIB)
    }
}

impl Drop for ConfigDriveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A temp file removed on drop unless kept.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile {
    fn create(dir: &Path, prefix: &str) -> Result<TempFile, DiskError> {
        for _ in 0..16 {
            let path = dir.join(format!("{prefix}{:016x}", rand::random::<u64>()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(DiskError::io("creating a temp file in", dir)(e)),
            }
        }
        Err(DiskError::io("creating a temp file in", dir)(
            std::io::ErrorKind::AlreadyExists.into(),
        ))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Drops ASCII whitespace from a byte stream (base64 text comes wrapped in lines).
struct SkipWhitespace<R>(R);

impl<R: Read> Read for SkipWhitespace<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.0.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut kept = 0;
            for i in 0..n {
                if !buf[i].is_ascii_whitespace() {
                    buf[kept] = buf[i];
                    kept += 1;
                }
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') || b.is_ascii_whitespace()
}

/// Where the bytes came from: an inline value must be base64; downloaded bytes may be raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Inline,
    Download,
}

/// Decodes `src` (base64 text when `base64`) into `out`: gunzipped when it starts with the gzip
/// magic, else copied raw (downloads; inline only if it is a filesystem image). At most
/// [`MAX_CONFIGDRIVE_BYTES`] are written.
fn decode_into(
    src: Box<dyn Read + '_>,
    base64: bool,
    origin: Origin,
    out: &mut TempFile,
) -> Result<u64, DiskError> {
    let reader: Box<dyn Read + '_> = if base64 {
        Box::new(base64::read::DecoderReader::new(
            SkipWhitespace(src),
            &STANDARD_PAD_INDIFFERENT,
        ))
    } else {
        src
    };
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader
        .fill_buf()
        .map_err(|e| DiskError::ConfigDriveInvalid(format!("decoding base64: {e}")))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    if head.is_empty() {
        return Err(DiskError::ConfigDriveInvalid(
            "the config drive is empty".into(),
        ));
    }
    let decoded: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        tracing::info!("config drive is not gzipped; using it as is");
        Box::new(reader)
    };
    let mut limited = decoded.take(MAX_CONFIGDRIVE_BYTES + 1);
    let written = std::io::copy(&mut limited, &mut out.file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData
            || e.kind() == std::io::ErrorKind::InvalidInput
        {
            DiskError::ConfigDriveInvalid(format!(
                "decoding {}: {e}",
                if gzip { "gzip" } else { "base64" }
            ))
        } else {
            DiskError::io("writing", &out.path)(e)
        }
    })?;
    if written > MAX_CONFIGDRIVE_BYTES {
        return Err(DiskError::ConfigDriveTooLarge {
            size: written,
            max: MAX_CONFIGDRIVE_BYTES,
        });
    }
    if written == 0 {
        return Err(DiskError::ConfigDriveInvalid(
            "the config drive is empty".into(),
        ));
    }
    out.file
        .flush()
        .map_err(DiskError::io("writing", &out.path))?;
    if !gzip && origin == Origin::Inline {
        let fs = probe::probe(&out.path)?;
        if !fs.is_some_and(|f| matches!(f.fstype, "iso9660" | "vfat")) {
            return Err(DiskError::ConfigDriveInvalid(
                "the config drive is neither gzip data nor an ISO 9660/VFAT image".into(),
            ));
        }
    }
    Ok(written)
}

fn finish(mut out: TempFile, size: u64) -> ConfigDriveFile {
    out.keep = true;
    ConfigDriveFile {
        path: out.path.clone(),
        size,
    }
}

/// Decodes an inline config drive (base64 of gzip, as Ironic sends it) into a temp file in
/// `tmpdir`. Not base64 → [`DiskError::ConfigDriveInvalid`].
pub fn decode_inline(value: &str, tmpdir: &Path) -> Result<ConfigDriveFile, DiskError> {
    if !value.bytes().all(is_base64_byte) {
        return Err(DiskError::ConfigDriveInvalid(
            "the config drive is not base64 encoded".into(),
        ));
    }
    let mut out = TempFile::create(tmpdir, "configdrive-")?;
    let size = decode_into(Box::new(value.as_bytes()), true, Origin::Inline, &mut out)?;
    Ok(finish(out, size))
}

/// Decodes downloaded content like an inline value, except that content which is not base64
/// throughout is used as raw bytes (gunzipped if gzip).
pub fn decode_downloaded(raw: &[u8], tmpdir: &Path) -> Result<ConfigDriveFile, DiskError> {
    let base64 = !raw.is_empty() && raw.iter().copied().all(is_base64_byte);
    if !base64 {
        tracing::info!("downloaded config drive is not base64; treating it as binary");
    }
    let mut out = TempFile::create(tmpdir, "configdrive-")?;
    let size = decode_into(Box::new(raw), base64, Origin::Download, &mut out)?;
    Ok(finish(out, size))
}

/// Copies the config drive image `file` onto `target` (a partition) and flushes it. Fails if the
/// image is larger than the target.
///
/// Only call after the disk guard accepted the disk holding `target`.
pub fn write_configdrive(target: &Path, file: &Path) -> Result<(), DiskError> {
    let size = std::fs::metadata(file)
        .map_err(DiskError::io("inspecting", file))?
        .len();
    let room = blockdev::size_bytes(target)?;
    if size > room {
        return Err(DiskError::Layout(format!(
            "the config drive ({size} bytes) is larger than {} ({room} bytes)",
            target.display()
        )));
    }
    let mut src = File::open(file).map_err(DiskError::io("opening", file))?;
    let dst = blockdev::open_write(target)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut off = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(DiskError::io("reading", file))?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], off)
            .map_err(DiskError::io("writing the config drive to", target))?;
        off += n as u64;
    }
    dst.sync_all().map_err(DiskError::io("syncing", target))?;
    drop(dst);
    blockdev::flush(target)?;
    tracing::info!(target = %target.display(), bytes = off, "config drive written");
    Ok(())
}

/// Whole-disk images: puts the config drive `iso` on `disk` and returns the partition node.
///
/// An ISO over 64 MiB is refused. The backup GPT is moved to the end of the disk first. A
/// partition whose filesystem is labelled `config-2` is reused; otherwise a 64 MiB partition is
/// created at the end of the disk (see [`table::add_partition_at_end`]). Then the ISO is written.
///
/// Only call after the disk guard accepted `disk`.
pub fn ensure_configdrive_partition(disk: &Path, iso: &Path) -> Result<PathBuf, DiskError> {
    let size = std::fs::metadata(iso)
        .map_err(DiskError::io("inspecting", iso))?
        .len();
    if size > MAX_CONFIGDRIVE_BYTES {
        return Err(DiskError::ConfigDriveTooLarge {
            size,
            max: MAX_CONFIGDRIVE_BYTES,
        });
    }
    blockdev::flush(disk)?;
    let kind = table::read_table(disk)?
        .ok_or_else(|| DiskError::table(disk, "the image holds no partition table"))?
        .kind;
    if kind == TableKind::Gpt {
        table::relocate_gpt_backup(disk)?;
    }
    let (number, node) = match table::find_config_drive(disk)? {
        Some((p, node)) => {
            tracing::info!(partition = %node.display(), "reusing the existing config-2 partition");
            if size > p.size {
                return Err(DiskError::Layout(format!(
                    "the config drive ({size} bytes) is larger than the existing config-2 partition ({} bytes)",
                    p.size
                )));
            }
            (p.number, node)
        }
        None => {
            let p = table::add_partition_at_end(
                disk,
                CONFIGDRIVE_PARTITION_MIB,
                PartitionKind::ConfigDrive,
                table::CONFIG_DRIVE_LABEL,
            )?;
            (p.number, partition_path(disk, p.number))
        }
    };
    let all = table::read_table(disk)?
        .map(|t| t.data_numbers())
        .unwrap_or_else(|| vec![number]);
    blockdev::reread_partitions(disk, &all)?;
    write_configdrive(&node, iso)?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::disk::testing::{partx_show, sparse, vfat_image};
    use crate::testutil::LoopDevice;

    fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data)?;
        Ok(e.finish()?)
    }

    /// Base64 wrapped at 76 columns, as `base64(1)` prints it.
    fn b64_wrapped(data: &[u8]) -> String {
        let s = STANDARD.encode(data);
        s.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn config_drive_image(dir: &Path) -> anyhow::Result<Vec<u8>> {
        let p = vfat_image(dir, "cd-src.img", 2 << 20, "config-2")?;
        Ok(std::fs::read(p)?)
    }

    #[test]
    fn inline_gzip_base64_is_decoded() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let img = config_drive_image(dir.path())?;
        let value = b64_wrapped(&gzip(&img)?);
        let cd = decode_inline(&value, dir.path())?;
        assert_eq!(std::fs::read(cd.path())?, img);
        assert_eq!((cd.size(), cd.size_mib()), (img.len() as u64, 2));
        let path = cd.path().to_path_buf();
        drop(cd);
        assert!(!path.exists(), "temp file removed on drop");
        Ok(())
    }

    #[test]
    fn inline_errors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let e = decode_inline("this is *not* base64!", dir.path()).err();
        assert!(matches!(e, Some(DiskError::ConfigDriveInvalid(_))), "{e:?}");
        assert!(e.is_some_and(|e| e.is_invalid_params()));
        // Base64 of bytes that are neither gzip nor a filesystem image.
        let e = decode_inline(&STANDARD.encode(b"hello world"), dir.path()).err();
        assert!(matches!(e, Some(DiskError::ConfigDriveInvalid(_))), "{e:?}");
        // Truncated gzip.
        let gz = gzip(&[7u8; 100_000])?;
        let e = decode_inline(&STANDARD.encode(&gz[..gz.len() / 2]), dir.path()).err();
        assert!(e.is_some(), "truncated gzip accepted");
        assert!(matches!(
            decode_inline("", dir.path()),
            Err(DiskError::ConfigDriveInvalid(_))
        ));
        // More than 64 MiB once gunzipped.
        let big = gzip(&vec![0u8; (MAX_CONFIGDRIVE_BYTES + 4096) as usize])?;
        let e = decode_inline(&STANDARD.encode(&big), dir.path()).err();
        assert!(
            matches!(e, Some(DiskError::ConfigDriveTooLarge { .. })),
            "{e:?}"
        );
        // Nothing left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("configdrive-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        Ok(())
    }

    #[test]
    fn inline_raw_image_is_accepted() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let img = config_drive_image(dir.path())?;
        let cd = decode_inline(&STANDARD.encode(&img), dir.path())?;
        assert_eq!(std::fs::read(cd.path())?, img);
        Ok(())
    }
    #[test]
    fn downloaded_base64_gzip_and_raw_content() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let img = config_drive_image(dir.path())?;
        let gz = gzip(&img)?;
        for raw in [b64_wrapped(&gz).into_bytes(), gz, img.clone()] {
            let cd = decode_downloaded(&raw, dir.path())?;
            assert_eq!(std::fs::read(cd.path())?, img);
        }
        let e = decode_downloaded(b"", dir.path()).err();
        assert!(matches!(e, Some(DiskError::ConfigDriveInvalid(_))), "{e:?}");
        Ok(())
    }

    fn whole_disk(dir: &Path, kind: TableKind, parts: usize) -> anyhow::Result<LoopDevice> {
        let image = sparse(dir, "image.raw", 48 << 20)?;
        let specs: Vec<table::PartitionSpec> = (0..parts)
            .map(|i| table::PartitionSpec {
                size_mib: 8,
                kind: PartitionKind::Linux,
                name: format!("p{i}"),
                bootable: i == 0,
            })
            .collect();
        table::write_table(&image, kind, &specs)?;
        let disk = dir.join("disk.img");
        std::fs::copy(&image, &disk)?;
        File::options()
            .write(true)
            .open(&disk)?
            .set_len(256 << 20)?;
        LoopDevice::attach(&disk)
    }

    #[test]
    fn whole_disk_gpt_gets_a_config_drive_at_the_end_then_reuses_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = whole_disk(dir.path(), TableKind::Gpt, 1)?;
        let iso = vfat_image(dir.path(), "cd.img", 2 << 20, "config-2")?;
        let node = ensure_configdrive_partition(&lo.path, &iso)?;
        assert_eq!(node, lo.partition(2));
        let t = table::read_table(&lo.path)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        let p = t.get(2).ok_or_else(|| anyhow::anyhow!("no p2"))?;
        let total = (256u64 << 20) / 512;
        assert_eq!(
            (p.start + p.size) / 512,
            total - 33,
            "ends at the disk's end"
        );
        assert!(p.size >= 64 * MIB && p.start % MIB == 0);
        let fs = probe::probe(&node)?.ok_or_else(|| anyhow::anyhow!("empty"))?;
        assert_eq!(fs.label.as_deref(), Some("config-2"));
        assert_eq!(partx_show(&lo.path)?.len(), 2);

        // A second deploy of the same disk reuses the partition.
        let node2 = ensure_configdrive_partition(&lo.path, &iso)?;
        assert_eq!(node2, node);
        assert_eq!(
            table::read_table(&lo.path)?.map(|t| t.numbers()),
            Some(vec![1, 2])
        );
        // Too large for the 64 MiB limit.
        let huge = sparse(dir.path(), "huge.iso", MAX_CONFIGDRIVE_BYTES + 1)?;
        assert!(matches!(
            ensure_configdrive_partition(&lo.path, &huge),
            Err(DiskError::ConfigDriveTooLarge { .. })
        ));
        Ok(())
    }

    #[test]
    fn whole_disk_msdos_config_drive() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let iso = vfat_image(dir.path(), "cd.img", 2 << 20, "config-2")?;
        {
            let lo = whole_disk(dir.path(), TableKind::Msdos, 1)?;
            let node = ensure_configdrive_partition(&lo.path, &iso)?;
            assert_eq!(node, lo.partition(2));
            let px = partx_show(&lo.path)?;
            assert_eq!((px[1].start, px[1].sectors), (192 * 2048, 64 * 2048));
            let fs = probe::probe(&node)?.ok_or_else(|| anyhow::anyhow!("empty"))?;
            assert_eq!(fs.label.as_deref(), Some("config-2"));
        }
        let lo = whole_disk(dir.path(), TableKind::Msdos, 4)?;
        assert!(matches!(
            ensure_configdrive_partition(&lo.path, &iso),
            Err(DiskError::Table { .. })
        ));
        Ok(())
    }

    #[test]
    fn existing_config_drive_too_small_is_an_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = whole_disk(dir.path(), TableKind::Gpt, 1)?;
        // An 8 MiB partition 1 labelled config-2 and a 10 MiB ISO.
        let small = vfat_image(dir.path(), "small.img", 8 << 20, "config-2")?;
        lo.rescan()?;
        write_configdrive(&lo.partition(1), &small)?;
        let big = vfat_image(dir.path(), "big.img", 10 << 20, "config-2")?;
        assert!(matches!(
            ensure_configdrive_partition(&lo.path, &big),
            Err(DiskError::Layout(_))
        ));
        Ok(())
    }
}
