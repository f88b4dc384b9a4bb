//! The result of `standby.get_partition_uuids`, typed, serialising to exactly
//! IPA's keys.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::blockdev::{self, partition_number};
use super::layout::PartitionMap;
use super::{DiskError, mbr, probe, table};

/// Whole-disk image: the MBR disk signature as `0x%08x` (`0x00000000` on most GPT disks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WholeDiskUuids {
    /// `"root uuid"`.
    #[serde(rename = "root uuid")]
    pub root_uuid: String,
}

/// The partition nodes of a partition-image deploy, under IPA's names; absent ones are omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPaths {
    /// `"efi system partition"`.
    #[serde(
        rename = "efi system partition",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub efi_system_partition: Option<String>,
    /// `"BIOS Boot partition"`.
    #[serde(
        rename = "BIOS Boot partition",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub bios_boot: Option<String>,
    /// `"PReP Boot partition"`.
    #[serde(
        rename = "PReP Boot partition",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub prep: Option<String>,
    /// `"ephemeral"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ephemeral: Option<String>,
    /// `"swap"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub swap: Option<String>,
    /// `"configdrive"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub configdrive: Option<String>,
    /// `"root"`.
    pub root: String,
}

/// Partition image: root filesystem UUID (PARTUUID when it has none), the ESP's vfat UUID or
/// null, the PReP partition's PARTUUID when there is one, and the partition nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImageUuids {
    /// `"root uuid"`.
    #[serde(rename = "root uuid")]
    pub root_uuid: String,
    /// `"efi system partition uuid"` (null without an ESP).
    #[serde(rename = "efi system partition uuid")]
    pub efi_system_partition_uuid: Option<String>,
    /// `"PReP Boot partition uuid"`, only with a PReP partition.
    #[serde(
        rename = "PReP Boot partition uuid",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub prep_boot_partition_uuid: Option<String>,
    /// `"partitions"`.
    pub partitions: PartitionPaths,
}

/// Every shape `get_partition_uuids` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PartitionUuids {
    /// Before any `prepare_image`: `{}`.
    Empty(serde_json::Map<String, serde_json::Value>),
    /// After a whole-disk image.
    WholeDisk(WholeDiskUuids),
    /// After a partition image.
    PartitionImage(PartitionImageUuids),
}

impl Default for PartitionUuids {
    fn default() -> Self {
        PartitionUuids::Empty(serde_json::Map::new())
    }
}

/// `{"root uuid": "0x…"}` for a whole-disk image on `disk` (IPA reads the 4 bytes at 440).
pub fn whole_disk_uuids(disk: &Path) -> Result<WholeDiskUuids, DiskError> {
    blockdev::flush(disk)?;
    Ok(WholeDiskUuids {
        root_uuid: format!("0x{:08x}", mbr::disk_signature(disk)?),
    })
}

/// Identifiers of one partition: its filesystem UUID and its PARTUUID.
fn partition_ids(
    disk: &Path,
    table: Option<&table::PartitionTable>,
    node: &Path,
) -> Result<(Option<String>, Option<String>), DiskError> {
    let entry = partition_number(disk, node).and_then(|n| table.and_then(|t| t.get(n)));
    let fs_uuid = if blockdev::is_block_device(node) {
        blockdev::flush(node)?;
        probe::probe(node)?.and_then(|p| p.uuid)
    } else if let Some(e) = entry {
        probe::probe_range(disk, e.start, e.size)?.and_then(|p| p.uuid)
    } else {
        None
    };
    Ok((fs_uuid, entry.map(|e| e.partuuid.clone())))
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// The partition-image result for `map` on `disk`, after the root image was written.
pub fn partition_image_uuids(
    disk: &Path,
    map: &PartitionMap,
) -> Result<PartitionImageUuids, DiskError> {
    blockdev::flush(disk)?;
    let table = table::read_table(disk)?;
    let (root_fs, root_part) = partition_ids(disk, table.as_ref(), &map.root)?;
    let root_uuid = root_fs.or(root_part).ok_or_else(|| {
        DiskError::table(
            disk,
            format!("no UUID or PARTUUID for {}", map.root.display()),
        )
    })?;
    let efi_system_partition_uuid = match &map.efi_system_partition {
        Some(esp) => partition_ids(disk, table.as_ref(), esp)?.0,
        None => None,
    };
    let prep_boot_partition_uuid = match &map.prep {
        Some(prep) => {
            let (fs, part) = partition_ids(disk, table.as_ref(), prep)?;
            fs.or(part)
        }
        None => None,
    };
    Ok(PartitionImageUuids {
        root_uuid,
        efi_system_partition_uuid,
        prep_boot_partition_uuid,
        partitions: PartitionPaths {
            efi_system_partition: map.efi_system_partition.as_deref().map(show),
            bios_boot: map.bios_boot.as_deref().map(show),
            prep: map.prep.as_deref().map(show),
            ephemeral: map.ephemeral.as_deref().map(show),
            swap: map.swap.as_deref().map(show),
            configdrive: map.configdrive.as_deref().map(show),
            root: show(&map.root),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use serde_json::json;

    use super::*;

    #[test]
    fn empty_shape() -> anyhow::Result<()> {
        assert_eq!(serde_json::to_value(PartitionUuids::default())?, json!({}));
        Ok(())
    }

    #[test]
    fn whole_disk_shape_and_signature() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("d");
        let f = std::fs::File::create(&p)?;
        f.set_len(1 << 20)?;
        f.write_all_at(&0x1a2b_3c4du32.to_le_bytes(), 440)?;
        let u = whole_disk_uuids(&p)?;
        assert_eq!(
            serde_json::to_value(PartitionUuids::WholeDisk(u))?,
            json!({"root uuid": "0x1a2b3c4d"})
        );
        f.write_all_at(&[0u8; 4], 440)?;
        assert_eq!(whole_disk_uuids(&p)?.root_uuid, "0x00000000");
        Ok(())
    }

    #[test]
    fn partition_image_shape_keys_and_order() -> anyhow::Result<()> {
        let u = PartitionImageUuids {
            root_uuid: "r".into(),
            efi_system_partition_uuid: None,
            prep_boot_partition_uuid: None,
            partitions: PartitionPaths {
                swap: Some("/dev/sda2".into()),
                root: "/dev/sda3".into(),
                bios_boot: Some("/dev/sda1".into()),
                ..Default::default()
            },
        };
        let text = serde_json::to_string(&PartitionUuids::PartitionImage(u))?;
        assert_eq!(
            text,
            r#"{"root uuid":"r","efi system partition uuid":null,"partitions":{"BIOS Boot partition":"/dev/sda1","swap":"/dev/sda2","root":"/dev/sda3"}}"#
        );
        let full = PartitionImageUuids {
            root_uuid: "r".into(),
            efi_system_partition_uuid: Some("1234-ABCD".into()),
            prep_boot_partition_uuid: Some("p".into()),
            partitions: PartitionPaths {
                efi_system_partition: Some("a".into()),
                bios_boot: Some("b".into()),
                prep: Some("c".into()),
                ephemeral: Some("d".into()),
                swap: Some("e".into()),
                configdrive: Some("f".into()),
                root: "g".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&full)?,
            json!({
                "root uuid": "r",
                "efi system partition uuid": "1234-ABCD",
                "PReP Boot partition uuid": "p",
                "partitions": {
                    "efi system partition": "a", "BIOS Boot partition": "b",
                    "PReP Boot partition": "c", "ephemeral": "d", "swap": "e",
                    "configdrive": "f", "root": "g"
                }
            })
        );
        Ok(())
    }
}
