//! `delete_configuration`: stop every software RAID array, erase the member superblocks and
//! the holder disks' partitions.
//!
//! Arrays named in `properties.skip_block_devices` (`{"volume_name": ...}`) are kept, and so
//! are the partition tables of their holder disks; other arrays on those disks only have their
//! contents wiped ("wipe"), as IPA does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hardware_managers::guard::DiskGuard;
use hardware_managers::hints::SkipList;
use hardware_managers::{HardwareResult, Node};
use tracing::{info, warn};

use super::mdadm::{self, Array};
use super::raid_error;
use crate::devices::Devices;
use crate::disk::{DiskError, cmd, wipe};
use crate::state::RaidState;

/// What happens to one array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Stop it and erase its superblocks and holder partitions.
    Delete,
    /// Wipe its contents, keep the array (it shares disks with a kept one).
    Wipe,
    /// Leave it alone (named in the skip list).
    Keep,
}

/// Deletes the software RAID configuration (two passes, then fails naming what is left).
pub(super) fn delete(devices: &Devices, state: &RaidState, node: &Node) -> HardwareResult<()> {
    let skip = SkipList::from_node(node)?;
    let keep_names: BTreeSet<String> = skip.raid_volume_names().iter().cloned().collect();
    let guard = devices.guard();
    let sys_block = Path::new("/sys/block");
    let mut errors = Vec::new();
    for pass in 1..=2 {
        mdadm::assemble_scan();
        let arrays = mdadm::arrays(sys_block);
        let actions = plan_actions(&arrays, &keep_names, &guard);
        if actions.iter().all(|(_, a)| *a != Action::Delete) {
            break;
        }
        info!(pass, arrays = ?arrays.iter().map(|a| &a.device).collect::<Vec<_>>(), "deleting software RAID");
        errors = run_pass(&arrays, &actions, &guard);
    }
    state.set_root(None);
    let left: Vec<String> = plan_actions(&mdadm::arrays(sys_block), &keep_names, &guard)
        .into_iter()
        .filter(|(_, a)| *a == Action::Delete)
        .map(|(d, _)| d.display().to_string())
        .collect();
    if !left.is_empty() || !errors.is_empty() {
        return Err(raid_error(format!(
            "Unable to clean all software RAID correctly. Remaining arrays: [{}]{}{}",
            left.join(", "),
            if errors.is_empty() { "" } else { "; errors: " },
            errors.join("; ")
        )));
    }
    Ok(())
}

/// The action per array: skip-listed names are kept; arrays sharing a holder disk with a kept
/// one are wiped; arrays on disks outside the allow-list are never touched (kept, with a
/// warning); the rest are deleted.
fn plan_actions(
    arrays: &[Array],
    keep_names: &BTreeSet<String>,
    guard: &DiskGuard,
) -> Vec<(PathBuf, Action)> {
    let holders = |a: &Array| -> BTreeSet<PathBuf> {
        a.members.iter().map(|m| mdadm::holder_disk(m)).collect()
    };
    let mut kept_disks = BTreeSet::new();
    let mut actions: Vec<(PathBuf, Action)> = arrays
        .iter()
        .map(|a| {
            let keep = !keep_names.is_empty()
                && mdadm::name(&a.device).is_some_and(|n| keep_names.contains(&n));
            if keep {
                info!(array = %a.device.display(), "kept: its volume name is in properties.skip_block_devices");
                kept_disks.extend(holders(a));
                (a.device.clone(), Action::Keep)
            } else if !guard.is_allowed(&a.device) {
                warn!(array = %a.device.display(), "not touching an array built on disks outside the --allow-device list");
                (a.device.clone(), Action::Keep)
            } else {
                (a.device.clone(), Action::Delete)
            }
        })
        .collect();
    for ((_, action), a) in actions.iter_mut().zip(arrays) {
        if *action == Action::Delete && holders(a).iter().any(|h| kept_disks.contains(h)) {
            *action = Action::Wipe;
        }
    }
    actions
}

/// One deletion pass; returns the errors met (the next pass retries).
fn run_pass(arrays: &[Array], actions: &[(PathBuf, Action)], guard: &DiskGuard) -> Vec<String> {
    let mut errors = Vec::new();
    let mut holder_disks: BTreeSet<PathBuf> = BTreeSet::new();
    let mut protected_disks: BTreeSet<PathBuf> = BTreeSet::new();
    for (a, (_, action)) in arrays.iter().zip(actions) {
        let holders: Vec<PathBuf> = a.members.iter().map(|m| mdadm::holder_disk(m)).collect();
        match action {
            Action::Keep => protected_disks.extend(holders),
            Action::Wipe => {
                protected_disks.extend(holders);
                info!(array = %a.device.display(), "wiping the contents of an array that shares disks with a kept one");
                if let Err(e) = wipefs(&a.device) {
                    errors.push(format!("{}: {e}", a.device.display()));
                }
            }
            Action::Delete => {
                if a.members.is_empty() {
                    // A partition of an array or a broken array: goes with its holder.
                    info!(array = %a.device.display(), "no members; skipping");
                    continue;
                }
                holder_disks.extend(holders);
                if let Err(e) = guard.check_writable(&a.device) {
                    errors.push(e.to_string());
                    continue;
                }
                if let Err(e) = delete_array(a) {
                    errors.push(format!("{}: {e}", a.device.display()));
                }
            }
        }
    }
    for disk in holder_disks.difference(&protected_disks) {
        // Superblocks on partitions that are not members of a running array (degraded
        // leftovers) go too.
        if let Err(e) = guard.check_writable(disk) {
            errors.push(e.to_string());
            continue;
        }
        for part in partitions_of(disk) {
            if mdadm::has_superblock(&part)
                && let Err(e) = mdadm::zero_superblock(&part)
            {
                errors.push(format!("{}: {e}", part.display()));
            }
        }
        match wipe::erase_metadata(disk) {
            Ok(_) => info!(disk = %disk.display(), "holder disk erased"),
            Err(e) => errors.push(format!("{}: {e}", disk.display())),
        }
    }
    errors
}

/// Wipes the array's signatures, stops it and zeroes its members' superblocks.
fn delete_array(a: &Array) -> Result<(), DiskError> {
    info!(array = %a.device.display(), members = ?a.members, "deleting md array");
    if let Err(e) = wipefs(&a.device) {
        warn!(array = %a.device.display(), error = %e, "wipefs on the array failed; stopping it anyway");
    }
    mdadm::stop(&a.device)?;
    for m in &a.members {
        mdadm::zero_superblock(m)?;
    }
    Ok(())
}

fn wipefs(dev: &Path) -> Result<(), DiskError> {
    cmd::run("wipefs", ["-af".as_ref(), dev.as_os_str()]).map(drop)
}

/// The partition nodes of `disk`, from sysfs.
fn partitions_of(disk: &Path) -> Vec<PathBuf> {
    let Some(name) = disk.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let dir = Path::new("/sys/block").join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut parts: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("partition").is_file())
        .map(|e| Path::new("/dev").join(e.file_name()))
        .collect();
    parts.sort();
    parts
}
