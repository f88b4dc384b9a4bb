//! Partition tables, GPT or msdos, behind one interface: read, write a fresh table of exact
//! sizes, move the backup GPT to the end of the disk, add a partition at the end of the disk,
//! and find the `config-2` partition.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use uuid::Uuid;

use super::blockdev::{self, partition_path};
use super::gpt_table::{self, NewEntry};
use super::mbr::{self, Mbr, MbrEntry};
use super::{DiskError, MIB, probe};

/// GPT type GUID of an EFI system partition.
pub const GPT_ESP: Uuid = uuid::uuid!("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
/// GPT type GUID of a BIOS boot partition.
pub const GPT_BIOS_BOOT: Uuid = uuid::uuid!("21686148-6449-6E6F-744E-656564454649");
/// GPT type GUID of a PowerPC PReP boot partition.
pub const GPT_PREP: Uuid = uuid::uuid!("9E1A2D38-C612-4316-AA26-8B49521E5A8B");
/// GPT type GUID of Linux swap.
pub const GPT_LINUX_SWAP: Uuid = uuid::uuid!("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F");
/// GPT type GUID of a Linux software-RAID member.
pub const GPT_LINUX_RAID: Uuid = uuid::uuid!("A19D880F-05FC-4D3B-A006-743F0F84911E");
/// GPT type GUID of Linux filesystem data.
pub const GPT_LINUX_FS: Uuid = uuid::uuid!("0FC63DAF-8483-4772-8E79-3D69D8477DE4");
/// GPT attribute bit 2: legacy BIOS bootable.
pub const GPT_ATTR_LEGACY_BOOT: u64 = 1 << 2;

/// The label of a config drive filesystem (and of IPA's config drive partitions).
pub const CONFIG_DRIVE_LABEL: &str = "config-2";

/// Partition-table type (parted's label names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// GUID partition table.
    Gpt,
    /// DOS/MBR.
    Msdos,
}

impl FromStr for TableKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gpt" => Ok(TableKind::Gpt),
            "msdos" | "dos" | "mbr" => Ok(TableKind::Msdos),
            other => Err(format!("unknown disk label `{other}` (want gpt or msdos)")),
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::Gpt => "gpt",
            TableKind::Msdos => "msdos",
        })
    }
}

/// What a partition is for; decides its GPT type GUID and MBR type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionKind {
    /// EFI system partition (GPT ESP type, MBR 0xEF).
    Esp,
    /// GRUB's BIOS boot partition on GPT (MBR has none: 0x83 if asked).
    BiosBoot,
    /// PowerPC PReP boot (MBR 0x41).
    Prep,
    /// Linux swap (MBR 0x82).
    Swap,
    /// Linux filesystem data, e.g. root (MBR 0x83).
    Linux,
    /// Config drive (Linux data type; found by its filesystem label).
    ConfigDrive,
    /// Ephemeral data (Linux data type).
    Ephemeral,
    /// A Linux software-RAID member (GPT RAID type, MBR 0xFD).
    LinuxRaid,
}

impl PartitionKind {
    /// GPT partition type GUID.
    pub fn gpt_type(self) -> Uuid {
        match self {
            PartitionKind::Esp => GPT_ESP,
            PartitionKind::BiosBoot => GPT_BIOS_BOOT,
            PartitionKind::Prep => GPT_PREP,
            PartitionKind::Swap => GPT_LINUX_SWAP,
            PartitionKind::LinuxRaid => GPT_LINUX_RAID,
            PartitionKind::Linux | PartitionKind::ConfigDrive | PartitionKind::Ephemeral => {
                GPT_LINUX_FS
            }
        }
    }

    /// MBR partition type byte.
    pub fn mbr_type(self) -> u8 {
        match self {
            PartitionKind::Esp => 0xEF,
            PartitionKind::Prep => 0x41,
            PartitionKind::Swap => 0x82,
            PartitionKind::LinuxRaid => 0xFD,
            PartitionKind::BiosBoot
            | PartitionKind::Linux
            | PartitionKind::ConfigDrive
            | PartitionKind::Ephemeral => 0x83,
        }
    }
}

/// One partition of a fresh table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// Exact size in MiB.
    pub size_mib: u64,
    /// Purpose.
    pub kind: PartitionKind,
    /// GPT partition name (ignored on msdos).
    pub name: String,
    /// MBR active flag; on GPT the legacy-BIOS-bootable attribute.
    pub bootable: bool,
}

/// A partition's type as stored in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    /// GPT type GUID.
    Gpt(Uuid),
    /// MBR type byte.
    Mbr(u8),
}

/// One partition read from a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEntry {
    /// Number as the kernel names it (`…1`, `…p1`).
    pub number: u32,
    /// Start in bytes.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Type.
    pub ptype: PartitionType,
    /// blkid's `PART_ENTRY_UUID`/`PARTUUID`: the GPT partition GUID, or `<signature>-<nn>` on
    /// msdos.
    pub partuuid: String,
    /// GPT partition name.
    pub name: Option<String>,
    /// MBR active flag or GPT legacy-BIOS-bootable attribute.
    pub bootable: bool,
}

impl PartitionEntry {
    /// True for an MBR extended container (holds logical partitions, no data of its own).
    pub fn is_extended(&self) -> bool {
        matches!(self.ptype, PartitionType::Mbr(t) if mbr::EXTENDED_TYPES.contains(&t))
    }
}

/// A partition table read from a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// GPT or msdos.
    pub kind: TableKind,
    /// blkid's `PTUUID`: GPT disk GUID, or the MBR signature as 8 hex digits.
    pub id: String,
    /// Sector size the table is expressed in.
    pub sector_size: u64,
    /// Partitions by number.
    pub partitions: Vec<PartitionEntry>,
}

impl PartitionTable {
    /// The partition numbered `n`.
    pub fn get(&self, n: u32) -> Option<&PartitionEntry> {
        self.partitions.iter().find(|p| p.number == n)
    }

    /// The partition numbers, ascending.
    pub fn numbers(&self) -> Vec<u32> {
        self.partitions.iter().map(|p| p.number).collect()
    }

    /// The numbers of the partitions that hold data (all but an msdos extended container).
    pub fn data_numbers(&self) -> Vec<u32> {
        self.partitions
            .iter()
            .filter(|p| !p.is_extended())
            .map(|p| p.number)
            .collect()
    }
}

fn from_gpt(g: &gpt_table::Gpt) -> PartitionTable {
    let header = g.header();
    PartitionTable {
        kind: TableKind::Gpt,
        id: header
            .map(|h| h.disk_guid.hyphenated().to_string())
            .unwrap_or_default(),
        sector_size: g.block_size,
        partitions: g
            .partitions
            .iter()
            .map(|(n, p)| PartitionEntry {
                number: *n,
                start: p.first_lba.saturating_mul(g.block_size),
                size: (p.last_lba.saturating_add(1))
                    .saturating_sub(p.first_lba)
                    .saturating_mul(g.block_size),
                ptype: PartitionType::Gpt(p.part_type_guid.guid),
                partuuid: p.part_guid.hyphenated().to_string(),
                name: (!p.name.is_empty()).then(|| p.name.clone()),
                bootable: p.flags & GPT_ATTR_LEGACY_BOOT != 0,
            })
            .collect(),
    }
}

fn from_mbr(m: &Mbr, sector: u64) -> PartitionTable {
    PartitionTable {
        kind: TableKind::Msdos,
        id: format!("{:08x}", m.disk_signature),
        sector_size: sector,
        partitions: m
            .entries
            .iter()
            .map(|e| PartitionEntry {
                number: e.number,
                start: e.start_lba * sector,
                size: e.sectors * sector,
                ptype: PartitionType::Mbr(e.kind),
                partuuid: format!("{:08x}-{:02x}", m.disk_signature, e.number),
                name: None,
                bootable: e.bootable,
            })
            .collect(),
    }
}

/// Reads the partition table of `disk`: GPT when the MBR is protective (or absent and a GPT
/// header exists), else the DOS table. `None` when there is none.
pub fn read_table(disk: &Path) -> Result<Option<PartitionTable>, DiskError> {
    let sector = blockdev::logical_sector_size(disk)?;
    let m = mbr::read_mbr(disk, sector)?;
    if m.as_ref().is_none_or(Mbr::is_protective)
        && let Some(g) = gpt_table::read_gpt(disk)?
    {
        return Ok(Some(from_gpt(&g)));
    }
    Ok(m.filter(|m| !m.is_protective() && !m.entries.is_empty())
        .map(|m| from_mbr(&m, sector)))
}

/// Writes a fresh `kind` table on `disk` holding `specs` in order, numbered from 1, the first
/// starting at 1 MiB, each exactly `size_mib` long, and returns the table as read back.
/// Old table areas (the first MiB and the end of the disk past the last partition) are zeroed
/// first; partition contents are not touched.
///
/// Only call after the disk guard accepted `disk`.
pub fn write_table(
    disk: &Path,
    kind: TableKind,
    specs: &[PartitionSpec],
) -> Result<PartitionTable, DiskError> {
    let mut next = 1;
    let placed: Vec<PlacedPartition> = specs
        .iter()
        .map(|s| {
            let p = PlacedPartition {
                start_mib: next,
                spec: s.clone(),
            };
            next += s.size_mib;
            p
        })
        .collect();
    write_table_placed(disk, kind, &placed)
}

/// A partition of a fresh table at an explicit place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPartition {
    /// Start in MiB from the beginning of the disk (at least 1).
    pub start_mib: u64,
    /// Size, type and name.
    pub spec: PartitionSpec,
}

/// The last MiB boundary a partition of a `kind` table on `disk` may end at.
pub fn usable_end_mib(disk: &Path, kind: TableKind) -> Result<u64, DiskError> {
    let size = blockdev::size_bytes(disk)?;
    let sector = blockdev::logical_sector_size(disk)?;
    let total_lbas = size / sector;
    let end_limit = match kind {
        TableKind::Gpt => gpt_table::usable_range(total_lbas, sector).1 + 1,
        TableKind::Msdos => total_lbas.min(u64::from(u32::MAX)),
    };
    Ok(end_limit / (MIB / sector))
}

/// Writes a fresh `kind` table on `disk` holding `parts` numbered from 1 in the given order,
/// each at its own start (they must not overlap and must lie in the usable area), and returns
/// the table as read back. Old table areas are zeroed first; partition contents are not
/// touched.
///
/// Only call after the disk guard accepted `disk`.
pub fn write_table_placed(
    disk: &Path,
    kind: TableKind,
    parts: &[PlacedPartition],
) -> Result<PartitionTable, DiskError> {
    if parts.is_empty() {
        return Err(DiskError::Layout("no partitions requested".into()));
    }
    if kind == TableKind::Msdos && parts.len() > 4 {
        return Err(DiskError::Layout(format!(
            "{} partitions requested but an msdos table holds 4 primary partitions",
            parts.len()
        )));
    }
    if let Some(p) = parts.iter().find(|p| p.spec.size_mib == 0) {
        return Err(DiskError::Layout(format!(
            "partition `{}` has size 0",
            p.spec.name
        )));
    }
    if let Some(p) = parts.iter().find(|p| p.start_mib == 0) {
        return Err(DiskError::Layout(format!(
            "partition `{}` would start inside the partition table",
            p.spec.name
        )));
    }
    let mut spans: Vec<(u64, u64)> = parts
        .iter()
        .map(|p| (p.start_mib, p.start_mib + p.spec.size_mib))
        .collect();
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err(DiskError::Layout(format!(
            "partitions overlap: {spans:?} (MiB)"
        )));
    }
    let size = blockdev::size_bytes(disk)?;
    let sector = blockdev::logical_sector_size(disk)?;
    let per_mib = MIB / sector;
    let usable_mib = usable_end_mib(disk, kind)?;
    let needed_mib = spans.last().map_or(0, |s| s.1);
    if needed_mib > usable_mib {
        return Err(DiskError::Layout(format!(
            "the partitions need {needed_mib} MiB but {} has {usable_mib} MiB usable",
            disk.display(),
        )));
    }
    let used_end = needed_mib * MIB;
    let tail = size.saturating_sub(MIB).max(used_end);
    blockdev::zero_ranges(disk, &[(0, MIB), (tail, size - tail)])?;
    match kind {
        TableKind::Gpt => {
            let entries: Vec<NewEntry> = parts
                .iter()
                .map(|p| NewEntry {
                    first_lba: p.start_mib * per_mib,
                    lbas: p.spec.size_mib * per_mib,
                    type_guid: p.spec.kind.gpt_type(),
                    name: p.spec.name.clone(),
                    flags: if p.spec.bootable {
                        GPT_ATTR_LEGACY_BOOT
                    } else {
                        0
                    },
                })
                .collect();
            gpt_table::write_fresh(disk, sector, &entries)?;
        }
        TableKind::Msdos => {
            let mut signature: u32 = rand::random();
            while signature == 0 {
                signature = rand::random();
            }
            let m = Mbr {
                disk_signature: signature,
                entries: parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| MbrEntry {
                        number: i as u32 + 1,
                        bootable: p.spec.bootable,
                        kind: p.spec.kind.mbr_type(),
                        start_lba: p.start_mib * per_mib,
                        sectors: p.spec.size_mib * per_mib,
                    })
                    .collect(),
            };
            mbr::write_mbr(disk, &m)?;
        }
    }
    blockdev::flush(disk)?;
    tracing::info!(disk = %disk.display(), %kind, partitions = parts.len(), "wrote a partition table");
    read_table(disk)?.ok_or_else(|| DiskError::table(disk, "the new table cannot be read back"))
}

/// Moves the backup GPT to the end of a disk larger than the image written to it (`sgdisk -e`).
/// Returns false when nothing had to move (or the disk has no GPT).
///
/// Only call after the disk guard accepted `disk`.
pub fn relocate_gpt_backup(disk: &Path) -> Result<bool, DiskError> {
    match read_table(disk)? {
        Some(t) if t.kind == TableKind::Gpt => gpt_table::relocate_backup(disk),
        _ => Ok(false),
    }
}

/// Adds a partition of `size_mib` at the very end of `disk` (IPA's config-drive placement) and
/// returns it. GPT: the backup table is moved to the end first, then the new partition ends at
/// the last usable LBA and starts on a MiB boundary, with a new random PARTUUID. msdos: fails
/// when four primary partitions exist; else the last `size_mib` of the disk, or, on disks larger
/// than the MBR can address (2 TiB with 512-byte sectors), the MiB range just below that limit
/// (MiB 2097087–2097151 for 64 MiB).
///
/// Only call after the disk guard accepted `disk`.
pub fn add_partition_at_end(
    disk: &Path,
    size_mib: u64,
    kind: PartitionKind,
    name: &str,
) -> Result<PartitionEntry, DiskError> {
    let table = read_table(disk)?
        .ok_or_else(|| DiskError::table(disk, "the disk has no partition table"))?;
    let sector = table.sector_size;
    let per_mib = MIB / sector;
    let used_end = table
        .partitions
        .iter()
        .map(|p| p.start.saturating_add(p.size))
        .max()
        .unwrap_or(0);
    let number = match table.kind {
        TableKind::Gpt => {
            gpt_table::relocate_backup(disk)?;
            let g = gpt_table::read_gpt(disk)?
                .ok_or_else(|| DiskError::table(disk, "the GPT vanished"))?;
            let h = g
                .header()
                .ok_or_else(|| DiskError::table(disk, "no valid GPT header"))?;
            let end = h.last_usable.saturating_add(1);
            let start = (end.saturating_sub(size_mib * per_mib) / per_mib) * per_mib;
            if start * sector < used_end || start < h.first_usable {
                return Err(DiskError::table(
                    disk,
                    format!("no room for {size_mib} MiB at the end of the disk"),
                ));
            }
            let entry = NewEntry {
                first_lba: start,
                lbas: end - start,
                type_guid: kind.gpt_type(),
                name: name.to_string(),
                flags: 0,
            };
            gpt_table::add_entry(disk, &entry, Uuid::new_v4())?
        }
        TableKind::Msdos => {
            let m = mbr::read_mbr(disk, sector)?
                .ok_or_else(|| DiskError::table(disk, "the MBR vanished"))?;
            let primaries: Vec<u32> = m.primaries().map(|e| e.number).collect();
            if primaries.len() >= 4 {
                return Err(DiskError::table(
                    disk,
                    "the disk already has 4 primary partitions; cannot add one",
                ));
            }
            let total = blockdev::size_bytes(disk)? / sector;
            let limit = u64::from(u32::MAX) + 1;
            let (start, len) = if total > limit {
                let limit_mib = limit / per_mib;
                ((limit_mib - size_mib - 1) * per_mib, size_mib * per_mib)
            } else {
                let start = (total.saturating_sub(size_mib * per_mib) / per_mib) * per_mib;
                (start, total - start)
            };
            if start * sector < used_end || start == 0 {
                return Err(DiskError::table(
                    disk,
                    format!("no room for {size_mib} MiB at the end of the disk"),
                ));
            }
            let number = (1..=4).find(|n| !primaries.contains(n)).unwrap_or(4);
            let mut m = m;
            m.entries.retain(|e| e.number <= 4);
            m.entries.push(MbrEntry {
                number,
                bootable: false,
                kind: kind.mbr_type(),
                start_lba: start,
                sectors: len,
            });
            mbr::write_mbr(disk, &m)?;
            number
        }
    };
    blockdev::flush(disk)?;
    let table =
        read_table(disk)?.ok_or_else(|| DiskError::table(disk, "the table cannot be read back"))?;
    let entry = table
        .get(number)
        .cloned()
        .ok_or_else(|| DiskError::table(disk, "the new partition is missing"))?;
    tracing::info!(disk = %disk.display(), number, start = entry.start, size = entry.size,
        "added a partition at the end of the disk");
    Ok(entry)
}

/// After a whole-disk image was written to `disk`: moves the backup GPT to the
/// end of a larger disk, makes the kernel see the partitions, and fails when the image holds no
/// partition at all (IPA: "No partitions found on the device"). Returns the table.
///
/// Only call after the disk guard accepted `disk`.
pub fn finish_whole_disk_image(disk: &Path) -> Result<PartitionTable, DiskError> {
    blockdev::flush(disk)?;
    if relocate_gpt_backup(disk)? {
        blockdev::flush(disk)?;
    }
    let table = read_table(disk)?
        .filter(|t| !t.partitions.is_empty())
        .ok_or_else(|| {
            DiskError::table(
                disk,
                format!("No partitions found on the device {}", disk.display()),
            )
        })?;
    blockdev::reread_partitions(disk, &table.data_numbers())?;
    Ok(table)
}

/// The partition of `disk` whose filesystem is labelled `config-2` (any case), with its device
/// node path; `None` when there is none, an error when there are several.
pub fn find_config_drive(
    disk: &Path,
) -> Result<Option<(PartitionEntry, std::path::PathBuf)>, DiskError> {
    let Some(table) = read_table(disk)? else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for p in table.partitions.iter().filter(|p| !p.is_extended()) {
        let label = probe::probe_range(disk, p.start, p.size)?.and_then(|f| f.label);
        if label.is_some_and(|l| l.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL)) {
            found.push(p.clone());
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => {
            let p = found.remove(0);
            let path = partition_path(disk, p.number);
            Ok(Some((p, path)))
        }
        n => Err(DiskError::table(
            disk,
            format!("{n} partitions are labelled {CONFIG_DRIVE_LABEL}; expected at most one"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::disk::testing::{partx_show, sfdisk_json, sparse, vfat_image};

    fn spec(size_mib: u64, kind: PartitionKind, name: &str, bootable: bool) -> PartitionSpec {
        PartitionSpec {
            size_mib,
            kind,
            name: name.into(),
            bootable,
        }
    }

    #[test]
    fn fresh_gpt_has_exact_sizes_order_and_types() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 64 << 20)?;
        let specs = [
            spec(1, PartitionKind::BiosBoot, "bios-boot", false),
            spec(8, PartitionKind::Swap, "swap1", false),
            spec(20, PartitionKind::Linux, "root", true),
        ];
        let t = write_table(&disk, TableKind::Gpt, &specs)?;
        assert_eq!(t.kind, TableKind::Gpt);
        assert_eq!(t.numbers(), vec![1, 2, 3]);
        let got: Vec<(u64, u64, PartitionType)> = t
            .partitions
            .iter()
            .map(|p| (p.start / MIB, p.size / MIB, p.ptype))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, PartitionType::Gpt(GPT_BIOS_BOOT)),
                (2, 8, PartitionType::Gpt(GPT_LINUX_SWAP)),
                (10, 20, PartitionType::Gpt(GPT_LINUX_FS)),
            ]
        );
        assert!(t.partitions.iter().all(|p| p.size % MIB == 0));
        assert!(t.partitions[2].bootable);
        assert_eq!(t.partitions[1].name.as_deref(), Some("swap1"));

        // util-linux's parser agrees.
        let px = partx_show(&disk)?;
        assert_eq!(px.len(), 3);
        for (p, x) in t.partitions.iter().zip(&px) {
            assert_eq!(u64::from(p.number), u64::from(x.nr));
            assert_eq!(p.start / 512, x.start);
            assert_eq!(p.size / 512, x.sectors);
            assert_eq!(p.partuuid, x.uuid);
            if let PartitionType::Gpt(g) = p.ptype {
                assert_eq!(g.hyphenated().to_string(), x.ptype);
            }
        }
        assert_eq!(px[2].name, "root");
        if let Some(j) = sfdisk_json(&disk)? {
            assert_eq!(j["partitiontable"]["label"], "gpt");
            assert_eq!(j["partitiontable"]["partitions"][2]["size"], 20 * 2048);
        }
        // Protective MBR present, so this reads as GPT, not msdos.
        let m = mbr::read_mbr(&disk, 512)?.ok_or_else(|| anyhow::anyhow!("no pMBR"))?;
        assert!(m.is_protective());
        Ok(())
    }

    #[test]
    fn fresh_msdos_has_types_and_boot_flag() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 64 << 20)?;
        // A previous GPT must not survive under the new msdos table.
        write_table(
            &disk,
            TableKind::Gpt,
            &[spec(4, PartitionKind::Linux, "old", false)],
        )?;
        let specs = [
            spec(8, PartitionKind::Swap, "swap1", false),
            spec(2, PartitionKind::ConfigDrive, "config-2", false),
            spec(30, PartitionKind::Linux, "root", true),
        ];
        let t = write_table(&disk, TableKind::Msdos, &specs)?;
        assert_eq!(t.kind, TableKind::Msdos);
        let got: Vec<(u32, u64, u64, PartitionType, bool)> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.start / MIB, p.size / MIB, p.ptype, p.bootable))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, 8, PartitionType::Mbr(0x82), false),
                (2, 9, 2, PartitionType::Mbr(0x83), false),
                (3, 11, 30, PartitionType::Mbr(0x83), true),
            ]
        );
        let px = partx_show(&disk)?;
        assert_eq!(
            px.iter()
                .map(|x| (x.nr, x.start, x.sectors, x.ptype.as_str(), x.flags.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (1, 2048, 8 * 2048, "0x82", "0x0"),
                (2, 9 * 2048, 2 * 2048, "0x83", "0x0"),
                (3, 11 * 2048, 30 * 2048, "0x83", "0x80"),
            ]
        );
        assert_eq!(px[0].uuid, format!("{}-01", t.id));
        assert!(gpt_table::read_gpt(&disk)?.is_none(), "old GPT left behind");
        if let Some(j) = sfdisk_json(&disk)? {
            assert_eq!(j["partitiontable"]["label"], "dos");
            assert_eq!(j["partitiontable"]["partitions"][2]["bootable"], true);
        }
        Ok(())
    }

    #[test]
    fn impossible_tables_are_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 32 << 20)?;
        let five: Vec<PartitionSpec> = (0..5)
            .map(|i| spec(1, PartitionKind::Linux, &format!("p{i}"), false))
            .collect();
        assert!(matches!(
            write_table(&disk, TableKind::Msdos, &five),
            Err(DiskError::Layout(_))
        ));
        // 1 MiB + 31 MiB > 32 MiB minus the backup GPT.
        assert!(matches!(
            write_table(
                &disk,
                TableKind::Gpt,
                &[spec(31, PartitionKind::Linux, "r", false)]
            ),
            Err(DiskError::Layout(_))
        ));
        assert!(matches!(
            write_table(&disk, TableKind::Gpt, &[]),
            Err(DiskError::Layout(_))
        ));
        // Nothing was written.
        assert_eq!(read_table(&disk)?, None);
        Ok(())
    }

    /// Writes a GPT entry into slot `index` (0-based) of both arrays and fixes the headers,
    /// the way other tools leave gaps (Ubuntu cloud images use partitions 1, 14 and 15).
    fn put_entry_in_slot(disk: &Path, index: u64, first: u64, last: u64) -> anyhow::Result<()> {
        let g = gpt_table::read_gpt(disk)?.ok_or_else(|| anyhow::anyhow!("no gpt"))?;
        let (mut p, mut b) = (
            g.primary.ok_or_else(|| anyhow::anyhow!("no primary"))?,
            g.backup.ok_or_else(|| anyhow::anyhow!("no backup"))?,
        );
        let part = ::gpt::partition::Partition {
            part_type_guid: ::gpt::partition_types::Type::from(GPT_ESP),
            part_guid: Uuid::new_v4(),
            first_lba: first,
            last_lba: last,
            flags: 0,
            name: "slot".into(),
        };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(disk)?;
        let mut dev = &f;
        let lb = ::gpt::disk::LogicalBlockSize::Lb512;
        part.write_to_device(&mut dev, index, p.part_start, lb, 128)?;
        part.write_to_device(&mut dev, index, b.part_start, lb, 128)?;
        b.write_backup(&mut dev, lb)?;
        p.write_primary(&mut dev, lb)?;
        Ok(())
    }

    #[test]
    fn backup_gpt_moves_to_the_end_and_slots_keep_their_numbers() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 32 << 20)?;
        write_table(
            &disk,
            TableKind::Gpt,
            &[spec(8, PartitionKind::Linux, "root", false)],
        )?;
        put_entry_in_slot(&disk, 13, 9 * 2048, 10 * 2048 - 1)?;
        let before = read_table(&disk)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert_eq!(before.numbers(), vec![1, 14]);

        // The "image" lands on a disk four times its size.
        File::options()
            .write(true)
            .open(&disk)?
            .set_len(128 << 20)?;
        assert!(relocate_gpt_backup(&disk)?);
        assert!(!relocate_gpt_backup(&disk)?, "second run must be a no-op");
        let g = gpt_table::read_gpt(&disk)?.ok_or_else(|| anyhow::anyhow!("no gpt"))?;
        let total = (128u64 << 20) / 512;
        let p = g
            .primary
            .clone()
            .ok_or_else(|| anyhow::anyhow!("primary"))?;
        let b = g.backup.clone().ok_or_else(|| anyhow::anyhow!("backup"))?;
        assert_eq!(p.backup_lba, total - 1);
        assert_eq!(b.current_lba, total - 1);
        assert_eq!(p.last_usable, total - 34);
        assert_eq!(b.part_start, total - 33);
        let after = read_table(&disk)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert_eq!(after.partitions, before.partitions);
        assert_eq!(
            partx_show(&disk)?.iter().map(|x| x.nr).collect::<Vec<_>>(),
            vec![1, 14]
        );
        let pmbr = mbr::read_mbr(&disk, 512)?.ok_or_else(|| anyhow::anyhow!("pmbr"))?;
        assert_eq!(pmbr.entries[0].sectors, total - 1);

        let new = add_partition_at_end(&disk, 64, PartitionKind::ConfigDrive, "config-2")?;
        assert_eq!(new.number, 2, "lowest free slot");
        assert_eq!(new.start % MIB, 0);
        assert!(new.size >= 64 * MIB);
        assert_eq!(
            (new.start + new.size) / 512,
            total - 33,
            "ends at the last usable LBA"
        );
        let t = read_table(&disk)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert_eq!(t.numbers(), vec![1, 2, 14]);
        assert_eq!(t.get(14), before.get(14));
        let px = partx_show(&disk)?;
        assert_eq!(px.iter().map(|x| x.nr).collect::<Vec<_>>(), vec![1, 2, 14]);
        assert_eq!(px[1].uuid, new.partuuid);
        assert_ne!(
            new.partuuid,
            t.get(1).map(|p| p.partuuid.clone()).unwrap_or_default()
        );
        Ok(())
    }

    #[test]
    fn msdos_partition_at_the_end() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 256 << 20)?;
        let two = [
            spec(8, PartitionKind::Linux, "a", true),
            spec(8, PartitionKind::Swap, "b", false),
        ];
        write_table(&disk, TableKind::Msdos, &two)?;
        let p = add_partition_at_end(&disk, 64, PartitionKind::ConfigDrive, "config-2")?;
        assert_eq!((p.number, p.start / MIB, p.size / MIB), (3, 192, 64));
        let px = partx_show(&disk)?;
        assert_eq!(px[2].start, 192 * 2048);
        assert_eq!(px[2].sectors, 64 * 2048);

        let four: Vec<PartitionSpec> = (0..4)
            .map(|i| spec(8, PartitionKind::Linux, &format!("p{i}"), false))
            .collect();
        write_table(&disk, TableKind::Msdos, &four)?;
        assert!(matches!(
            add_partition_at_end(&disk, 64, PartitionKind::ConfigDrive, "config-2"),
            Err(DiskError::Table { .. })
        ));
        // No room: a partition already occupies the last 64 MiB.
        write_table(
            &disk,
            TableKind::Msdos,
            &[spec(250, PartitionKind::Linux, "big", false)],
        )?;
        assert!(add_partition_at_end(&disk, 64, PartitionKind::ConfigDrive, "c").is_err());
        Ok(())
    }

    #[test]
    fn msdos_partition_below_the_2tib_limit_on_huge_disks() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = dir.path().join("huge");
        let f = File::create(&disk)?;
        if let Err(e) = f.set_len(3 << 40) {
            eprintln!("note: cannot create a 3 TiB sparse file here ({e}); test skipped");
            return Ok(());
        }
        // Write the table by hand: write_table would zero the last MiB (fine, but slow on some
        // filesystems).
        mbr::write_mbr(
            &disk,
            &Mbr {
                disk_signature: 0xfeed,
                entries: vec![MbrEntry {
                    number: 1,
                    bootable: true,
                    kind: 0x83,
                    start_lba: 2048,
                    sectors: 2048 * 100,
                }],
            },
        )?;
        let p = add_partition_at_end(&disk, 64, PartitionKind::ConfigDrive, "config-2")?;
        assert_eq!(p.number, 2);
        assert_eq!(p.start / MIB, 2_097_087);
        assert_eq!((p.start + p.size) / MIB, 2_097_151);
        Ok(())
    }

    #[test]
    fn config_drive_found_by_label() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 64 << 20)?;
        let t = write_table(
            &disk,
            TableKind::Gpt,
            &[
                spec(8, PartitionKind::Linux, "root", false),
                spec(4, PartitionKind::Linux, "cd", false),
                spec(4, PartitionKind::Linux, "other", false),
            ],
        )?;
        assert_eq!(find_config_drive(&disk)?, None);
        let img = vfat_image(dir.path(), "cd.img", 4 << 20, "config-2")?;
        let data = std::fs::read(&img)?;
        let f = File::options().write(true).open(&disk)?;
        let p2 = t.get(2).ok_or_else(|| anyhow::anyhow!("p2"))?;
        f.write_all_at(&data, p2.start)?;
        let (found, node) =
            find_config_drive(&disk)?.ok_or_else(|| anyhow::anyhow!("config-2 not found"))?;
        assert_eq!(found.number, 2);
        assert_eq!(node, partition_path(&disk, 2));
        // Two of them is an error (IPA refuses too).
        let upper = vfat_image(dir.path(), "cd2.img", 4 << 20, "CONFIG-2")?;
        let p3 = t.get(3).ok_or_else(|| anyhow::anyhow!("p3"))?;
        f.write_all_at(&std::fs::read(&upper)?, p3.start)?;
        assert!(find_config_drive(&disk).is_err());
        Ok(())
    }

    #[test]
    fn hostile_tables_are_errors_not_panics() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = sparse(dir.path(), "d", 8 << 20)?;
        let f = File::options().write(true).open(&disk)?;
        // A CRC-valid primary header claiming 256-byte entries and a huge array.
        let mut h = vec![0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
        h[84..88].copy_from_slice(&256u32.to_le_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&h);
        h[16..20].copy_from_slice(&crc.sum().to_le_bytes());
        f.write_all_at(&h, 512)?;
        assert!(matches!(read_table(&disk), Err(DiskError::Table { .. })));
        // Random bytes everywhere near the start and the end.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..64 {
            let mut buf = vec![0u8; 64 * 1024];
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            if round % 2 == 0 {
                buf[510] = 0x55;
                buf[511] = 0xAA;
                for e in 0..4 {
                    buf[446 + 16 * e] = 0;
                }
            }
            f.write_all_at(&buf, 0)?;
            f.write_all_at(&buf, (8 << 20) - buf.len() as u64)?;
            let _ = read_table(&disk);
            let _ = probe::probe(&disk);
            let _ = find_config_drive(&disk);
        }
        Ok(())
    }

    /// A loop device with 4096-byte logical sectors (detached on drop).
    struct Loop4k(std::path::PathBuf);

    impl Drop for Loop4k {
        fn drop(&mut self) {
            let _ = std::process::Command::new("partx")
                .arg("-d")
                .arg(&self.0)
                .output();
            let _ = std::process::Command::new("losetup")
                .arg("-d")
                .arg(&self.0)
                .output();
        }
    }

    #[test]
    fn gpt_on_4k_sectors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = sparse(dir.path(), "d", 64 << 20)?;
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show", "--sector-size", "4096"])
            .arg(&file)
            .output()?;
        anyhow::ensure!(out.status.success(), "losetup: {out:?}");
        let dev = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        anyhow::ensure!(
            dev.to_string_lossy().starts_with("/dev/loop"),
            "{}",
            dev.display()
        );
        let lo = Loop4k(dev);
        assert_eq!(blockdev::logical_sector_size(&lo.0)?, 4096);
        let t = write_table(
            &lo.0,
            TableKind::Gpt,
            &[
                spec(1, PartitionKind::BiosBoot, "b", false),
                spec(16, PartitionKind::Linux, "r", false),
            ],
        )?;
        assert_eq!(t.sector_size, 4096);
        assert_eq!(
            t.partitions
                .iter()
                .map(|p| (p.start, p.size))
                .collect::<Vec<_>>(),
            vec![(MIB, MIB), (2 * MIB, 16 * MIB)]
        );
        let px = partx_show(&lo.0)?;
        assert_eq!(
            px.iter().map(|x| (x.start, x.sectors)).collect::<Vec<_>>(),
            // partx counts 512-byte units whatever the sector size.
            vec![(2048, 2048), (4096, 16 * 2048)]
        );
        let p = add_partition_at_end(&lo.0, 8, PartitionKind::ConfigDrive, "config-2")?;
        assert_eq!(p.number, 3);
        assert_eq!((p.start + p.size) / 4096, (64 << 20) / 4096 - 5);
        blockdev::reread_partitions(&lo.0, &[1, 2, 3])?;
        assert_eq!(blockdev::size_bytes(&partition_path(&lo.0, 2))?, 16 * MIB);
        Ok(())
    }

    #[test]
    fn whole_disk_image_is_fixed_and_validated() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = sparse(dir.path(), "disk.img", 32 << 20)?;
        write_table(
            &file,
            TableKind::Gpt,
            &[
                spec(4, PartitionKind::Esp, "esp", false),
                spec(8, PartitionKind::Linux, "root", false),
            ],
        )?;
        File::options().write(true).open(&file)?.set_len(64 << 20)?;
        let lo = crate::testutil::LoopDevice::attach(&file)?;
        let t = finish_whole_disk_image(&lo.path)?;
        assert_eq!(t.numbers(), vec![1, 2]);
        assert_eq!(blockdev::size_bytes(&lo.partition(2))?, 8 * MIB);
        let g = gpt_table::read_gpt(&lo.path)?.ok_or_else(|| anyhow::anyhow!("gpt"))?;
        assert_eq!(
            g.primary.map(|h| h.backup_lba),
            Some((64u64 << 20) / 512 - 1)
        );
        // The relocated backup alone describes the same partitions.
        File::options()
            .write(true)
            .open(&file)?
            .write_all_at(&[0u8; 512], 512)?;
        blockdev::flush(&lo.path)?;
        let from_backup = read_table(&lo.path)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert_eq!(from_backup.partitions, t.partitions);

        let empty = sparse(dir.path(), "empty.img", 8 << 20)?;
        let e = finish_whole_disk_image(&empty).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("No partitions found")),
            "{e:?}"
        );
        Ok(())
    }
}
