//! Metadata wipes: IPA's `erase_devices_metadata` for one device, and the image pipeline's
//! "make a half-written disk unbootable" wipe of the partition-table areas.

use std::path::Path;

use super::blockdev::{self, is_block_device};
use super::{DiskError, MIB, cmd, probe, table};
use crate::tools::{ToolError, find_tool};

/// What [`erase_metadata`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WipeReport {
    /// Signatures whose magic was zeroed, as `"<type> at <byte offset>"`.
    pub signatures: Vec<String>,
    /// Whether `wipefs --all` ran successfully.
    pub wipefs_ran: bool,
}

/// Bytes zeroed at both ends of the device (covers MBR, both GPTs, and every superblock that
/// sits near a device's start or end).
const EDGE: u64 = MIB;
/// Bytes zeroed at both ends by [`wipe_partition_tables`]: MBR + primary GPT (34 × 512 or
/// 6 × 4096 bytes), backup GPT (33 × 512 or 5 × 4096).
const TABLE_AREA: u64 = 24 * 1024;
/// Rounds of probe-and-zero per region (one signature can hide another).
const ROUNDS: usize = 4;

/// Zeroes every signature the probe finds in `[start, start + len)` of `dev`, repeatedly.
fn zero_signatures(
    dev: &Path,
    start: u64,
    len: u64,
    report: &mut WipeReport,
) -> Result<(), DiskError> {
    for _ in 0..ROUNDS {
        let found = probe::probe_all_range(dev, start, len)?;
        if found.is_empty() {
            return Ok(());
        }
        let mut ranges = Vec::new();
        for f in &found {
            report.signatures.push(format!(
                "{} at {}",
                f.fstype,
                start + f.magic.first().map_or(0, |m| m.0)
            ));
            ranges.extend(f.magic.iter().map(|(o, l)| (start + o, *l)));
        }
        // Whole sectors, so block devices can take O_DIRECT writes.
        let sector = blockdev::logical_sector_size(dev)?.max(512);
        let ranges: Vec<(u64, u64)> = ranges
            .into_iter()
            .map(|(o, l)| {
                let a = o / sector * sector;
                (a, (o + l).div_ceil(sector) * sector - a)
            })
            .collect();
        blockdev::zero_ranges(dev, &ranges)?;
    }
    Ok(())
}

/// `wipefs --force --all dev` (without `--force` on old util-linux); false if absent or failed.
fn run_wipefs(dev: &Path) -> bool {
    if find_tool("wipefs").is_none() {
        return false;
    }
    match cmd::run(
        "wipefs",
        ["--force".as_ref(), "--all".as_ref(), dev.as_os_str()],
    ) {
        Ok(_) => true,
        Err(DiskError::Tool(ToolError::Failed { detail, .. }))
            if detail.contains("unrecognized option") =>
        {
            cmd::run("wipefs", ["--all".as_ref(), dev.as_os_str()]).is_ok()
        }
        Err(e) => {
            tracing::warn!(device = %dev.display(), error = %e, "wipefs failed");
            false
        }
    }
}

/// Drops the kernel's partitions of `dev` after its table was erased (best effort).
fn forget_partitions(dev: &Path) {
    if !is_block_device(dev) {
        return;
    }
    let name = dev.file_name().map(|n| n.to_string_lossy().into_owned());
    let is_partition = name.is_some_and(|n| {
        Path::new("/sys/class/block")
            .join(n)
            .join("partition")
            .exists()
    });
    if is_partition {
        return;
    }
    let _ = blockdev::reread_partitions(dev, &[]);
    if find_tool("partx").is_some() {
        // BLKRRPART is refused on loop devices without partition scanning: partx -d does it.
        let _ = cmd::run("partx", ["-d".as_ref(), dev.as_os_str()]);
    }
}

/// Erases the metadata of one device, like IPA's `erase_devices_metadata` does per device:
/// the magic of every filesystem/RAID/LVM/LUKS signature found at the device's start and at the
/// start of each of its partitions (found through the table, no partition nodes needed),
/// `wipefs --force --all` when installed, then the first and last MiB (MBR, both GPTs).
/// Afterwards the probe and the table reader must find nothing, else it is an error.
///
/// Only call after the disk guard accepted `dev`.
pub fn erase_metadata(dev: &Path) -> Result<WipeReport, DiskError> {
    blockdev::flush(dev)?;
    let size = blockdev::size_bytes(dev)?;
    let mut report = WipeReport::default();
    let partitions = match table::read_table(dev) {
        Ok(t) => t.map(|t| t.partitions).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(device = %dev.display(), error = %e, "unreadable partition table");
            Vec::new()
        }
    };
    for p in partitions.iter().filter(|p| !p.is_extended()) {
        if p.start >= size {
            continue;
        }
        zero_signatures(dev, p.start, p.size.min(size - p.start), &mut report)?;
    }
    zero_signatures(dev, 0, size, &mut report)?;
    report.wipefs_ran = run_wipefs(dev);
    let tail = size.saturating_sub(EDGE);
    blockdev::zero_ranges(dev, &[(0, EDGE.min(size)), (tail, size - tail)])?;
    forget_partitions(dev);

    let left = probe::probe_all_range(dev, 0, size)?;
    if !left.is_empty() {
        return Err(DiskError::table(
            dev,
            format!(
                "signatures remain after the wipe: {}",
                left.iter().map(|p| p.fstype).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if table::read_table(dev)?.is_some() {
        return Err(DiskError::table(
            dev,
            "a partition table remains after the wipe",
        ));
    }
    tracing::info!(device = %dev.display(), signatures = ?report.signatures, "metadata erased");
    Ok(report)
}

/// Zeroes the partition-table areas of `dev` (the first and last 24 KiB: MBR with its boot
/// code, primary and backup GPT) so a half-written disk is never booted. Partition contents
/// beyond those areas are left alone.
///
/// Only call after the disk guard accepted `dev`.
pub fn wipe_partition_tables(dev: &Path) -> Result<(), DiskError> {
    let size = blockdev::size_bytes(dev)?;
    let tail = size.saturating_sub(TABLE_AREA) / 4096 * 4096;
    blockdev::zero_ranges(dev, &[(0, TABLE_AREA.min(size)), (tail, size - tail)])?;
    forget_partitions(dev);
    tracing::warn!(device = %dev.display(), "partition-table areas wiped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::disk::table::{PartitionKind, TableKind};
    use crate::disk::testing::{blkid_export, run_tool, wipefs_list};
    use crate::testutil::{self, LoopDevice};

    /// A loop disk with a GPT and ext4 / vfat / swap / md 1.0 member partitions.
    fn busy_disk(
        dir: &Path,
        kind: TableKind,
    ) -> anyhow::Result<(LoopDevice, table::PartitionTable)> {
        let (lo, t) = testutil::busy_disk(
            &dir.join("disk.img"),
            96 << 20,
            kind,
            &[
                (16, PartitionKind::Linux),
                (36, PartitionKind::Esp),
                (8, PartitionKind::Swap),
                (8, PartitionKind::Linux),
            ],
        )?;
        let p4 = t.get(4).ok_or_else(|| anyhow::anyhow!("p4"))?;
        testutil::md_superblock(&lo.path, p4.start, p4.size)?;
        Ok((lo, t))
    }

    #[test]
    fn erase_metadata_leaves_nothing_to_find() -> anyhow::Result<()> {
        for kind in [TableKind::Gpt, TableKind::Msdos] {
            let dir = tempfile::tempdir()?;
            let (lo, t) = busy_disk(dir.path(), kind)?;
            assert!(!wipefs_list(&lo.path)?.is_empty());
            let report = erase_metadata(&lo.path)?;
            let types: Vec<&str> = report
                .signatures
                .iter()
                .filter_map(|s| s.split(' ').next())
                .collect();
            for want in ["ext4", "vfat", "swap", "linux_raid_member"] {
                assert!(types.contains(&want), "{kind}: {want} not in {types:?}");
            }
            assert_eq!(wipefs_list(&lo.path)?, "", "{kind}");
            let b = blkid_export(&lo.path)?;
            assert!(
                !b.contains_key("PTTYPE") && !b.contains_key("TYPE"),
                "{b:?}"
            );
            assert_eq!(table::read_table(&lo.path)?, None);
            // Old partition regions hold no signature either (what a new table would expose).
            for p in &t.partitions {
                assert_eq!(probe::probe_all_range(&lo.path, p.start, p.size)?, vec![]);
            }
            assert!(!lo.partition(1).exists(), "kernel partitions dropped");
        }
        Ok(())
    }

    #[test]
    fn erase_metadata_on_a_bare_filesystem_and_a_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("fs.img");
        File::create(&f)?.set_len(32 << 20)?;
        run_tool("mkfs.ext4", &["-q", "-F"], &f)?;
        let lo = LoopDevice::attach(&f)?;
        erase_metadata(&lo.path)?;
        assert_eq!(wipefs_list(&lo.path)?, "");
        drop(lo);
        // Regular files work too (tests, image files).
        run_tool("mkswap", &[], &f)?;
        let r = erase_metadata(&f)?;
        assert_eq!(r.signatures.len(), 1);
        assert_eq!(probe::probe(&f)?, None);
        Ok(())
    }

    #[test]
    fn partition_table_areas_are_wiped_and_data_kept() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (lo, t) = busy_disk(dir.path(), TableKind::Gpt)?;
        let p1 = t.get(1).ok_or_else(|| anyhow::anyhow!("p1"))?.clone();
        wipe_partition_tables(&lo.path)?;
        assert_eq!(table::read_table(&lo.path)?, None);
        let b = blkid_export(&lo.path)?;
        assert!(!b.contains_key("PTTYPE"), "{b:?}");
        // The filesystem inside partition 1 is untouched.
        let fs = probe::probe_range(&lo.path, p1.start, p1.size)?;
        assert_eq!(fs.map(|f| f.fstype), Some("ext4"));
        Ok(())
    }
}
