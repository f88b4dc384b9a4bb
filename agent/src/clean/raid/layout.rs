//! Where each RAID member partition goes: IPA's layout, computed before any disk is touched.
//!
//! Every member disk gets a fresh table (GPT under UEFI, else the node's `disk_label`,
//! msdos by default). The RAID partitions start after a boot area — 551 MiB under UEFI (room
//! for the 550 MiB ESP mirror), 8 MiB for BIOS on GPT (room for the BIOS boot partition), 1 MiB
//! on msdos — in logical-disk order with the `MAX` disk last. They are numbered from 1 in that
//! order, so `md0` sits on partition 1 as with IPA; the boot partition (ESP or BIOS boot) is
//! placed in the boot area and numbered after them. Sizes are exact: `size_gb` GiB each
//! (IPA's parted call makes the first one smaller by the boot area).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{RaidConfig, RaidLevel, Size};
use crate::disk::blockdev::partition_path;
use crate::disk::layout::BootMode;
use crate::disk::table::{PartitionKind, PartitionSpec, PlacedPartition, TableKind};

/// The size of each half of the mirrored ESP (IPA's and DIB's 550 MiB).
pub const ESP_MIB: u64 = 550;
/// The size of a BIOS boot partition.
pub const BIOS_BOOT_MIB: u64 = 2;
/// The smallest `MAX` partition worth building an array on.
const MIN_MAX_MIB: u64 = 64;

/// The partition table of one member disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    /// The disk.
    pub disk: PathBuf,
    /// Its new table type.
    pub table: TableKind,
    /// The partitions in number order.
    pub partitions: Vec<PlacedPartition>,
    /// `(logical disk index, partition number)` of each RAID member partition.
    pub raid_partitions: Vec<(usize, u32)>,
    /// The number of the ESP / BIOS boot partition, when there is one.
    pub boot_partition: Option<u32>,
}

/// One array to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayLayout {
    /// Index of its logical disk in the configuration.
    pub index: usize,
    /// `/dev/md<index>`.
    pub device: PathBuf,
    /// `volume_name`, else `md<index>`.
    pub name: String,
    /// RAID level.
    pub level: RaidLevel,
    /// Member partitions in member-disk order.
    pub members: Vec<PathBuf>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// One entry per member disk, in first-use order.
    pub disks: Vec<DiskLayout>,
    /// The data arrays in logical-disk order.
    pub arrays: Vec<ArrayLayout>,
    /// The ESP partitions to mirror (UEFI only).
    pub esp_members: Vec<PathBuf>,
}

/// Plans the partitions and arrays. `members[i]` are the disks of logical disk `i`;
/// `usable_mib` is each disk's last usable MiB for the chosen table type.
pub fn plan(
    config: &RaidConfig,
    members: &[Vec<PathBuf>],
    usable_mib: &BTreeMap<PathBuf, u64>,
    boot: BootMode,
    table: TableKind,
) -> Result<Layout, String> {
    let (boot_kind, boot_mib, first_mib) = match (boot, table) {
        (BootMode::Uefi, _) => (Some(PartitionKind::Esp), ESP_MIB, ESP_MIB + 1),
        (BootMode::Bios, TableKind::Gpt) => (Some(PartitionKind::BiosBoot), BIOS_BOOT_MIB, 8),
        (BootMode::Bios, TableKind::Msdos) => (None, 0, 1),
    };
    // Disks in first-use order.
    let mut disks: Vec<PathBuf> = Vec::new();
    for d in members.iter().flatten() {
        if !disks.contains(d) {
            disks.push(d.clone());
        }
    }
    // MAX last, as IPA orders them.
    let mut order: Vec<usize> = (0..config.logical_disks.len())
        .filter(|i| config.logical_disks[*i].size != Size::Max)
        .collect();
    order.extend(
        (0..config.logical_disks.len()).filter(|i| config.logical_disks[*i].size == Size::Max),
    );

    let mut errors = Vec::new();
    let mut layouts = Vec::new();
    for disk in &disks {
        let Some(&usable) = usable_mib.get(disk) else {
            errors.push(format!("{}: size unknown", disk.display()));
            continue;
        };
        let mut cursor = first_mib;
        let mut partitions = Vec::new();
        let mut raid_partitions = Vec::new();
        for &i in order.iter().filter(|i| members[**i].contains(disk)) {
            let ld = &config.logical_disks[i];
            let name = volume_name(config, i);
            let size_mib = match ld.size {
                Size::Gib(g) => g.saturating_mul(1024),
                Size::Max => usable.saturating_sub(cursor),
            };
            if cursor.saturating_add(size_mib) > usable
                || (ld.size == Size::Max && size_mib < MIN_MAX_MIB)
            {
                errors.push(format!(
                    "logical disk {} ({}) does not fit on {}: it would start at {cursor} MiB \
                     and the disk has {usable} MiB usable",
                    i + 1,
                    match ld.size {
                        Size::Gib(g) => format!("{g} GiB"),
                        Size::Max => format!("MAX, at least {MIN_MAX_MIB} MiB"),
                    },
                    disk.display()
                ));
                break;
            }
            partitions.push(PlacedPartition {
                start_mib: cursor,
                spec: PartitionSpec {
                    size_mib,
                    kind: PartitionKind::LinuxRaid,
                    name: format!("raid-{name}"),
                    bootable: false,
                },
            });
            raid_partitions.push((i, partitions.len() as u32));
            cursor += size_mib;
        }
        let boot_partition = boot_kind.map(|kind| {
            let n = layouts.len();
            partitions.push(PlacedPartition {
                start_mib: 1,
                spec: PartitionSpec {
                    size_mib: boot_mib,
                    kind,
                    name: match kind {
                        PartitionKind::Esp => format!("uefi-holder-{n}"),
                        _ => format!("bios-boot-part-{n}"),
                    },
                    bootable: false,
                },
            });
            partitions.len() as u32
        });
        layouts.push(DiskLayout {
            disk: disk.clone(),
            table,
            partitions,
            raid_partitions,
            boot_partition,
        });
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let arrays = (0..config.logical_disks.len())
        .map(|i| ArrayLayout {
            index: i,
            device: PathBuf::from(format!("/dev/md{i}")),
            name: volume_name(config, i),
            level: config.logical_disks[i].level,
            members: members[i]
                .iter()
                .filter_map(|d| {
                    let l = layouts.iter().find(|l| &l.disk == d)?;
                    let (_, n) = l.raid_partitions.iter().find(|(j, _)| *j == i)?;
                    Some(partition_path(d, *n))
                })
                .collect(),
        })
        .collect();
    let esp_members = if boot == BootMode::Uefi {
        layouts
            .iter()
            .filter_map(|l| l.boot_partition.map(|n| partition_path(&l.disk, n)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Layout {
        disks: layouts,
        arrays,
        esp_members,
    })
}

/// `volume_name` of logical disk `i`, else `md<i>`.
pub fn volume_name(config: &RaidConfig, i: usize) -> String {
    config.logical_disks[i]
        .volume_name
        .clone()
        .unwrap_or_else(|| format!("md{i}"))
}

/// Whether `disk` is one of `layout`'s member disks.
pub fn uses(layout: &Layout, disk: &Path) -> bool {
    layout.disks.iter().any(|d| d.disk == disk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::raid::config::{Facts, Parsed, parse};
    use serde_json::json;

    fn config(v: serde_json::Value) -> RaidConfig {
        match parse(
            &v,
            &Facts {
                disk_count: 3,
                skip_list_names_volumes: false,
            },
        ) {
            Ok(Parsed::Software(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    fn two_disks() -> (Vec<PathBuf>, BTreeMap<PathBuf, u64>) {
        let disks = vec![PathBuf::from("/dev/vda"), PathBuf::from("/dev/nvme0n1")];
        let usable = disks.iter().map(|d| (d.clone(), 6143)).collect();
        (disks, usable)
    }

    #[test]
    fn uefi_raid1_plus_raid0_matches_ipa_layout() -> Result<(), String> {
        let c = config(json!({"logical_disks": [
            {"size_gb": 4, "raid_level": "1", "controller": "software", "volume_name": "root"},
            {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]}));
        let (disks, usable) = two_disks();
        let l = plan(
            &c,
            &[disks.clone(), disks.clone()],
            &usable,
            BootMode::Uefi,
            TableKind::Gpt,
        )?;
        assert_eq!(l.disks.len(), 2);
        let d = &l.disks[1];
        assert_eq!(d.disk, PathBuf::from("/dev/nvme0n1"));
        let spans: Vec<(u64, u64, PartitionKind)> = d
            .partitions
            .iter()
            .map(|p| (p.start_mib, p.spec.size_mib, p.spec.kind))
            .collect();
        assert_eq!(
            spans,
            vec![
                (551, 4096, PartitionKind::LinuxRaid),
                (4647, 6143 - 4647, PartitionKind::LinuxRaid),
                (1, 550, PartitionKind::Esp),
            ]
        );
        assert_eq!(d.partitions[2].spec.name, "uefi-holder-1");
        assert_eq!(d.boot_partition, Some(3));
        assert_eq!(l.arrays[0].device, PathBuf::from("/dev/md0"));
        assert_eq!(l.arrays[0].name, "root");
        assert_eq!(
            l.arrays[0].members,
            vec![PathBuf::from("/dev/vda1"), PathBuf::from("/dev/nvme0n1p1")]
        );
        assert_eq!(l.arrays[1].name, "md1");
        assert_eq!(
            l.arrays[1].members,
            vec![PathBuf::from("/dev/vda2"), PathBuf::from("/dev/nvme0n1p2")]
        );
        assert_eq!(
            l.esp_members,
            vec![PathBuf::from("/dev/vda3"), PathBuf::from("/dev/nvme0n1p3")]
        );
        Ok(())
    }

    #[test]
    fn max_first_is_placed_last_but_keeps_md0() -> Result<(), String> {
        let c = config(json!({"logical_disks": [
            {"size_gb": "MAX", "raid_level": "1", "controller": "software"},
            {"size_gb": 1, "raid_level": "0", "controller": "software"}]}));
        let (disks, usable) = two_disks();
        let l = plan(
            &c,
            &[disks.clone(), disks],
            &usable,
            BootMode::Bios,
            TableKind::Msdos,
        )?;
        let d = &l.disks[0];
        assert_eq!(d.raid_partitions, vec![(1, 1), (0, 2)]);
        assert_eq!(d.partitions[0].start_mib, 1);
        assert_eq!(d.boot_partition, None);
        assert_eq!(l.arrays[0].members[0], PathBuf::from("/dev/vda2"));
        assert!(l.esp_members.is_empty());
        Ok(())
    }

    #[test]
    fn bios_gpt_gets_bios_boot_partitions() -> Result<(), String> {
        let c = config(json!({"logical_disks": [
            {"size_gb": 2, "raid_level": "1", "controller": "software"}]}));
        let (disks, usable) = two_disks();
        let l = plan(&c, &[disks], &usable, BootMode::Bios, TableKind::Gpt)?;
        let d = &l.disks[0];
        assert_eq!(d.partitions[0].start_mib, 8);
        assert_eq!(d.partitions[1].spec.kind, PartitionKind::BiosBoot);
        assert_eq!(
            (d.partitions[1].start_mib, d.partitions[1].spec.size_mib),
            (1, 2)
        );
        Ok(())
    }

    #[test]
    fn too_big_is_refused_with_the_numbers() {
        let c = config(json!({"logical_disks": [
            {"size_gb": 6, "raid_level": "1", "controller": "software"},
            {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]}));
        let (disks, usable) = two_disks();
        let e = plan(
            &c,
            &[disks.clone(), disks],
            &usable,
            BootMode::Uefi,
            TableKind::Gpt,
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("logical disk 1 (6 GiB) does not fit on /dev/vda: it would start at 551 MiB and the disk has 6143 MiB usable"),
            "{e}"
        );
    }
}
