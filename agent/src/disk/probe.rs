//! A small superblock reader: which filesystem or container signature starts a device (or a byte
//! range of one), with its UUID and label formatted as `blkid -p` prints them.
//!
//! Knows ext2/3/4, xfs, btrfs, vfat (FAT12/16/32), swap, iso9660, Linux MD RAID members (1.x at
//! 0, 4 KiB or the end; 0.90 at the end), LVM2 physical volumes and LUKS. Every detection also
//! reports the byte ranges holding its magic, which is what the wipe zeroes.

use std::fs::File;
use std::path::Path;

use super::DiskError;
use super::blockdev::{read_at, size_bytes};

/// One signature found by the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// blkid's `TYPE`: `ext4`, `xfs`, `vfat`, `swap`, `iso9660`, `btrfs`, `linux_raid_member`,
    /// `LVM2_member`, `crypto_LUKS`, …
    pub fstype: &'static str,
    /// blkid's `UUID` (filesystem UUID, FAT volume id `XXXX-XXXX`, RAID array UUID, PV UUID, …).
    pub uuid: Option<String>,
    /// blkid's `LABEL`.
    pub label: Option<String>,
    /// `(offset, length)` of the magic bytes, relative to the probed start.
    pub magic: Vec<(u64, u64)>,
}

/// A window `[base, base + len)` of an open file.
struct Region<'a> {
    file: &'a File,
    base: u64,
    len: u64,
}

impl Region<'_> {
    /// `n` bytes at `off` within the window; `None` when they run past its end.
    fn read(&self, off: u64, n: usize) -> std::io::Result<Option<Vec<u8>>> {
        if off.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Ok(None);
        }
        match self.base.checked_add(off) {
            Some(at) => read_at(self.file, at, n),
            None => Ok(None),
        }
    }
}

type ProbeFn = fn(&Region<'_>) -> std::io::Result<Option<Probed>>;

/// In blkid's spirit: containers (RAID, crypto, LVM) before filesystems, so a RAID1 member
/// whose data holds an ext4 reports as a RAID member.
const PROBES: &[ProbeFn] = &[
    probe_md,
    probe_luks,
    probe_lvm2,
    probe_xfs,
    probe_ext,
    probe_btrfs,
    probe_iso9660,
    probe_vfat,
    probe_swap,
];

/// The first signature found at the start of `path`, or `None`.
pub fn probe(path: &Path) -> Result<Option<Probed>, DiskError> {
    let len = size_bytes(path)?;
    probe_range(path, 0, len)
}

/// The first signature found in `[offset, offset + len)` of `path` (a partition seen through its
/// disk), or `None`.
pub fn probe_range(path: &Path, offset: u64, len: u64) -> Result<Option<Probed>, DiskError> {
    Ok(probe_all_range(path, offset, len)?.into_iter().next())
}

/// Every signature found in `[offset, offset + len)` of `path`, in priority order.
pub fn probe_all_range(path: &Path, offset: u64, len: u64) -> Result<Vec<Probed>, DiskError> {
    let file = File::open(path).map_err(DiskError::io("opening", path))?;
    let region = Region {
        file: &file,
        base: offset,
        len,
    };
    let mut found = Vec::new();
    for p in PROBES {
        if let Some(hit) = p(&region).map_err(DiskError::io("probing", path))? {
            found.push(hit);
        }
    }
    Ok(found)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// 16 raw bytes as a lowercase hyphenated UUID; `None` when all zero.
fn uuid_string(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = b.get(..16)?.try_into().ok()?;
    if b.iter().all(|x| *x == 0) {
        return None;
    }
    Some(uuid::Uuid::from_bytes(b).hyphenated().to_string())
}

/// A fixed-size label: up to the first NUL, trailing whitespace removed; `None` when empty.
fn label_string(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]);
    let s = s.trim_end();
    (!s.is_empty()).then(|| s.to_string())
}

fn probe_ext(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    let Some(sb) = r.read(1024, 1024)? else {
        return Ok(None);
    };
    if le16(&sb, 0x38) != 0xEF53 {
        return Ok(None);
    }
    let compat = le32(&sb, 0x5C);
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    const HAS_JOURNAL: u32 = 0x4;
    const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    // Features ext2 (and ext3, plus RECOVER) know; anything else makes it ext4.
    const EXT2_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;
    const EXT2_INCOMPAT: u32 = 0x2 | 0x10;
    const EXT3_INCOMPAT: u32 = EXT2_INCOMPAT | 0x4;
    let fstype = if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        "jbd"
    } else if ro_compat & !EXT2_RO_COMPAT != 0 {
        "ext4"
    } else if compat & HAS_JOURNAL != 0 {
        if incompat & !EXT3_INCOMPAT != 0 {
            "ext4"
        } else {
            "ext3"
        }
    } else if incompat & !EXT2_INCOMPAT != 0 {
        "ext4"
    } else {
        "ext2"
    };
    Ok(Some(Probed {
        fstype,
        uuid: uuid_string(&sb[0x68..0x78]),
        label: label_string(&sb[0x78..0x88]),
        magic: vec![(1024 + 0x38, 2)],
    }))
}

fn probe_xfs(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    let Some(sb) = r.read(0, 512)? else {
        return Ok(None);
    };
    if &sb[0..4] != b"XFSB" {
        return Ok(None);
    }
    let blocksize = be32(&sb, 4);
    if !(512..=65536).contains(&blocksize) || !blocksize.is_power_of_two() {
        return Ok(None);
    }
    Ok(Some(Probed {
        fstype: "xfs",
        uuid: uuid_string(&sb[32..48]),
        label: label_string(&sb[108..120]),
        magic: vec![(0, 4)],
    }))
}

fn probe_btrfs(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    const PRIMARY: u64 = 0x10000;
    let Some(sb) = r.read(PRIMARY, 0x12b + 256)? else {
        return Ok(None);
    };
    if &sb[0x40..0x48] != b"_BHRfS_M" {
        return Ok(None);
    }
    let mut magic = vec![(PRIMARY + 0x40, 8)];
    // Mirror superblocks at 64 MiB and 256 GiB carry the same magic.
    for mirror in [64u64 << 20, 256u64 << 30] {
        if let Some(m) = r.read(mirror + 0x40, 8)?
            && m == b"_BHRfS_M"
        {
            magic.push((mirror + 0x40, 8));
        }
    }
    Ok(Some(Probed {
        fstype: "btrfs",
        uuid: uuid_string(&sb[0x20..0x30]),
        label: label_string(&sb[0x12b..0x12b + 256]),
        magic,
    }))
}

/// The volume-label entry of a FAT root directory (`entries` = raw 32-byte directory entries).
fn fat_dir_label(entries: &[u8]) -> Option<String> {
    for e in entries.chunks_exact(32) {
        match e[0] {
            0x00 => return None,
            0xE5 => continue,
            _ => {}
        }
        let attr = e[11];
        if attr == 0x0F {
            continue; // long-name entry
        }
        if attr & 0x08 != 0 && attr & 0x10 == 0 {
            let mut name = e[..11].to_vec();
            if name[0] == 0x05 {
                name[0] = 0xE5;
            }
            return label_string(&name);
        }
    }
    None
}

fn probe_vfat(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    let Some(bs) = r.read(0, 512)? else {
        return Ok(None);
    };
    if bs[510] != 0x55 || bs[511] != 0xAA {
        return Ok(None);
    }
    let fat32 = bs[0x52..0x57] == *b"FAT32";
    let fat1x = bs[0x36..0x39] == *b"FAT" || bs[0x36..0x3B] == *b"MSDOS";
    if !fat32 && !fat1x {
        return Ok(None);
    }
    let bps = u64::from(le16(&bs, 11));
    let spc = u64::from(bs[13]);
    let reserved = u64::from(le16(&bs, 14));
    let nfats = u64::from(bs[16]);
    let root_entries = u64::from(le16(&bs, 17));
    let media = bs[21];
    let fat16_size = u64::from(le16(&bs, 22));
    let fat32_size = u64::from(le32(&bs, 36));
    if !matches!(bps, 512 | 1024 | 2048 | 4096)
        || spc == 0
        || !spc.is_power_of_two()
        || reserved == 0
        || !(1..=4).contains(&nfats)
        || !(media == 0xF0 || media >= 0xF8)
    {
        return Ok(None);
    }
    let (id_at, label_at, sig_at, root_dir) = if fat32 && fat16_size == 0 {
        let root_cluster = u64::from(le32(&bs, 44)).max(2);
        let data = reserved + nfats * fat32_size;
        (
            0x43,
            0x47,
            0x42,
            ((data + (root_cluster - 2) * spc) * bps, spc * bps),
        )
    } else {
        let root = (reserved + nfats * fat16_size) * bps;
        (0x27, 0x2B, 0x26, (root, root_entries * 32))
    };
    let extended = bs[sig_at] == 0x29 || bs[sig_at] == 0x28;
    let uuid = extended.then(|| {
        let id = le32(&bs, id_at);
        format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF)
    });
    let dir_len = root_dir.1.min(1 << 20) as usize;
    let dir_label = match r.read(root_dir.0, dir_len)? {
        Some(entries) => fat_dir_label(&entries),
        None => None,
    };
    let boot_label = if extended {
        label_string(&bs[label_at..label_at + 11]).filter(|l| l != "NO NAME")
    } else {
        None
    };
    let label = dir_label.filter(|l| l != "NO NAME").or(boot_label);
    let type_at = if fat32 { 0x52 } else { 0x36 };
    Ok(Some(Probed {
        fstype: "vfat",
        uuid,
        label,
        magic: vec![(type_at, 8), (510, 2)],
    }))
}

fn probe_swap(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    for page in [4096u64, 8192, 16384, 32768, 65536] {
        let Some(sig) = r.read(page - 10, 10)? else {
            return Ok(None);
        };
        let v1 = sig == b"SWAPSPACE2";
        if !v1 && sig != b"SWAP-SPACE" {
            continue;
        }
        let (uuid, label) = match (v1, r.read(1024, 44)?) {
            (true, Some(h)) if le32(&h, 0) == 1 => {
                (uuid_string(&h[12..28]), label_string(&h[28..44]))
            }
            _ => (None, None),
        };
        return Ok(Some(Probed {
            fstype: "swap",
            uuid,
            label,
            magic: vec![(page - 10, 10)],
        }));
    }
    Ok(None)
}

/// An ISO 9660 date as blkid turns it into a UUID; `None` when unset.
fn iso_date_uuid(d: &[u8]) -> Option<String> {
    let digits = &d[..16];
    if digits.iter().all(|c| *c == b'0') && d[16] == 0 {
        return None;
    }
    if digits.iter().all(|c| *c == 0) {
        return None;
    }
    let part = |r: std::ops::Range<usize>| -> String {
        digits[r].iter().map(|c| char::from(*c)).collect()
    };
    Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14),
        part(14..16)
    ))
}

fn probe_iso9660(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    const PVD: u64 = 0x8000;
    const SECTOR: u64 = 0x800;
    let Some(pvd) = r.read(PVD, 2048)? else {
        return Ok(None);
    };
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Ok(None);
    }
    let pvd_label = &pvd[40..72];
    let uuid = iso_date_uuid(&pvd[830..847]).or_else(|| iso_date_uuid(&pvd[813..830]));
    let mut label = label_string(pvd_label);
    for i in 1..16 {
        let Some(vd) = r.read(PVD + i * SECTOR, 2048)? else {
            break;
        };
        if vd[0] == 0xFF {
            break;
        }
        let joliet = vd[0] == 2 && matches!(&vd[88..91], b"%/@" | b"%/C" | b"%/E");
        if !joliet {
            continue;
        }
        let utf16 = &vd[40..72];
        let same = pvd_label
            .iter()
            .zip(utf16.chunks_exact(2))
            .all(|(a, u)| u[0] == 0 && u[1] == *a);
        if !same {
            let units: Vec<u16> = utf16.chunks_exact(2).map(|u| be16(u, 0)).collect();
            let s = String::from_utf16_lossy(&units);
            let s = s.trim_end_matches(['\0', ' ']).to_string();
            label = (!s.is_empty()).then_some(s);
        }
        break;
    }
    Ok(Some(Probed {
        fstype: "iso9660",
        uuid,
        label,
        magic: vec![(PVD + 1, 5)],
    }))
}

const MD_MAGIC: u32 = 0xa92b_4efc;

fn probe_md(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    // Version 1.x: 1.1 at 0, 1.2 at 4 KiB, 1.0 at the end (8 KiB from it, 4 KiB aligned).
    let mut spots = vec![0u64, 4096];
    if r.len >= 8192 * 2 {
        spots.push((((r.len >> 9) - 16) & !7) << 9);
    }
    for at in spots {
        let Some(sb) = r.read(at, 256)? else { continue };
        // The superblock records its own position (in sectors), as blkid checks.
        if le32(&sb, 0) != MD_MAGIC || le32(&sb, 4) != 1 || le64(&sb, 144) != at >> 9 {
            continue;
        }
        return Ok(Some(Probed {
            fstype: "linux_raid_member",
            uuid: uuid_string(&sb[16..32]),
            label: label_string(&sb[32..64]),
            magic: vec![(at, 4)],
        }));
    }
    // Version 0.90: 64 KiB aligned, 64 KiB from the end.
    if r.len >= 0x20000 {
        let at = (r.len & !0xFFFF) - 0x10000;
        if let Some(sb) = r.read(at, 128)?
            && (le32(&sb, 0) == MD_MAGIC || be32(&sb, 0) == MD_MAGIC)
        {
            let mut id = Vec::with_capacity(16);
            id.extend_from_slice(&sb[20..24]);
            id.extend_from_slice(&sb[52..64]);
            return Ok(Some(Probed {
                fstype: "linux_raid_member",
                uuid: uuid_string(&id),
                label: None,
                magic: vec![(at, 4)],
            }));
        }
    }
    Ok(None)
}

fn probe_lvm2(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    for sector in 0..4u64 {
        let at = sector * 512;
        let Some(s) = r.read(at, 512)? else {
            return Ok(None);
        };
        if &s[0..8] != b"LABELONE" || &s[24..32] != b"LVM2 001" {
            continue;
        }
        let pv_at = le32(&s, 20) as usize;
        let uuid = s.get(pv_at..pv_at + 32).and_then(|id| {
            let id = std::str::from_utf8(id).ok().filter(|s| s.is_ascii())?;
            let parts = [
                &id[0..6],
                &id[6..10],
                &id[10..14],
                &id[14..18],
                &id[18..22],
                &id[22..26],
                &id[26..32],
            ];
            Some(parts.join("-"))
        });
        return Ok(Some(Probed {
            fstype: "LVM2_member",
            uuid,
            label: None,
            magic: vec![(at, 8), (at + 24, 8)],
        }));
    }
    Ok(None)
}

fn probe_luks(r: &Region<'_>) -> std::io::Result<Option<Probed>> {
    let Some(h) = r.read(0, 512)? else {
        return Ok(None);
    };
    if &h[0..6] != b"LUKS\xba\xbe" {
        return Ok(None);
    }
    let version = be16(&h, 6);
    let uuid = label_string(&h[168..208]);
    let mut magic = vec![(0, 6)];
    let label = if version == 2 {
        let hdr_size = be64(&h, 8);
        if let Some(s) = r.read(hdr_size, 6)?
            && s == b"SKUL\xba\xbe"
        {
            magic.push((hdr_size, 6));
        }
        label_string(&h[24..72])
    } else {
        None
    };
    Ok(Some(Probed {
        fstype: "crypto_LUKS",
        uuid,
        label,
        magic,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;
    use crate::tools::find_tool;

    fn image(dir: &Path, name: &str, size: u64) -> anyhow::Result<PathBuf> {
        let p = dir.join(name);
        File::create(&p)?.set_len(size)?;
        Ok(p)
    }

    fn mkfs(tool: &str, args: &[&str], target: &Path) -> anyhow::Result<()> {
        let out = Command::new(tool).args(args).arg(target).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Decodes blkid's udev-style `\xHH` escapes.
    fn unescape(s: &str) -> String {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && b.get(i + 1) == Some(&b'x')
                && i + 4 <= b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16)
            {
                out.push(v);
                i += 4;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `blkid -p -o udev` of `path` as (TYPE, UUID, LABEL), when blkid is installed.
    fn blkid(path: &Path) -> Option<HashMap<String, String>> {
        let exe = find_tool("blkid")?;
        let out = Command::new(exe)
            .args(["-p", "-o", "udev"])
            .arg(path)
            .output()
            .ok()?;
        let raw: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut m = HashMap::new();
        for (key, name) in [
            ("ID_FS_TYPE", "TYPE"),
            ("ID_FS_UUID_ENC", "UUID"),
            ("ID_FS_LABEL_ENC", "LABEL"),
        ] {
            if let Some(v) = raw.get(key) {
                m.insert(name.to_string(), unescape(v));
            }
        }
        Some(m)
    }

    fn check_against_blkid(path: &Path, got: &Probed) {
        let Some(b) = blkid(path) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "blkid (util-linux) is missing under CI"
            );
            eprintln!("note: blkid not installed; comparison skipped");
            return;
        };
        assert_eq!(b.get("TYPE").map(String::as_str), Some(got.fstype), "{b:?}");
        assert_eq!(b.get("UUID"), got.uuid.as_ref(), "{b:?}");
        assert_eq!(b.get("LABEL"), got.label.as_ref(), "{b:?}");
    }

    #[test]
    fn empty_file_has_no_signature() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = image(dir.path(), "zero", 4 << 20)?;
        assert_eq!(probe(&p)?, None);
        let tiny = image(dir.path(), "tiny", 100)?;
        assert_eq!(probe(&tiny)?, None);
        Ok(())
    }

    #[test]
    fn ext4_ext3_ext2() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let uuid = "5c0b6e2a-1f7b-4d8e-9a3c-0e1d2f3a4b5c";
        for (tool, want) in [
            ("mkfs.ext4", "ext4"),
            ("mkfs.ext3", "ext3"),
            ("mkfs.ext2", "ext2"),
        ] {
            let p = image(dir.path(), want, 16 << 20)?;
            mkfs(tool, &["-q", "-F", "-U", uuid, "-L", "lbl-root"], &p)?;
            let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("{want} not found"))?;
            assert_eq!(got.fstype, want);
            assert_eq!(got.uuid.as_deref(), Some(uuid));
            assert_eq!(got.label.as_deref(), Some("lbl-root"));
            check_against_blkid(&p, &got);
        }
        Ok(())
    }

    #[test]
    fn vfat_fat32_fat16_fat12() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for (bits, size) in [("32", 64u64 << 20), ("16", 16 << 20), ("12", 2 << 20)] {
            let p = image(dir.path(), &format!("fat{bits}"), size)?;
            mkfs(
                "mkfs.vfat",
                &["-F", bits, "-i", "1234ABCD", "-n", "efi-part"],
                &p,
            )?;
            let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("FAT{bits} not found"))?;
            assert_eq!(got.fstype, "vfat");
            assert_eq!(got.uuid.as_deref(), Some("1234-ABCD"));
            assert_eq!(got.label.as_deref(), Some("efi-part"));
            check_against_blkid(&p, &got);
        }
        // Without a label.
        let p = image(dir.path(), "nolabel", 40 << 20)?;
        mkfs("mkfs.vfat", &["-F", "32", "-i", "0000BEEF"], &p)?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("FAT not found"))?;
        assert_eq!(got.uuid.as_deref(), Some("0000-BEEF"));
        assert_eq!(got.label, None);
        check_against_blkid(&p, &got);
        Ok(())
    }

    #[test]
    fn swap_v1() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = image(dir.path(), "swap", 8 << 20)?;
        let uuid = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9";
        mkfs("mkswap", &["-U", uuid, "-L", "swap1"], &p)?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("swap not found"))?;
        assert_eq!(got.fstype, "swap");
        assert_eq!(got.uuid.as_deref(), Some(uuid));
        assert_eq!(got.label.as_deref(), Some("swap1"));
        check_against_blkid(&p, &got);
        Ok(())
    }

    #[test]
    fn xfs_when_installed() -> anyhow::Result<()> {
        if !crate::disk::testing::tool_available("mkfs.xfs", "xfsprogs")? {
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let p = image(dir.path(), "xfs", 320 << 20)?;
        let uuid = "11111111-2222-4333-8444-555555555555";
        mkfs(
            "mkfs.xfs",
            &["-q", "-f", "-m", &format!("uuid={uuid}"), "-L", "data"],
            &p,
        )?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("xfs not found"))?;
        assert_eq!(got.fstype, "xfs");
        assert_eq!(got.uuid.as_deref(), Some(uuid));
        check_against_blkid(&p, &got);
        Ok(())
    }

    #[test]
    fn btrfs_when_installed() -> anyhow::Result<()> {
        if !crate::disk::testing::tool_available("mkfs.btrfs", "btrfs-progs")? {
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let p = image(dir.path(), "btrfs", 128 << 20)?;
        let uuid = "21111111-2222-4333-8444-555555555555";
        mkfs("mkfs.btrfs", &["-q", "-f", "-U", uuid, "-L", "bt"], &p)?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("btrfs not found"))?;
        assert_eq!(got.fstype, "btrfs");
        assert_eq!(got.uuid.as_deref(), Some(uuid));
        assert_eq!(got.label.as_deref(), Some("bt"));
        check_against_blkid(&p, &got);
        Ok(())
    }

    #[test]
    fn iso9660_from_a_tool_when_installed() -> anyhow::Result<()> {
        if !crate::disk::testing::tool_available("genisoimage", "genisoimage")? {
            return Ok(());
        }
        let tool = "genisoimage";
        let dir = tempfile::tempdir()?;
        let content = dir.path().join("content/openstack/latest");
        std::fs::create_dir_all(&content)?;
        std::fs::write(content.join("meta_data.json"), b"{}")?;
        let p = dir.path().join("cd.iso");
        let out = Command::new(tool)
            .args(["-quiet", "-J", "-r", "-V", "config-2", "-o"])
            .arg(&p)
            .arg(dir.path().join("content"))
            .output()?;
        anyhow::ensure!(out.status.success(), "{tool}: {:?}", out);
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("iso not found"))?;
        assert_eq!(got.fstype, "iso9660");
        assert_eq!(got.label.as_deref(), Some("config-2"));
        check_against_blkid(&p, &got);
        Ok(())
    }

    /// Writes an ISO 9660 primary volume descriptor (and optionally a Joliet one).
    fn fake_iso(p: &Path, label: &str, joliet: Option<&str>) -> anyhow::Result<()> {
        let f = File::create(p)?;
        f.set_len(1 << 20)?;
        let mut pvd = vec![0u8; 2048];
        pvd[0] = 1;
        pvd[1..6].copy_from_slice(b"CD001");
        pvd[6] = 1;
        let mut vol = [b' '; 32];
        vol[..label.len()].copy_from_slice(label.as_bytes());
        pvd[40..72].copy_from_slice(&vol);
        pvd[813..829].copy_from_slice(b"2024010203040506");
        pvd[830..846].copy_from_slice(b"0000000000000000");
        f.write_all_at(&pvd, 0x8000)?;
        let mut next = 0x8800;
        if let Some(j) = joliet {
            let mut svd = vec![0u8; 2048];
            svd[0] = 2;
            svd[1..6].copy_from_slice(b"CD001");
            svd[88..91].copy_from_slice(b"%/E");
            let units: Vec<u16> = j
                .encode_utf16()
                .chain(std::iter::repeat(0x20))
                .take(16)
                .collect();
            for (i, u) in units.iter().enumerate() {
                svd[40 + 2 * i..42 + 2 * i].copy_from_slice(&u.to_be_bytes());
            }
            f.write_all_at(&svd, next)?;
            next += 0x800;
        }
        let mut term = vec![0u8; 2048];
        term[0] = 0xFF;
        term[1..6].copy_from_slice(b"CD001");
        f.write_all_at(&term, next)?;
        Ok(())
    }

    #[test]
    fn iso9660_label_joliet_and_date_uuid() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.iso");
        fake_iso(&p, "config-2", Some("config-2"))?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("iso not found"))?;
        assert_eq!(got.fstype, "iso9660");
        assert_eq!(got.label.as_deref(), Some("config-2"));
        // Modification date unset ("0…0", offset 0): the creation date is used.
        assert_eq!(got.uuid.as_deref(), Some("2024-01-02-03-04-05-06"));
        check_against_blkid(&p, &got);

        let p = dir.path().join("b.iso");
        fake_iso(&p, "CONFIG_2", Some("Config-2 ü"))?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("iso not found"))?;
        assert_eq!(got.label.as_deref(), Some("Config-2 ü"));
        check_against_blkid(&p, &got);
        Ok(())
    }

    #[test]
    fn md_superblocks() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let set_uuid: [u8; 16] =
            *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x10\x32\x54\x76\x98\xba\xdc\xfe";
        let size = 8u64 << 20;
        let end_at = ((size >> 9) - 16) & !7;
        for (name, at) in [("1.1", 0u64), ("1.2", 4096), ("1.0", end_at << 9)] {
            let p = image(dir.path(), name, size)?;
            let f = std::fs::OpenOptions::new().write(true).open(&p)?;
            let mut sb = vec![0u8; 256];
            sb[0..4].copy_from_slice(&MD_MAGIC.to_le_bytes());
            sb[4..8].copy_from_slice(&1u32.to_le_bytes());
            sb[16..32].copy_from_slice(&set_uuid);
            sb[32..38].copy_from_slice(b"host:0");
            sb[144..152].copy_from_slice(&(at >> 9).to_le_bytes());
            f.write_all_at(&sb, at)?;
            let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("md {name} not found"))?;
            assert_eq!(got.fstype, "linux_raid_member", "{name}");
            assert_eq!(
                got.uuid.as_deref(),
                Some("01234567-89ab-cdef-1032-547698badcfe")
            );
            assert_eq!(got.label.as_deref(), Some("host:0"));
            assert_eq!(got.magic, vec![(at, 4)]);
        }
        // 0.90 at the end.
        let p = image(dir.path(), "0.90", size)?;
        let f = std::fs::OpenOptions::new().write(true).open(&p)?;
        let at = (size & !0xFFFF) - 0x10000;
        let mut sb = vec![0u8; 128];
        sb[0..4].copy_from_slice(&MD_MAGIC.to_le_bytes());
        sb[20..24].copy_from_slice(&set_uuid[..4]);
        sb[52..64].copy_from_slice(&set_uuid[4..]);
        f.write_all_at(&sb, at)?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("md 0.90 not found"))?;
        assert_eq!(got.fstype, "linux_raid_member");
        assert_eq!(
            got.uuid.as_deref(),
            Some("01234567-89ab-cdef-1032-547698badcfe")
        );
        Ok(())
    }

    #[test]
    fn lvm_and_luks_headers() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = image(dir.path(), "pv", 4 << 20)?;
        let f = std::fs::OpenOptions::new().write(true).open(&p)?;
        let mut s = vec![0u8; 512];
        s[0..8].copy_from_slice(b"LABELONE");
        s[8..16].copy_from_slice(&1u64.to_le_bytes());
        s[20..24].copy_from_slice(&32u32.to_le_bytes());
        s[24..32].copy_from_slice(b"LVM2 001");
        s[32..64].copy_from_slice(b"AbCdEf0123456789ghijklmnopqrstuv");
        f.write_all_at(&s, 512)?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("pv not found"))?;
        assert_eq!(got.fstype, "LVM2_member");
        assert_eq!(
            got.uuid.as_deref(),
            Some("AbCdEf-0123-4567-89gh-ijkl-mnop-qrstuv")
        );

        let p = image(dir.path(), "luks", 4 << 20)?;
        let f = std::fs::OpenOptions::new().write(true).open(&p)?;
        let mut h = vec![0u8; 512];
        h[0..6].copy_from_slice(b"LUKS\xba\xbe");
        h[6..8].copy_from_slice(&2u16.to_be_bytes());
        h[8..16].copy_from_slice(&16384u64.to_be_bytes());
        h[24..31].copy_from_slice(b"secrets");
        h[168..204].copy_from_slice(b"6f1c0a34-3a8e-4b7c-9d2e-1f0a9b8c7d6e");
        f.write_all_at(&h, 0)?;
        f.write_all_at(b"SKUL\xba\xbe", 16384)?;
        let got = probe(&p)?.ok_or_else(|| anyhow::anyhow!("luks not found"))?;
        assert_eq!(got.fstype, "crypto_LUKS");
        assert_eq!(
            got.uuid.as_deref(),
            Some("6f1c0a34-3a8e-4b7c-9d2e-1f0a9b8c7d6e")
        );
        assert_eq!(got.label.as_deref(), Some("secrets"));
        assert_eq!(got.magic, vec![(0, 6), (16384, 6)]);
        Ok(())
    }

    #[test]
    fn probe_range_finds_a_filesystem_inside_a_larger_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let fs = image(dir.path(), "fs", 8 << 20)?;
        mkfs("mkfs.ext4", &["-q", "-F", "-L", "inner"], &fs)?;
        let disk = image(dir.path(), "disk", 16 << 20)?;
        let data = std::fs::read(&fs)?;
        File::options()
            .write(true)
            .open(&disk)?
            .write_all_at(&data, 4 << 20)?;
        assert_eq!(probe(&disk)?, None);
        let got = probe_range(&disk, 4 << 20, 8 << 20)?
            .ok_or_else(|| anyhow::anyhow!("ext4 not found in range"))?;
        assert_eq!(got.label.as_deref(), Some("inner"));
        Ok(())
    }
}
