//! Cleaning and servicing steps the agent implements for the generic manager: disk erasure
//! (`erase`), burn-in (`burnin`), software RAID (`raid`), the kernel pstore (`pstore`) and
//! UEFI boot entries (`nvram`). Each module lists its own steps
//! with [`Step`] metadata and runs them; `deploy::steps` offers them under the
//! `GenericHardwareManager` name.

pub mod burnin;
pub mod erase;
pub mod nvram;
pub mod pstore;
pub mod raid;
#[cfg(test)]
pub(crate) mod testing;

use std::path::Path;

use hardware_managers::hints::{HintTarget, SkipList};
use hardware_managers::{BlockDevice, HardwareResult, Node, Step};
use tracing::info;

use crate::disk::blockdev;

/// A step on the `deploy` interface (where IPA puts erase and burn-in steps).
pub(crate) fn deploy_step(name: &str, priority: i64, abortable: bool) -> Step {
    let mut s = Step::new(name, "deploy", priority);
    if abortable {
        s.abortable = Some(true);
    }
    s
}

/// `devices` minus those `properties.skip_block_devices` names (with the partitions of a
/// named disk, and software RAID volumes named by `volume_name`).
///
/// # Errors
/// `InvalidArgs` for a malformed skip list.
pub fn without_skipped(node: &Node, devices: Vec<BlockDevice>) -> HardwareResult<Vec<BlockDevice>> {
    let skip = SkipList::from_node(node)?;
    let mut skipped: Vec<String> = devices
        .iter()
        .filter(|d| skip.matching_entry(&HintTarget::from(*d)).is_some())
        .map(|d| d.name.clone())
        .collect();
    // RAID volumes to keep: /dev/md/<volume_name> names the array.
    for volume in skip.raid_volume_names() {
        if let Ok(md) = std::fs::canonicalize(Path::new("/dev/md").join(volume)) {
            skipped.push(md.display().to_string());
        }
    }
    Ok(devices
        .into_iter()
        .filter(|d| {
            let hit = skipped.iter().find(|s| {
                **s == d.name
                    || blockdev::partition_number(Path::new(s.as_str()), Path::new(&d.name))
                        .is_some()
            });
            if let Some(s) = hit {
                info!(device = %d.name, skip_entry = %s, "skipped: listed in properties.skip_block_devices");
            }
            hit.is_none()
        })
        .collect())
}
