//! The EFI system partition of a disk and the boot loaders on it.
//!
//! * [`find_esp`]: the first partition typed as an ESP (GPT type `C12A7328-…`, MBR `0xEF`),
//!   else the partition whose filesystem UUID, PARTUUID or label is the
//!   `efi_system_part_uuid` the conductor sent.
//! * [`find_loaders`]: the known loader files on a mounted ESP (IPA's list, matched
//!   case-insensitively). A shim-style `BOOT*.CSV` wins over everything else.
//! * [`BootTarget`]: what one boot entry points at: the loader's path in UEFI notation
//!   (`\EFI\debian\shimx64.efi`) and its label (from the CSV, else `ironic<N>`).

use std::path::{Path, PathBuf};

use crate::disk::table::{self, GPT_ESP, PartitionTable, PartitionType};
use crate::disk::{DiskError, blockdev, probe};

/// Loader file names IPA recognises, lower-case, in its order.
pub const LOADER_NAMES: &[&str] = &[
    "bootx64.csv",
    "bootaa64.csv",
    "boot.csv",
    "bootia32.efi",
    "bootx64.efi",
    "bootia64.efi",
    "bootarm.efi",
    "bootaa64.efi",
    "bootriscv32.efi",
    "bootriscv64.efi",
    "bootriscv128.efi",
    "grubaa64.efi",
    "winload.efi",
];

/// How deep [`find_loaders`] descends (an ESP is shallow: `EFI/<vendor>/<file>`).
const MAX_DEPTH: usize = 8;

/// Largest CSV file read (shim's are a few dozen bytes).
const MAX_CSV: u64 = 64 << 10;

/// An EFI system partition found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Esp {
    /// Its number in the disk's table.
    pub number: u32,
    /// Its node (`/dev/sda1`, `/dev/md0p1`).
    pub path: PathBuf,
}

/// The ESP of `disk`: the first partition of ESP type, else the partition identified by
/// `uuid` (filesystem UUID, PARTUUID or label, case-insensitive). `None` when neither exists.
///
/// # Errors
/// Reading the table or probing a partition failed.
pub fn find_esp(disk: &Path, uuid: Option<&str>) -> Result<Option<Esp>, DiskError> {
    let Some(table) = table::read_table(disk)? else {
        return Ok(None);
    };
    let typed = table.partitions.iter().find(|p| match p.ptype {
        PartitionType::Gpt(t) => t == GPT_ESP,
        PartitionType::Mbr(t) => t == 0xEF,
    });
    if let Some(p) = typed {
        return Ok(Some(Esp {
            number: p.number,
            path: blockdev::partition_path(disk, p.number),
        }));
    }
    match uuid {
        Some(u) => find_partition(disk, &table, u),
        None => Ok(None),
    }
}

/// The partition of `disk` whose filesystem UUID, PARTUUID or label equals `id`.
///
/// # Errors
/// Probing a partition failed.
pub fn find_partition(
    disk: &Path,
    table: &PartitionTable,
    id: &str,
) -> Result<Option<Esp>, DiskError> {
    let id = id.trim();
    for p in &table.partitions {
        if p.is_extended() {
            continue;
        }
        let probed = probe::probe_range(disk, p.start, p.size)?;
        let same = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(id));
        if same(Some(&p.partuuid))
            || same(probed.as_ref().and_then(|f| f.uuid.as_deref()))
            || same(probed.as_ref().and_then(|f| f.label.as_deref()))
        {
            return Ok(Some(Esp {
                number: p.number,
                path: blockdev::partition_path(disk, p.number),
            }));
        }
    }
    Ok(None)
}

/// A loader file found on the ESP, relative to its root (`EFI/BOOT/BOOTX64.EFI`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loader {
    /// A shim-style CSV naming the loader and its label.
    Csv(PathBuf),
    /// An EFI executable.
    Efi(PathBuf),
}

/// The known loaders under `root` (a mounted ESP), depth-first in name order. The first CSV
/// found is returned alone, as IPA does: it names the loader the distribution wants booted.
pub fn find_loaders(root: &Path) -> Vec<Loader> {
    let mut found = Vec::new();
    if let Some(csv) = walk(root, Path::new(""), 0, &mut found) {
        return vec![Loader::Csv(csv)];
    }
    found.into_iter().map(Loader::Efi).collect()
}

/// Collects `.efi` loaders into `found`; returns the first CSV met.
fn walk(root: &Path, rel: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Option<PathBuf> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(root.join(rel))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let t = e.file_type().ok()?;
            // Symbolic links are not followed (vfat has none; a loop would never end).
            (!t.is_symlink()).then(|| (e.file_name().to_string_lossy().into_owned(), t.is_dir()))
        })
        .collect();
    entries.sort();
    // Files of a directory before its subdirectories, as os.walk sees them.
    for (name, _) in entries.iter().filter(|(_, dir)| !dir) {
        let lower = name.to_ascii_lowercase();
        if !LOADER_NAMES.contains(&lower.as_str()) {
            continue;
        }
        let path = rel.join(name);
        if lower.ends_with(".csv") {
            return Some(path);
        }
        found.push(path);
    }
    for (name, _) in entries.iter().filter(|(_, dir)| *dir) {
        if let Some(csv) = walk(root, &rel.join(name), depth + 1, found) {
            return Some(csv);
        }
    }
    None
}

/// What one boot entry points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTarget {
    /// The loader in UEFI notation: `\EFI\debian\shimx64.efi`.
    pub loader: String,
    /// The entry's label.
    pub label: String,
}

/// `EFI/BOOT/BOOTX64.EFI` → `\EFI\BOOT\BOOTX64.EFI`.
pub fn uefi_path(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    format!("\\{}", parts.join("\\"))
}

/// The boot targets of `loaders` found under `root`: a CSV gives its loader (in the CSV's
/// directory) and label; `.efi` files are labelled `ironic1`, `ironic2`… in order. `suffix`
/// (e.g. `(RAID, part0)`) is appended to every label after a space.
///
/// # Errors
/// A CSV that cannot be read or does not hold `loader,label,…`.
pub fn boot_targets(
    root: &Path,
    loaders: &[Loader],
    suffix: Option<&str>,
) -> Result<Vec<BootTarget>, String> {
    let with_suffix = |label: String| match suffix {
        Some(s) => format!("{label} {s}"),
        None => label,
    };
    let mut out = Vec::new();
    let mut next_id = 1;
    for l in loaders {
        match l {
            Loader::Csv(rel) => {
                let (file, label) = read_csv(&root.join(rel))?;
                let loader_rel = rel.parent().unwrap_or(Path::new("")).join(&file);
                out.push(BootTarget {
                    loader: uefi_path(&loader_rel),
                    label: with_suffix(label),
                });
            }
            Loader::Efi(rel) => {
                out.push(BootTarget {
                    loader: uefi_path(rel),
                    label: with_suffix(format!("ironic{next_id}")),
                });
                next_id += 1;
            }
        }
    }
    Ok(out)
}

/// `(loader file, label)` of a shim `BOOT*.CSV`: UTF-16 (with a byte-order mark, or
/// little-endian without one), or plain UTF-8/ASCII; the first line's first two fields.
///
/// # Errors
/// Unreadable, too large, or without a loader file name and a label.
pub fn read_csv(path: &Path) -> Result<(String, String), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if meta.len() > MAX_CSV {
        return Err(format!("{shown} is {} bytes: not a boot CSV", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let text = decode_text(&bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let mut fields = line.splitn(4, ',').map(str::trim);
    let file = fields.next().unwrap_or_default();
    let label = fields.next().unwrap_or_default();
    if file.is_empty() || label.is_empty() {
        return Err(format!(
            "{shown} does not name a loader and a label (`loader.efi,Label,…`): {line:?}"
        ));
    }
    if file.contains(['/', '\\']) || file == ".." {
        return Err(format!(
            "{shown} names a loader outside its directory: {file:?}"
        ));
    }
    Ok((file.to_string(), label.to_string()))
}

/// UTF-16LE/BE by byte-order mark, UTF-16LE when every other byte is zero, else UTF-8 (lossy).
fn decode_text(bytes: &[u8]) -> String {
    let utf16 = |b: &[u8], le: bool| {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        b if b.len() >= 2 && b.iter().skip(1).step_by(2).all(|&x| x == 0) => utf16(b, true),
        b => String::from_utf8_lossy(b).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le_bom(s: &str) -> Vec<u8> {
        let mut out = vec![0xFF, 0xFE];
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    fn touch(root: &Path, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, data)?;
        Ok(())
    }

    #[test]
    fn a_csv_wins_and_names_the_loader_in_its_directory() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path();
        touch(root, "EFI/BOOT/BOOTX64.EFI", b"MZ")?;
        touch(
            root,
            "EFI/debian/BOOTX64.CSV",
            &utf16le_bom("shimx64.efi,debian,,This is the boot entry for debian\n"),
        )?;
        touch(root, "EFI/debian/shimx64.efi", b"MZ")?;
        let loaders = find_loaders(root);
        assert_eq!(
            loaders,
            vec![Loader::Csv(PathBuf::from("EFI/debian/BOOTX64.CSV"))]
        );
        let targets = boot_targets(root, &loaders, None).map_err(anyhow::Error::msg)?;
        assert_eq!(
            targets,
            vec![BootTarget {
                loader: "\\EFI\\debian\\shimx64.efi".into(),
                label: "debian".into()
            }]
        );
        let raid =
            boot_targets(root, &loaders, Some("(RAID, part1)")).map_err(anyhow::Error::msg)?;
        assert_eq!(raid[0].label, "debian (RAID, part1)");
        Ok(())
    }

    #[test]
    fn efi_loaders_are_numbered_case_insensitively() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path();
        touch(root, "EFI/BOOT/bootx64.efi", b"MZ")?;
        touch(root, "EFI/BOOT/BOOTIA32.EFI", b"MZ")?;
        touch(root, "EFI/other/grubx64.efi", b"MZ")?;
        touch(root, "EFI/arm/GRUBAA64.EFI", b"MZ")?;
        let targets = boot_targets(root, &find_loaders(root), None).map_err(anyhow::Error::msg)?;
        let shown: Vec<(&str, &str)> = targets
            .iter()
            .map(|t| (t.loader.as_str(), t.label.as_str()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("\\EFI\\BOOT\\BOOTIA32.EFI", "ironic1"),
                ("\\EFI\\BOOT\\bootx64.efi", "ironic2"),
                ("\\EFI\\arm\\GRUBAA64.EFI", "ironic3"),
            ]
        );
        Ok(())
    }

    #[test]
    fn empty_esp_has_no_loaders() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        touch(tmp.path(), "EFI/debian/grubx64.efi", b"MZ")?;
        assert!(find_loaders(tmp.path()).is_empty());
        assert!(find_loaders(&tmp.path().join("missing")).is_empty());
        Ok(())
    }

    #[test]
    fn csv_encodings_and_bad_csvs() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let p = tmp.path().join("b.csv");
        std::fs::write(&p, "grubaa64.efi,Marker OS,,x\r\n")?;
        assert_eq!(
            read_csv(&p),
            Ok(("grubaa64.efi".into(), "Marker OS".into()))
        );
        let le: Vec<u8> = "a.efi,L\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        std::fs::write(&p, le)?;
        assert_eq!(read_csv(&p), Ok(("a.efi".into(), "L".into())));
        let mut be = vec![0xFE, 0xFF];
        be.extend("b.efi,M".encode_utf16().flat_map(u16::to_be_bytes));
        std::fs::write(&p, be)?;
        assert_eq!(read_csv(&p), Ok(("b.efi".into(), "M".into())));
        for bad in ["", "onlyfile.efi", ",label", "../x.efi,L", "EFI/x.efi,L"] {
            std::fs::write(&p, bad)?;
            assert!(read_csv(&p).is_err(), "{bad:?} accepted");
        }
        std::fs::write(&p, vec![b'a'; (MAX_CSV + 1) as usize])?;
        assert!(
            read_csv(&p)
                .err()
                .unwrap_or_default()
                .contains("not a boot CSV")
        );
        Ok(())
    }

    #[test]
    fn esp_by_type_or_by_uuid() -> anyhow::Result<()> {
        use crate::disk::table::{PartitionKind, PartitionSpec, TableKind, write_table};
        let tmp = tempfile::tempdir()?;
        let disk = tmp.path().join("disk");
        std::fs::File::create(&disk)?.set_len(64 << 20)?;
        let spec = |kind, name: &str| PartitionSpec {
            size_mib: 8,
            kind,
            name: name.into(),
            bootable: false,
        };
        let t = write_table(
            &disk,
            TableKind::Gpt,
            &[
                spec(PartitionKind::Linux, "a"),
                spec(PartitionKind::Esp, "esp"),
            ],
        )?;
        let esp = find_esp(&disk, None)?.ok_or_else(|| anyhow::anyhow!("no ESP"))?;
        assert_eq!(esp.number, 2);
        assert_eq!(esp.path, blockdev::partition_path(&disk, 2));
        // No ESP type: found by PARTUUID (upper case works too).
        let t2 = write_table(
            &disk,
            TableKind::Msdos,
            &[
                spec(PartitionKind::Linux, "a"),
                spec(PartitionKind::Linux, "b"),
            ],
        )?;
        assert_eq!(find_esp(&disk, None)?, None);
        let id = t2.partitions[1].partuuid.to_ascii_uppercase();
        assert_eq!(find_esp(&disk, Some(&id))?.map(|e| e.number), Some(2));
        assert_eq!(find_esp(&disk, Some("nope"))?, None);
        drop(t);
        Ok(())
    }
}
