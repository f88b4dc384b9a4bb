//! The DOS/MBR partition table: our own reader (four primary entries plus the logical
//! partitions of an extended one) and writer.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::DiskError;
use super::blockdev::{self, read_at};

/// Offset of the 32-bit disk signature in sector 0.
pub const DISK_SIGNATURE_OFFSET: u64 = 440;
/// Partition type of a GPT protective entry.
pub const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// Extended-partition container types.
pub const EXTENDED_TYPES: [u8; 3] = [0x05, 0x0F, 0x85];
/// Most logical partitions followed in an extended chain (loops and garbage stop there).
const MAX_LOGICAL: u32 = 128;

/// One partition-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbrEntry {
    /// Partition number as the kernel names it (1–4 primary, 5… logical).
    pub number: u32,
    /// Active (boot) flag.
    pub bootable: bool,
    /// Partition type byte (0x83 Linux, 0x82 swap, 0xEF ESP, 0x41 PReP, 0xEE protective, …).
    pub kind: u8,
    /// First sector (absolute).
    pub start_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
}

impl MbrEntry {
    /// True for an extended-partition container.
    pub fn is_extended(&self) -> bool {
        EXTENDED_TYPES.contains(&self.kind)
    }
}

/// A parsed MBR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    /// The disk signature at offset 440 (blkid's `PTUUID`, IPA's whole-disk "root uuid").
    pub disk_signature: u32,
    /// Non-empty entries: primaries (1–4) then logical partitions (5…).
    pub entries: Vec<MbrEntry>,
}

impl Mbr {
    /// True when this is a GPT protective (or hybrid) MBR.
    pub fn is_protective(&self) -> bool {
        self.entries.iter().any(|e| e.kind == TYPE_GPT_PROTECTIVE)
    }

    /// The non-empty primary entries (numbers 1–4).
    pub fn primaries(&self) -> impl Iterator<Item = &MbrEntry> {
        self.entries.iter().filter(|e| e.number <= 4)
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A raw entry: (active, type, start, size).
type RawEntry = (bool, u8, u32, u32);

/// Parses the four entries of a boot record; `None` when it is not a partition table (no
/// `55 AA`, or boot indicators other than 0x00/0x80, as in a FAT boot sector).
fn parse_entries(sector: &[u8]) -> Option<[Option<RawEntry>; 4]> {
    if sector.len() < 512 || sector[510] != 0x55 || sector[511] != 0xAA {
        return None;
    }
    let mut out = [None; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let e = &sector[446 + 16 * i..446 + 16 * (i + 1)];
        if e[0] != 0 && e[0] != 0x80 {
            return None;
        }
        let kind = e[4];
        let start = le32(e, 8);
        let size = le32(e, 12);
        if kind != 0 && size != 0 {
            *slot = Some((e[0] == 0x80, kind, start, size));
        }
    }
    Some(out)
}

/// Parses sector 0 (at least 512 bytes). Logical partitions are not followed here; see
/// [`read_mbr`].
pub fn parse(sector0: &[u8]) -> Option<Mbr> {
    let raw = parse_entries(sector0)?;
    let entries = raw
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            e.map(|(bootable, kind, start, size)| MbrEntry {
                number: i as u32 + 1,
                bootable,
                kind,
                start_lba: u64::from(start),
                sectors: u64::from(size),
            })
        })
        .collect::<Vec<_>>();
    Some(Mbr {
        disk_signature: le32(sector0, DISK_SIGNATURE_OFFSET as usize),
        entries,
    })
}

/// Follows the extended-partition chain starting at `ext` (sector units of `sector`).
fn read_logical(file: &File, ext: &MbrEntry, sector: u64) -> std::io::Result<Vec<MbrEntry>> {
    let mut out = Vec::new();
    let mut ebr = ext.start_lba;
    let ext_end = ext.start_lba + ext.sectors;
    for n in 0..MAX_LOGICAL {
        let Some(buf) = read_at(file, ebr * sector, 512)? else {
            break;
        };
        let Some(entries) = parse_entries(&buf) else {
            break;
        };
        if let Some((bootable, kind, start, size)) = entries[0] {
            let start_lba = ebr + u64::from(start);
            if start_lba + u64::from(size) <= ext_end {
                out.push(MbrEntry {
                    number: 5 + n,
                    bootable,
                    kind,
                    start_lba,
                    sectors: u64::from(size),
                });
            }
        }
        match entries[1] {
            Some((_, _, next, _)) if next != 0 => {
                let next = ext.start_lba + u64::from(next);
                if next <= ebr || next >= ext_end {
                    break; // backwards or outside: garbage or a loop
                }
                ebr = next;
            }
            _ => break,
        }
    }
    Ok(out)
}

/// Reads the MBR of `path` (with logical partitions, in sectors of `sector` bytes); `None` when
/// sector 0 holds no partition table.
pub fn read_mbr(path: &Path, sector: u64) -> Result<Option<Mbr>, DiskError> {
    let file = File::open(path).map_err(DiskError::io("opening", path))?;
    let Some(buf) = read_at(&file, 0, 512).map_err(DiskError::io("reading", path))? else {
        return Ok(None);
    };
    let Some(mut mbr) = parse(&buf) else {
        return Ok(None);
    };
    if let Some(ext) = mbr.entries.iter().find(|e| e.is_extended()).copied() {
        let logical = read_logical(&file, &ext, sector).map_err(DiskError::io("reading", path))?;
        mbr.entries.extend(logical);
    }
    Ok(Some(mbr))
}

/// The 32-bit disk signature at offset 440 (0 for a file shorter than 444 bytes).
pub fn disk_signature(path: &Path) -> Result<u32, DiskError> {
    let file = File::open(path).map_err(DiskError::io("opening", path))?;
    let sig = read_at(&file, DISK_SIGNATURE_OFFSET, 4).map_err(DiskError::io("reading", path))?;
    Ok(sig.map_or(0, |b| le32(&b, 0)))
}

/// CHS triple for `lba` with the usual 255 heads × 63 sectors geometry (0xFE 0xFF 0xFF beyond
/// cylinder 1023).
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    if lba >= 1024 * HEADS * SECTORS {
        return [0xFE, 0xFF, 0xFF];
    }
    let c = lba / (HEADS * SECTORS);
    let h = (lba / SECTORS) % HEADS;
    let s = lba % SECTORS + 1;
    [
        h as u8,
        (s as u8 & 0x3F) | (((c >> 8) as u8 & 0x03) << 6),
        c as u8,
    ]
}

fn encode_entry(e: &MbrEntry) -> Result<[u8; 16], String> {
    let start =
        u32::try_from(e.start_lba).map_err(|_| format!("start {} beyond MBR", e.start_lba))?;
    let size = u32::try_from(e.sectors).map_err(|_| format!("size {} beyond MBR", e.sectors))?;
    let mut b = [0u8; 16];
    b[0] = if e.bootable { 0x80 } else { 0 };
    b[1..4].copy_from_slice(&chs(e.start_lba));
    b[4] = e.kind;
    b[5..8].copy_from_slice(&chs(e.start_lba + e.sectors.saturating_sub(1)));
    b[8..12].copy_from_slice(&start.to_le_bytes());
    b[12..16].copy_from_slice(&size.to_le_bytes());
    Ok(b)
}

/// Writes `mbr`'s disk signature and primary entries (numbers 1–4; logical ones are not
/// written) into sector 0 of `path`, keeping the boot code bytes 0–439.
///
/// Only call after the disk guard accepted `path`.
pub fn write_mbr(path: &Path, mbr: &Mbr) -> Result<(), DiskError> {
    let mut slots = [[0u8; 16]; 4];
    for e in &mbr.entries {
        if !(1..=4).contains(&e.number) {
            return Err(DiskError::table(
                path,
                format!("cannot write MBR entry number {}", e.number),
            ));
        }
        slots[e.number as usize - 1] = encode_entry(e).map_err(|m| DiskError::table(path, m))?;
    }
    let mut tail = Vec::with_capacity(72);
    tail.extend_from_slice(&mbr.disk_signature.to_le_bytes());
    tail.extend_from_slice(&[0, 0]);
    for s in &slots {
        tail.extend_from_slice(s);
    }
    tail.extend_from_slice(&[0x55, 0xAA]);
    let file = blockdev::open_write(path)?;
    file.write_all_at(&tail, DISK_SIGNATURE_OFFSET)
        .map_err(DiskError::io("writing the MBR of", path))?;
    file.sync_all().map_err(DiskError::io("syncing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_encoding() {
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(1024 * 255 * 63), [0xFE, 0xFF, 0xFF]);
    }

    #[test]
    fn write_then_read_primaries_and_signature() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("d");
        File::create(&p)?.set_len(64 << 20)?;
        let mbr = Mbr {
            disk_signature: 0x1a2b_3c4d,
            entries: vec![
                MbrEntry {
                    number: 1,
                    bootable: false,
                    kind: 0x82,
                    start_lba: 2048,
                    sectors: 2048,
                },
                MbrEntry {
                    number: 2,
                    bootable: true,
                    kind: 0x83,
                    start_lba: 4096,
                    sectors: 8192,
                },
            ],
        };
        write_mbr(&p, &mbr)?;
        assert_eq!(read_mbr(&p, 512)?, Some(mbr));
        assert_eq!(disk_signature(&p)?, 0x1a2b_3c4d);
        Ok(())
    }

    #[test]
    fn logical_partitions_are_followed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("d");
        let f = File::create(&p)?;
        f.set_len(64 << 20)?;
        let ext = MbrEntry {
            number: 1,
            bootable: false,
            kind: 0x05,
            start_lba: 2048,
            sectors: 40960,
        };
        write_mbr(
            &p,
            &Mbr {
                disk_signature: 7,
                entries: vec![ext],
            },
        )?;
        // EBR 1 at 2048: logical at +2048 (4096 sectors), next EBR at ext+10240.
        let mut ebr = vec![0u8; 512];
        ebr[446 + 4] = 0x83;
        ebr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        ebr[446 + 12..446 + 16].copy_from_slice(&4096u32.to_le_bytes());
        ebr[462 + 4] = 0x05;
        ebr[462 + 8..462 + 12].copy_from_slice(&10240u32.to_le_bytes());
        ebr[462 + 12..462 + 16].copy_from_slice(&8192u32.to_le_bytes());
        ebr[510] = 0x55;
        ebr[511] = 0xAA;
        f.write_all_at(&ebr, 2048 * 512)?;
        let mut ebr2 = vec![0u8; 512];
        ebr2[446 + 4] = 0x82;
        ebr2[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        ebr2[446 + 12..446 + 16].copy_from_slice(&2048u32.to_le_bytes());
        ebr2[510] = 0x55;
        ebr2[511] = 0xAA;
        f.write_all_at(&ebr2, (2048 + 10240) * 512)?;
        let mbr = read_mbr(&p, 512)?.ok_or_else(|| anyhow::anyhow!("no MBR"))?;
        let logical: Vec<(u32, u8, u64, u64)> = mbr
            .entries
            .iter()
            .filter(|e| e.number > 4)
            .map(|e| (e.number, e.kind, e.start_lba, e.sectors))
            .collect();
        assert_eq!(
            logical,
            vec![(5, 0x83, 4096, 4096), (6, 0x82, 2048 + 10240 + 2048, 2048)]
        );
        Ok(())
    }

    #[test]
    fn fat_boot_sector_is_not_a_partition_table() {
        let mut s = vec![0u8; 512];
        s[446] = 0x12; // boot code bytes where entries would be
        s[510] = 0x55;
        s[511] = 0xAA;
        assert_eq!(parse(&s), None);
        s[446] = 0;
        assert_eq!(parse(&s).map(|m| m.entries.len()), Some(0));
    }
}
