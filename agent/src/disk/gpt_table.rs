//! GPT through the `gpt` crate: reading, writing a fresh table, and the two in-place edits the
//! deploy needs (moving the backup header to the end of a larger disk, adding one entry) which
//! keep every existing entry in its slot, so partition numbers never change.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use gpt::disk::LogicalBlockSize;
use gpt::header::Header;
use gpt::partition::Partition;
use uuid::Uuid;

use super::DiskError;
use super::blockdev::{self, read_at};
use super::mbr::{self, Mbr, MbrEntry, TYPE_GPT_PROTECTIVE};

/// Most partition entries we accept in a header (the crate allocates the whole array).
const MAX_ENTRIES: u32 = 4096;

/// A GPT read from a disk.
#[derive(Debug, Clone)]
pub struct Gpt {
    /// Logical block size the table was found with.
    pub block_size: u64,
    /// The primary header, if valid.
    pub primary: Option<Header>,
    /// The backup header, if valid at the last LBA.
    pub backup: Option<Header>,
    /// Used entries by partition number (slot index + 1).
    pub partitions: BTreeMap<u32, Partition>,
}

impl Gpt {
    /// The header in force (primary, else backup).
    pub fn header(&self) -> Option<&Header> {
        self.primary.as_ref().or(self.backup.as_ref())
    }
}

fn lb_size(block: u64) -> Option<LogicalBlockSize> {
    LogicalBlockSize::try_from(block).ok()
}

/// What sits at a GPT header location.
enum HeaderState {
    /// No `EFI PART` signature.
    Absent,
    /// Signature present, CRC wrong (the crate ignores such a header).
    Corrupt,
    /// CRC valid; `sane` when entries are 128 bytes and their count is reasonable.
    Valid { sane: bool },
}

/// Inspects the raw header at `lba` the way the crate will judge it.
fn raw_header(file: &File, lba: u64, block: u64) -> std::io::Result<HeaderState> {
    let Some(h) = read_at(file, lba * block, 92)? else {
        return Ok(HeaderState::Absent);
    };
    if &h[0..8] != b"EFI PART" {
        return Ok(HeaderState::Absent);
    }
    let stored_crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    // The crate checksums exactly the first 92 bytes.
    let mut crc_input = h.clone();
    crc_input[16..20].fill(0);
    let mut crc = flate2::Crc::new();
    crc.update(&crc_input);
    if crc.sum() != stored_crc {
        return Ok(HeaderState::Corrupt);
    }
    let num = u32::from_le_bytes([h[80], h[81], h[82], h[83]]);
    let entry = u32::from_le_bytes([h[84], h[85], h[86], h[87]]);
    Ok(HeaderState::Valid {
        sane: entry == 128 && (1..=MAX_ENTRIES).contains(&num),
    })
}

/// Reads the GPT of `path` with `block`-byte sectors; `None` when there is none.
fn read_with(path: &Path, file: &File, block: u64) -> Result<Option<Gpt>, DiskError> {
    let Some(lb) = lb_size(block) else {
        return Ok(None);
    };
    let size = blockdev::size_bytes(path)?;
    if size < block * 3 {
        return Ok(None);
    }
    let last = size / block - 1;
    let primary = raw_header(file, 1, block).map_err(DiskError::io("reading the GPT of", path))?;
    let backup =
        raw_header(file, last, block).map_err(DiskError::io("reading the GPT of", path))?;
    // The crate uses the primary when its CRC is valid, else the backup: that one must be sane
    // (the crate asserts 128-byte entries and allocates the whole array).
    let sane = match (primary, backup) {
        (HeaderState::Valid { sane }, _) | (_, HeaderState::Valid { sane }) => sane,
        (HeaderState::Absent, HeaderState::Absent) => return Ok(None),
        _ => false,
    };
    if !sane {
        return Err(DiskError::table(
            path,
            "GPT header is damaged or uses an unsupported entry size/count",
        ));
    }
    let dev = file
        .try_clone()
        .map_err(DiskError::io("reading the GPT of", path))?;
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb)
        .open_from_device(dev)
        .map_err(|e| DiskError::table(path, format!("reading GPT: {e}")))?;
    Ok(Some(Gpt {
        block_size: block,
        primary: disk.primary_header().ok().cloned(),
        backup: disk.backup_header().ok().cloned(),
        partitions: disk
            .partitions()
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, p)| (*n, p.clone()))
            .collect(),
    }))
}

/// Reads the GPT of `path`, trying the device's logical sector size first, then the other of
/// 512/4096 (an image made for the other sector size). `None` when there is no GPT.
pub fn read_gpt(path: &Path) -> Result<Option<Gpt>, DiskError> {
    let file = File::open(path).map_err(DiskError::io("opening", path))?;
    let native = blockdev::logical_sector_size(path)?;
    let other = if native == 512 { 4096 } else { 512 };
    for block in [native, other] {
        if let Some(g) = read_with(path, &file, block)? {
            return Ok(Some(g));
        }
    }
    Ok(None)
}

/// One entry of a fresh table.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// First LBA.
    pub first_lba: u64,
    /// Length in LBAs.
    pub lbas: u64,
    /// Type GUID.
    pub type_guid: Uuid,
    /// Partition name (GPT `PARTLABEL`).
    pub name: String,
    /// Attribute bits.
    pub flags: u64,
}

/// Writes a protective MBR covering the whole disk (sector count capped at 2^32 − 1).
fn write_protective_mbr(path: &Path, total_lbas: u64) -> Result<(), DiskError> {
    let pmbr = Mbr {
        disk_signature: 0,
        entries: vec![MbrEntry {
            number: 1,
            bootable: false,
            kind: TYPE_GPT_PROTECTIVE,
            start_lba: 1,
            sectors: (total_lbas - 1).min(u64::from(u32::MAX)),
        }],
    };
    mbr::write_mbr(path, &pmbr)
}

/// The first and last usable LBA of a fresh 128-entry GPT on a disk of `total_lbas`.
pub fn usable_range(total_lbas: u64, block: u64) -> (u64, u64) {
    let array = (128 * 128u64).div_ceil(block);
    (2 + array, total_lbas.saturating_sub(2 + array))
}

/// Writes a fresh GPT (new random disk GUID, 128 entries, partitions numbered 1… in the order
/// given) and a protective MBR to `path`. The caller checks the entries fit the usable range.
///
/// Only call after the disk guard accepted `path`.
pub fn write_fresh(path: &Path, block: u64, entries: &[NewEntry]) -> Result<Uuid, DiskError> {
    let lb = lb_size(block)
        .ok_or_else(|| DiskError::table(path, format!("unsupported sector size {block}")))?;
    let total = blockdev::size_bytes(path)? / block;
    let gerr = |e: gpt::GptError| DiskError::table(path, format!("writing GPT: {e}"));
    let file = blockdev::open_write(path)?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .create_from_device(file, None)
        .map_err(gerr)?;
    for (i, e) in entries.iter().enumerate() {
        disk.add_partition_at(
            &e.name,
            i as u32 + 1,
            e.first_lba,
            e.lbas,
            gpt::partition_types::Type::from(e.type_guid),
            e.flags,
        )
        .map_err(gerr)?;
    }
    let guid = *disk.guid();
    disk.write_inplace().map_err(gerr)?;
    drop(disk);
    write_protective_mbr(path, total)?;
    Ok(guid)
}

fn header_err(path: &Path) -> impl Fn(gpt::header::HeaderError) -> DiskError + '_ {
    move |e| DiskError::table(path, format!("writing GPT header: {e}"))
}

/// Moves the backup GPT (entries and header) to the end of `path` and extends the last usable
/// LBA, like `sgdisk -e`, after an image smaller than the disk was written. Entries keep their
/// slots. Returns false when the backup already sits at the last LBA.
///
/// Only call after the disk guard accepted `path`.
pub fn relocate_backup(path: &Path) -> Result<bool, DiskError> {
    let Some(g) = read_gpt(path)? else {
        return Err(DiskError::table(path, "no GPT found"));
    };
    let Some(primary) = g.primary.clone() else {
        return Err(DiskError::table(path, "the primary GPT header is damaged"));
    };
    let block = g.block_size;
    let lb = lb_size(block).ok_or_else(|| DiskError::table(path, "bad sector size"))?;
    let total = blockdev::size_bytes(path)? / block;
    let last = total - 1;
    if primary.backup_lba == last {
        return Ok(false);
    }
    if primary.backup_lba > last {
        return Err(DiskError::table(
            path,
            format!(
                "the GPT expects a disk of {} sectors but it has {total}",
                primary.backup_lba + 1
            ),
        ));
    }
    let array_len = u64::from(primary.num_parts) * u64::from(primary.part_size);
    let array_lbas = array_len.div_ceil(block);
    let last_usable = last
        .checked_sub(array_lbas + 1)
        .ok_or_else(|| DiskError::table(path, "the disk is too small for a backup GPT"))?;
    let max_used = g.partitions.values().map(|p| p.last_lba).max().unwrap_or(0);
    if last_usable < max_used {
        return Err(DiskError::table(
            path,
            "partitions overlap the new backup area",
        ));
    }
    let file = blockdev::open_write(path)?;
    let array_at = primary
        .part_start
        .checked_mul(block)
        .ok_or_else(|| DiskError::table(path, "GPT entry array beyond the disk end"))?;
    let array = read_at(&file, array_at, array_len as usize)
        .map_err(DiskError::io("reading the GPT entries of", path))?
        .ok_or_else(|| DiskError::table(path, "GPT entry array beyond the disk end"))?;
    file.write_all_at(&array, (last_usable + 1) * block)
        .map_err(DiskError::io("writing the backup GPT of", path))?;
    let mut dev = &file;
    let mut backup = primary.clone();
    backup.current_lba = last;
    backup.backup_lba = primary.current_lba;
    backup.part_start = last_usable + 1;
    backup.last_usable = last_usable;
    backup
        .write_backup(&mut dev, lb)
        .map_err(header_err(path))?;
    let mut new_primary = primary.clone();
    new_primary.backup_lba = last;
    new_primary.last_usable = last_usable;
    new_primary
        .write_primary(&mut dev, lb)
        .map_err(header_err(path))?;
    // Clear the stale backup header in the middle of the disk (when beyond every partition).
    if primary.backup_lba > max_used {
        file.write_all_at(&vec![0u8; block as usize], primary.backup_lba * block)
            .map_err(DiskError::io("clearing the old backup GPT of", path))?;
    }
    file.sync_all().map_err(DiskError::io("syncing", path))?;
    drop(file);
    // Grow a plain protective MBR with the disk (hybrid MBRs are left alone).
    if let Some(m) = mbr::read_mbr(path, block)?
        && m.entries.len() == 1
        && m.entries[0].kind == TYPE_GPT_PROTECTIVE
    {
        let mut m = m;
        m.entries[0].sectors = (total - 1).min(u64::from(u32::MAX));
        mbr::write_mbr(path, &m)?;
    }
    tracing::info!(disk = %path.display(), "moved the backup GPT to the end of the disk");
    Ok(true)
}

/// Adds `entry` (with partition GUID `guid`) in the lowest free slot of both entry arrays and
/// rewrites both headers. Returns the new partition number. The caller checks the range is
/// free and usable.
///
/// Only call after the disk guard accepted `path`.
pub fn add_entry(path: &Path, entry: &NewEntry, guid: Uuid) -> Result<u32, DiskError> {
    let Some(g) = read_gpt(path)? else {
        return Err(DiskError::table(path, "no GPT found"));
    };
    let (Some(primary), Some(backup)) = (g.primary.clone(), g.backup.clone()) else {
        return Err(DiskError::table(path, "a GPT header is damaged"));
    };
    // Both arrays get written: the backup must really be this table's backup.
    if backup.current_lba != primary.backup_lba
        || backup.num_parts != primary.num_parts
        || backup.part_size != primary.part_size
        || backup.part_start <= primary.last_usable
        || backup.disk_guid != primary.disk_guid
    {
        return Err(DiskError::table(
            path,
            "the backup GPT header does not match the primary",
        ));
    }
    let block = g.block_size;
    let lb = lb_size(block).ok_or_else(|| DiskError::table(path, "bad sector size"))?;
    let Some(slot) = (0..primary.num_parts).find(|i| !g.partitions.contains_key(&(i + 1))) else {
        return Err(DiskError::table(path, "no free GPT entry"));
    };
    let part = Partition {
        part_type_guid: gpt::partition_types::Type::from(entry.type_guid),
        part_guid: guid,
        first_lba: entry.first_lba,
        last_lba: entry.first_lba + entry.lbas - 1,
        flags: entry.flags,
        name: entry.name.clone(),
    };
    let file = blockdev::open_write(path)?;
    let mut dev = &file;
    let werr = DiskError::io("writing a GPT entry of", path);
    for start in [primary.part_start, backup.part_start] {
        if let Err(e) =
            part.write_to_device(&mut dev, u64::from(slot), start, lb, primary.part_size)
        {
            return Err(werr(e));
        }
    }
    let mut backup = backup;
    backup
        .write_backup(&mut dev, lb)
        .map_err(header_err(path))?;
    let mut primary = primary;
    primary
        .write_primary(&mut dev, lb)
        .map_err(header_err(path))?;
    file.sync_all().map_err(DiskError::io("syncing", path))?;
    Ok(slot + 1)
}
