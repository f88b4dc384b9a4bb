//! A filesystem label read from the first bytes of a device or image file, without mounting:
//! ISO 9660 (primary volume descriptor), FAT12/16/32 (root-directory label entry, else the
//! boot sector's), ext2/3/4 (`s_volume_name`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::MediaError;

/// How many bytes of a device are read: enough for the ISO 9660 descriptors (sector 16 on)
/// and a small FAT root directory.
pub const HEAD_BYTES: usize = 64 * 1024;

/// A filesystem the agent can recognise and mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// ISO 9660 (CD-ROM images, the virtual-media ISO, config drives).
    Iso9660,
    /// FAT12/16/32 (the virtual-media floppy, config drives).
    Vfat,
    /// ext2/3/4.
    Ext,
}

impl FsKind {
    /// The kernel's filesystem type name for `mount(2)`.
    pub fn mount_type(self) -> &'static str {
        match self {
            FsKind::Iso9660 => "iso9660",
            FsKind::Vfat => "vfat",
            FsKind::Ext => "ext4",
        }
    }
}

/// What [`read_label`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The filesystem.
    pub kind: FsKind,
    /// Its label; `None` when it has none.
    pub label: Option<String>,
}

/// Reads the label of the filesystem on `path` (a block device or an image file); `None` when
/// no known filesystem starts there.
pub fn read_label(path: &Path) -> Result<Option<Label>, MediaError> {
    let mut file = File::open(path).map_err(MediaError::io("opening", path))?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(MediaError::io("reading", path))?;
    Ok(label_from_bytes(&head))
}

/// The filesystem and label found in `head`, a device's first bytes. Never panics.
pub fn label_from_bytes(head: &[u8]) -> Option<Label> {
    iso9660(head).or_else(|| ext(head)).or_else(|| fat(head))
}

/// Up to the first NUL, trailing spaces removed (lossy UTF-8); `None` when empty.
fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]);
    let s = s.trim_end_matches([' ', '\t', '\n', '\r']);
    (!s.is_empty()).then(|| s.to_string())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const ISO_SECTOR: usize = 2048;

/// The primary volume descriptor's volume identifier (descriptors start at sector 16).
fn iso9660(head: &[u8]) -> Option<Label> {
    for sector in 16.. {
        let d = head.get(sector * ISO_SECTOR..(sector + 1) * ISO_SECTOR)?;
        if &d[1..6] != b"CD001" {
            return None;
        }
        match d[0] {
            1 => {
                return Some(Label {
                    kind: FsKind::Iso9660,
                    label: text(&d[40..72]),
                });
            }
            255 => return None,
            _ => continue,
        }
    }
    None
}

/// ext2/3/4: the superblock at 1024 (magic 0xEF53 at +56, name at +120..+136).
fn ext(head: &[u8]) -> Option<Label> {
    let sb = head.get(1024..2048)?;
    if u16_at(sb, 56)? != 0xEF53 {
        return None;
    }
    Some(Label {
        kind: FsKind::Ext,
        label: text(&sb[120..136]),
    })
}

/// FAT's placeholder for "no label".
const NO_NAME: &str = "NO NAME";

/// FAT12/16/32: a plausible BIOS parameter block, then the volume-label entry of the root
/// directory when it lies in `head`, else the boot sector's label; `NO NAME` is none.
fn fat(head: &[u8]) -> Option<Label> {
    let bs = head.get(..512)?;
    let bytes_per_sector = usize::from(u16_at(bs, 11)?);
    let per_cluster = usize::from(bs[13]);
    let reserved = usize::from(u16_at(bs, 14)?);
    let fats = usize::from(bs[16]);
    let root_entries = usize::from(u16_at(bs, 17)?);
    let fat16_size = usize::from(u16_at(bs, 22)?);
    let plausible = matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && per_cluster.is_power_of_two()
        && reserved > 0
        && matches!(fats, 1 | 2)
        && (bs[21] == 0xF0 || bs[21] >= 0xF8);
    if !plausible {
        return None;
    }
    let fat32 = fat16_size == 0;
    // (extended boot signature at, label at, root directory (offset, length) in bytes)
    let (sig_at, label_at, root) = if fat32 {
        let root = || {
            let fat_size = usize::try_from(u32_at(bs, 36)?).ok()?;
            let root_cluster = usize::try_from(u32_at(bs, 44)?).ok()?;
            let data = reserved.checked_add(fats.checked_mul(fat_size)?)?;
            let first = data.checked_add(root_cluster.checked_sub(2)?.checked_mul(per_cluster)?)?;
            Some((
                first.checked_mul(bytes_per_sector)?,
                per_cluster.checked_mul(bytes_per_sector)?,
            ))
        };
        (66, 71, root())
    } else {
        let root = || {
            let at = reserved
                .checked_add(fats.checked_mul(fat16_size)?)?
                .checked_mul(bytes_per_sector)?;
            Some((at, root_entries * 32))
        };
        (38, 43, root())
    };
    let boot_label = (bs[sig_at] == 0x29)
        .then(|| text(&bs[label_at..label_at + 11]))
        .flatten()
        .filter(|l| l != NO_NAME);
    let dir_label = root
        .and_then(|(at, len)| head.get(at..at.checked_add(len)?))
        .and_then(root_dir_label)
        .filter(|l| l != NO_NAME);
    Some(Label {
        kind: FsKind::Vfat,
        label: dir_label.or(boot_label),
    })
}

/// The volume-label entry of a FAT root directory (raw 32-byte entries).
fn root_dir_label(entries: &[u8]) -> Option<String> {
    for e in entries.chunks_exact(32) {
        match e[0] {
            0 => return None,
            0xE5 => continue,
            _ => {}
        }
        let attr = e[11];
        // A label has the volume-id bit; long-name entries have all four low bits.
        if attr & 0x08 != 0 && attr & 0x0F != 0x0F {
            return text(&e[..11]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// Runs a tool that must exist: a missing one fails the test loudly.
    fn run(tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(tool)
            .args(args)
            .output()
            .map_err(|e| anyhow::anyhow!("{tool} is required by this test: {e}"))?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn blank(dir: &Path, name: &str, size: u64) -> anyhow::Result<PathBuf> {
        let p = dir.join(name);
        File::create(&p)?.set_len(size)?;
        Ok(p)
    }

    #[test]
    fn iso9660_volume_id() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let content = dir.path().join("content");
        std::fs::create_dir_all(content.join("openstack/latest"))?;
        std::fs::write(content.join("openstack/latest/network_data.json"), "{}")?;
        let iso = dir.path().join("cd.iso");
        let (iso_s, content_s) = (iso.display().to_string(), content.display().to_string());
        run(
            "genisoimage",
            &[
                "-quiet", "-R", "-J", "-V", "config-2", "-o", &iso_s, &content_s,
            ],
        )?;
        let got = read_label(&iso)?;
        assert_eq!(
            got,
            Some(Label {
                kind: FsKind::Iso9660,
                label: Some("config-2".into())
            })
        );
        run("genisoimage", &["-quiet", "-o", &iso_s, &content_s])?;
        assert_eq!(read_label(&iso)?.map(|l| l.kind), Some(FsKind::Iso9660));
        Ok(())
    }

    #[test]
    fn fat_labels() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        // A 1.44 MB floppy (FAT12), a FAT16 and a FAT32 image.
        for (name, size, extra) in [
            ("floppy", 1_474_560u64, vec![]),
            ("fat16", 32 << 20, vec!["-F", "16"]),
            ("fat32", 64 << 20, vec!["-F", "32"]),
        ] {
            let img = blank(dir.path(), name, size)?;
            let img_s = img.display().to_string();
            let mut args = extra.clone();
            args.extend(["-n", "ir-vfd-dev", &img_s]);
            run("mkfs.vfat", &args)?;
            let got = read_label(&img)?;
            assert_eq!(
                got,
                Some(Label {
                    kind: FsKind::Vfat,
                    label: Some("ir-vfd-dev".into())
                }),
                "{name}"
            );
            // Without a label: NO NAME is none.
            let mut args = extra;
            args.push(&img_s);
            run("mkfs.vfat", &args)?;
            assert_eq!(
                read_label(&img)?,
                Some(Label {
                    kind: FsKind::Vfat,
                    label: None
                }),
                "{name}"
            );
        }
        Ok(())
    }

    #[test]
    fn fat_root_directory_label_wins() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let img = blank(dir.path(), "floppy", 1_474_560)?;
        run("mkfs.vfat", &["-n", "OLD", &img.display().to_string()])?;
        let mut head = std::fs::read(&img)?;
        head.truncate(HEAD_BYTES);
        // FAT12 floppy: root directory after 1 reserved + 2 FATs of 9 sectors.
        let root = 19 * 512;
        assert_eq!(&head[root..root + 3], b"OLD");
        head[root..root + 11].copy_from_slice(b"NEWLABEL   ");
        assert_eq!(
            label_from_bytes(&head).and_then(|l| l.label).as_deref(),
            Some("NEWLABEL")
        );
        Ok(())
    }

    #[test]
    fn ext_labels() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for t in ["ext2", "ext3", "ext4"] {
            let img = blank(dir.path(), t, 8 << 20)?;
            run(
                &format!("mkfs.{t}"),
                &["-q", "-F", "-L", "config-2", &img.display().to_string()],
            )?;
            assert_eq!(
                read_label(&img)?,
                Some(Label {
                    kind: FsKind::Ext,
                    label: Some("config-2".into())
                }),
                "{t}"
            );
        }
        Ok(())
    }

    #[test]
    fn garbage_is_none_and_never_panics() -> anyhow::Result<()> {
        assert_eq!(label_from_bytes(&[]), None);
        assert_eq!(label_from_bytes(&[0u8; HEAD_BYTES]), None);
        let b: Vec<u8> = (0..HEAD_BYTES).map(|i| (i * 7 % 251) as u8).collect();
        let _ = label_from_bytes(&b);
        // A truncated ISO descriptor chain.
        let mut iso = vec![0u8; 16 * ISO_SECTOR + 10];
        iso[16 * ISO_SECTOR + 1..16 * ISO_SECTOR + 6].copy_from_slice(b"CD001");
        assert_eq!(label_from_bytes(&iso), None);
        let dir = tempfile::tempdir()?;
        assert_eq!(read_label(&blank(dir.path(), "empty", 0)?)?, None);
        assert!(read_label(&dir.path().join("missing")).is_err());
        Ok(())
    }
}
