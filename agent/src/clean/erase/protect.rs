//! The special-filesystem guard: a disk holding a shared-disk cluster
//! filesystem (IBM GPFS, VMware VMFS, Red Hat GFS2) may be a SAN volume other machines use, so
//! erase steps refuse it with `ProtectedDeviceError` unless the node sets
//! `driver_internal_info.wipe_special_filesystems` to false.
//!
//! IPA asks `lsblk` about the device itself; here the partition table is read directly (every
//! partition's type) and GFS2 superblocks are looked for at the start of the device and of each
//! partition, so a disk is refused when any of its partitions is special.

use std::fs::File;
use std::path::Path;

use uuid::Uuid;

use crate::disk::blockdev::{self, read_at};
use crate::disk::table::{self, PartitionType};

/// IBM GPFS partition type.
const GPT_GPFS: Uuid = uuid::uuid!("37AFFC90-EF7D-4E96-91C3-2D7AE055B174");
/// VMware VMFS partition type.
const GPT_VMFS: Uuid = uuid::uuid!("AA31E02A-400F-11DB-9590-000C2911D1B8");
/// VMware VMFS MBR type.
const MBR_VMFS: u8 = 0xfb;

/// GFS2 superblock: at 64 KiB, big-endian magic, metadata type 1 (superblock), multihost
/// format 1900 (what blkid checks).
const GFS2_SB_OFFSET: u64 = 64 << 10;
const GFS2_MAGIC: u32 = 0x0116_1970;
const GFS2_METATYPE_SB: u32 = 1;
const GFS2_FORMAT_MULTI: u32 = 1900;

/// A protected thing found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The device checked.
    pub device: String,
    /// What was found (IPA's wording), with where.
    pub what: String,
}

impl Protected {
    /// IPA's `ProtectedDeviceError` text, plus the setting that lifts the guard.
    pub fn message(&self) -> String {
        format!(
            "Protected {} located on device {}. This volume or contents may be a shared block \
             device. Please consult your storage administrator, and restart cleaning after \
             either detaching the volumes, or instructing IPA to not protect contents (set \
             driver_internal_info.wipe_special_filesystems to false). See Ironic Python Agent \
             documentation for more information.",
            self.what, self.device
        )
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether a GFS2 superblock starts at `offset` of `dev`.
fn gfs2_at(file: &File, offset: u64) -> bool {
    match read_at(file, offset + GFS2_SB_OFFSET, 32) {
        Ok(Some(sb)) => {
            be32(&sb, 0) == GFS2_MAGIC
                && be32(&sb, 4) == GFS2_METATYPE_SB
                && be32(&sb, 28) == GFS2_FORMAT_MULTI
        }
        _ => false,
    }
}

/// What a partition type marks as protected.
fn special_type(ptype: PartitionType) -> Option<&'static str> {
    match ptype {
        PartitionType::Gpt(g) if g == GPT_GPFS => Some("IBM GPFS Partition"),
        PartitionType::Gpt(g) if g == GPT_VMFS => Some("VMware VMFS Partition (GPT)"),
        PartitionType::Mbr(MBR_VMFS) => Some("VMware VMFS Partition (MBR)"),
        _ => None,
    }
}

/// Checks disk `dev`: every partition type of its table, and GFS2 at its start and at the
/// start of each partition. Unreadable tables are not an error (the device is checked for
/// GFS2 only).
///
/// # Errors
/// The first protected thing found.
pub fn check_disk(dev: &Path) -> Result<(), Protected> {
    let shown = dev.display().to_string();
    let found = |what: String| Protected {
        device: shown.clone(),
        what,
    };
    let partitions = match table::read_table(dev) {
        Ok(t) => t.map(|t| t.partitions).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(device = %shown, error = %e, "unreadable partition table; checking for GFS2 only");
            Vec::new()
        }
    };
    for p in &partitions {
        if let Some(what) = special_type(p.ptype) {
            return Err(found(format!(
                "{what} ({})",
                blockdev::partition_path(dev, p.number).display()
            )));
        }
    }
    let Ok(file) = File::open(dev) else {
        return Ok(());
    };
    if gfs2_at(&file, 0) {
        return Err(found("Red Hat Global File System 2".into()));
    }
    for p in partitions.iter().filter(|p| !p.is_extended()) {
        if gfs2_at(&file, p.start) {
            return Err(found(format!(
                "Red Hat Global File System 2 ({})",
                blockdev::partition_path(dev, p.number).display()
            )));
        }
    }
    Ok(())
}

/// Checks partition `part`, number `number` of `disk`: its type in the disk's table and GFS2
/// at its start.
///
/// # Errors
/// What was found.
pub fn check_partition(part: &Path, disk: &Path, number: u32) -> Result<(), Protected> {
    let found = |what: &str| Protected {
        device: part.display().to_string(),
        what: what.to_string(),
    };
    if let Ok(Some(t)) = table::read_table(disk)
        && let Some(what) = t.get(number).and_then(|p| special_type(p.ptype))
    {
        return Err(found(what));
    }
    if File::open(part).is_ok_and(|f| gfs2_at(&f, 0)) {
        return Err(found("Red Hat Global File System 2"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::disk::table::{PartitionKind, PartitionSpec, TableKind};

    fn spec(size_mib: u64) -> PartitionSpec {
        PartitionSpec {
            size_mib,
            kind: PartitionKind::Linux,
            name: String::new(),
            bootable: false,
        }
    }

    /// Changes the type of partition `n` of `img` with sfdisk (a GUID, or a hex MBR byte).
    fn set_type(img: &Path, n: u32, ty: &str) -> anyhow::Result<()> {
        let out = std::process::Command::new("sfdisk")
            .args(["--part-type"])
            .arg(img)
            .args([n.to_string(), ty.to_string()])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    #[test]
    fn partition_types_and_gfs2() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let img = dir.path().join("disk.img");
        File::create(&img)?.set_len(32 << 20)?;
        table::write_table(&img, TableKind::Gpt, &[spec(8), spec(8)])?;
        assert_eq!(check_disk(&img), Ok(()));

        set_type(&img, 2, &GPT_VMFS.to_string())?;
        let e = check_disk(&img).err();
        assert_eq!(
            e.as_ref().map(|p| p.what.as_str()),
            Some(format!("VMware VMFS Partition (GPT) ({}2)", img.display()).as_str())
        );
        assert!(
            e.map(|p| p.message())
                .unwrap_or_default()
                .contains("wipe_special_filesystems to false")
        );
        assert_eq!(
            check_partition(Path::new("/nonexistent/p2"), &img, 2).map_err(|p| p.what),
            Err("VMware VMFS Partition (GPT)".into())
        );
        assert_eq!(
            check_partition(Path::new("/nonexistent/p1"), &img, 1),
            Ok(())
        );
        set_type(&img, 2, &GPT_GPFS.to_string())?;
        assert!(check_disk(&img).is_err_and(|p| p.what.starts_with("IBM GPFS")));

        let mbr = dir.path().join("mbr.img");
        File::create(&mbr)?.set_len(32 << 20)?;
        table::write_table(&mbr, TableKind::Msdos, &[spec(8)])?;
        assert_eq!(check_disk(&mbr), Ok(()));
        set_type(&mbr, 1, "fb")?;
        assert!(check_disk(&mbr).is_err_and(|p| p.what.starts_with("VMware VMFS Partition (MBR)")));

        // A GFS2 superblock in partition 1 of the first disk.
        set_type(&img, 2, &table::GPT_LINUX_FS.to_string())?;
        let p1 = table::read_table(&img)?
            .and_then(|t| t.get(1).cloned())
            .ok_or_else(|| anyhow::anyhow!("p1"))?;
        let mut sb = [0u8; 32];
        sb[0..4].copy_from_slice(&GFS2_MAGIC.to_be_bytes());
        sb[4..8].copy_from_slice(&GFS2_METATYPE_SB.to_be_bytes());
        sb[24..28].copy_from_slice(&1801u32.to_be_bytes());
        sb[28..32].copy_from_slice(&GFS2_FORMAT_MULTI.to_be_bytes());
        File::options()
            .write(true)
            .open(&img)?
            .write_all_at(&sb, p1.start + GFS2_SB_OFFSET)?;
        assert!(
            check_disk(&img).is_err_and(|p| p.what.starts_with("Red Hat Global File System 2"))
        );
        Ok(())
    }
}
