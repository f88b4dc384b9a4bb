//! `create_configuration`: validate, choose member disks, partition them, build the arrays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hardware_managers::hints::{HintTarget, RootDeviceHints, SkipList};
use hardware_managers::{BlockDevice, HardwareError, HardwareResult, Node};
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::config::{self, Facts, Parsed, RaidConfig};
use super::layout::{self, Layout};
use super::{mdadm, raid_error};
use crate::devices::Devices;
use crate::disk::layout::{BootMode, make_filesystem};
use crate::disk::node_info;
use crate::disk::table::{self, TableKind};
use crate::disk::{DiskError, blockdev};
use crate::state::RaidState;

/// The disks software RAID may use: listed disks that are not arrays themselves and not
/// named by `properties.skip_block_devices`; with `allowed_only`, also within the
/// allow-list (the default member set). `physical_disks` hints match among all of them, so a
/// hint naming a protected disk gets the guard's refusal rather than "no match".
fn candidate_disks(
    devices: &Devices,
    node: &Node,
    allowed_only: bool,
) -> HardwareResult<Vec<BlockDevice>> {
    let guard = devices.guard();
    let disks = devices.list(false)?;
    Ok(crate::clean::without_skipped(node, disks)?
        .into_iter()
        .filter(|d| !is_array_name(&d.name))
        .filter(|d| !allowed_only || guard.is_allowed(Path::new(&d.name)))
        .collect())
}

fn is_array_name(name: &str) -> bool {
    Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("md"))
}

/// Parses and validates `raid_config` against this machine; `InvalidArgs` (a 400) naming
/// every problem.
pub(super) fn validate(
    devices: &Devices,
    node: &Node,
    raid_config: &Value,
) -> HardwareResult<Parsed> {
    let skip = SkipList::from_node(node)?;
    let facts = Facts {
        disk_count: candidate_disks(devices, node, true)?.len(),
        skip_list_names_volumes: !skip.raid_volume_names().is_empty(),
    };
    config::parse(raid_config, &facts).map_err(|e| {
        HardwareError::InvalidArgs(format!(
            "Could not validate Software RAID config for {}: {e}",
            node.uuid.as_deref().unwrap_or("this node")
        ))
    })
}

/// The member disks of each logical disk: one distinct disk per `physical_disks` hint, else
/// every candidate disk.
fn choose_members(
    config: &RaidConfig,
    allowed: &[BlockDevice],
    all: &[BlockDevice],
) -> HardwareResult<Vec<Vec<PathBuf>>> {
    let targets: Vec<HintTarget> = all.iter().map(HintTarget::from).collect();
    let mut out = Vec::new();
    for (i, ld) in config.logical_disks.iter().enumerate() {
        let Some(physical) = &ld.physical_disks else {
            out.push(allowed.iter().map(|d| PathBuf::from(&d.name)).collect());
            continue;
        };
        let mut chosen: Vec<PathBuf> = Vec::new();
        for hint in physical {
            let hints = RootDeviceHints::from_object(hint).map_err(|e| {
                HardwareError::InvalidArgs(format!("logical disk {}: physical_disks: {e}", i + 1))
            })?;
            let Some(hints) = hints else {
                return Err(HardwareError::InvalidArgs(format!(
                    "logical disk {}: an empty physical_disks entry matches nothing",
                    i + 1
                )));
            };
            let candidates: Vec<&HintTarget> =
                targets.iter().filter(|t| hints.matches(t)).collect();
            if candidates.is_empty() {
                return Err(raid_error(format!(
                    "logical disk {}: no disk matches physical_disks entry {hints}; disks: {}",
                    i + 1,
                    hints.explain(&targets)
                )));
            }
            match candidates
                .iter()
                .map(|t| PathBuf::from(&t.name))
                .find(|p| !chosen.contains(p))
            {
                Some(p) => chosen.push(p),
                None => {
                    return Err(raid_error(format!(
                        "logical disk {}: physical_disks entry {hints} matches only disks already \
                         chosen for it ({})",
                        i + 1,
                        chosen
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        out.push(chosen);
    }
    Ok(out)
}

/// `create_configuration` / the create half of `apply_configuration`. Returns the
/// configuration as given (Ironic stores it as the node's `raid_config`), `{}` when no logical
/// disk is software RAID.
pub(super) fn create(
    devices: &Devices,
    state: &RaidState,
    node: &Node,
    raid_config: &Value,
) -> HardwareResult<Value> {
    let config = match validate(devices, node, raid_config)? {
        Parsed::NotSoftware => {
            info!("no logical disk has controller software: nothing to create");
            return Ok(Value::Object(Map::new()));
        }
        Parsed::Software(c) => c,
    };
    let members = choose_members(
        &config,
        &candidate_disks(devices, node, true)?,
        &candidate_disks(devices, node, false)?,
    )?;
    let boot = node_info::boot_mode(node, Path::new("/sys/firmware/efi").is_dir());
    let table_kind = match boot {
        BootMode::Uefi => TableKind::Gpt,
        BootMode::Bios => node_info::disk_label(node, None).map_err(HardwareError::InvalidArgs)?,
    };

    // Everything is checked before the first write.
    let guard = devices.guard();
    let mut problems = Vec::new();
    let mut usable = BTreeMap::new();
    let mut all: Vec<PathBuf> = Vec::new();
    for d in members.iter().flatten() {
        if !all.contains(d) {
            all.push(d.clone());
        }
    }
    for disk in &all {
        if let Err(e) = guard.check_writable(disk) {
            problems.push(format!(
                "{e}; run delete_configuration first if it is an old array's member"
            ));
            continue;
        }
        match table::read_table(disk) {
            Ok(Some(t)) if !t.partitions.is_empty() => problems.push(format!(
                "{} has partitions ({}); erase it first (erase_devices_metadata or \
                 delete_configuration)",
                disk.display(),
                t.partitions.len()
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", disk.display())),
        }
        match table::usable_end_mib(disk, table_kind) {
            Ok(mib) => {
                usable.insert(disk.clone(), mib);
            }
            Err(e) => problems.push(format!("{}: {e}", disk.display())),
        }
    }
    for i in 0..config.logical_disks.len() {
        if Path::new(&format!("/sys/block/md{i}")).exists() {
            problems.push(format!(
                "/dev/md{i} already exists; run delete_configuration first"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(raid_error(format!(
            "Cannot create the software RAID: {}",
            problems.join("; ")
        )));
    }
    let plan = layout::plan(&config, &members, &usable, boot, table_kind)
        .map_err(|e| raid_error(format!("Cannot create the software RAID: {e}")))?;
    info!(?boot, table = %table_kind, disks = ?all, "creating software RAID");
    apply(&plan).map_err(|e| raid_error(format!("Failed to create the software RAID: {e}")))?;

    let root = config
        .logical_disks
        .iter()
        .position(|ld| ld.is_root_volume == Some(true))
        .or_else(|| {
            config
                .logical_disks
                .iter()
                .position(|ld| ld.is_root_volume != Some(false))
        })
        .map(|i| plan.arrays[i].device.clone());
    if let Some(r) = &root {
        info!(root = %r.display(), "software RAID root volume (the install device)");
    }
    state.set_root(root);
    Ok(raid_config.clone())
}

/// Writes the tables and creates the arrays of `plan`.
fn apply(plan: &Layout) -> Result<(), DiskError> {
    for d in &plan.disks {
        table::write_table_placed(&d.disk, d.table, &d.partitions)?;
        let numbers: Vec<u32> = (1..=d.partitions.len() as u32).collect();
        blockdev::reread_partitions(&d.disk, &numbers)?;
    }
    for a in &plan.arrays {
        wait_for_nodes(&a.members)?;
        info!(device = %a.device.display(), name = %a.name, level = %a.level, members = ?a.members, "creating md array");
        mdadm::create(&a.device, "1", a.level.mdadm_level(), &a.name, &a.members)?;
        re_add_missing(&a.device, &a.members)?;
    }
    if !plan.esp_members.is_empty() {
        wait_for_nodes(&plan.esp_members)?;
        let esp = mdadm::free_device(Path::new("/sys/block"), plan.arrays.len() as u32)?;
        info!(device = %esp.display(), members = ?plan.esp_members, "creating the mirrored EFI system partition");
        // Metadata 1.0 sits at the end, so firmware reads each half as a plain FAT ESP.
        mdadm::create(&esp, "1.0", "1", "esp", &plan.esp_members)?;
        wait_for_nodes(std::slice::from_ref(&esp))?;
        make_filesystem("vfat", &esp, "efi-part")?;
    }
    Ok(())
}

/// Adds members mdadm did not take (IPA does the same after `--create`).
fn re_add_missing(device: &Path, wanted: &[PathBuf]) -> Result<(), DiskError> {
    let actual = mdadm::detail_members(device)?;
    for m in wanted.iter().filter(|m| !actual.contains(m)) {
        warn!(array = %device.display(), member = %m.display(), "member missing from the new array; re-adding it");
        let mut last = None;
        for _ in 0..3 {
            match mdadm::add(device, m) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
    }
    Ok(())
}

/// Waits (up to 10 s) until every path exists as a block device.
fn wait_for_nodes(paths: &[PathBuf]) -> Result<(), DiskError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let missing: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| !blockdev::is_block_device(p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DiskError::Layout(format!(
                "device nodes did not appear: {}",
                missing
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
