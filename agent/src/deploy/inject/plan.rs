//! Finding the partition of every item before anything is written: by number on the install
//! disk, by device path, or by mounting each partition read-only until one holds the path's
//! first directory.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use hardware_managers::{HardwareError, HardwareResult, IpaClass};
use tracing::{debug, info, warn};

use super::mount::Mounted;
use super::validate::{FileSpec, PartitionRef};
use super::walker::{Walker, open_root};
use super::{Environment, failed, guard_error};
use crate::disk::{blockdev, probe, table};

/// Filesystem types never mounted while looking for a path.
pub(super) const SKIPPED_FILESYSTEMS: &[&str] =
    &["LVM2_member", "swap", "crypto_LUKS", "linux_raid_member"];

/// The install device and its partition table, looked up once.
pub(super) struct RootDisk {
    pub(super) device: PathBuf,
    pub(super) table: table::PartitionTable,
}

pub(super) fn root_disk(env: &Environment<'_>) -> HardwareResult<RootDisk> {
    let device = (env.root_device)()?;
    env.guard.check_writable(&device).map_err(guard_error)?;
    let table = table::read_table(&device)
        .map_err(|e| failed(IpaClass::DeploymentError, e.to_string()))?
        .ok_or_else(|| {
            HardwareError::DeviceNotFound(format!(
                "{} has no partition table, so no partition can hold the files",
                device.display()
            ))
        })?;
    let numbers = table.data_numbers();
    let missing = numbers
        .iter()
        .any(|n| !blockdev::is_block_device(&blockdev::partition_path(&device, *n)));
    if missing {
        blockdev::reread_partitions(&device, &numbers)
            .map_err(|e| failed(IpaClass::DeploymentError, e.to_string()))?;
    }
    Ok(RootDisk { device, table })
}

/// The disk a device belongs to: its parent for a partition, else the device itself.
pub(super) fn disk_of(device: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let Some(name) = canonical.file_name() else {
        return canonical;
    };
    let sys = Path::new("/sys/class/block").join(name);
    if sys.join("partition").is_file()
        && let Ok(real) = std::fs::canonicalize(&sys)
        && let Some(parent) = real.parent().and_then(Path::file_name)
    {
        return Path::new("/dev").join(parent);
    }
    canonical
}

/// The device of every item, found before anything is written.
pub(super) fn plan(files: &[FileSpec], env: &Environment<'_>) -> HardwareResult<Vec<PathBuf>> {
    let mut root: Option<RootDisk> = None;
    let mut devices: Vec<Option<PathBuf>> = vec![None; files.len()];
    let mut search = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match &f.partition {
            Some(PartitionRef::Number(n)) => {
                if root.is_none() {
                    root = Some(root_disk(env)?);
                }
                let Some(r) = root.as_ref() else { continue };
                match r.table.get(*n) {
                    Some(p) if !p.is_extended() => {
                        devices[i] = Some(blockdev::partition_path(&r.device, *n));
                    }
                    Some(_) => {
                        return Err(HardwareError::InvalidArgs(format!(
                            "{}: partition {n} of {} is an extended partition and holds no filesystem",
                            f.describe(),
                            r.device.display()
                        )));
                    }
                    None => {
                        let have: Vec<String> =
                            r.table.numbers().iter().map(u32::to_string).collect();
                        return Err(HardwareError::DeviceNotFound(format!(
                            "{}: partition {n} does not exist on {} (partitions: {})",
                            f.describe(),
                            r.device.display(),
                            have.join(", ")
                        )));
                    }
                }
            }
            Some(PartitionRef::Device(p)) => {
                if !blockdev::is_block_device(p) {
                    return Err(HardwareError::DeviceNotFound(format!(
                        "{}: {} is not a block device",
                        f.describe(),
                        p.display()
                    )));
                }
                let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                env.guard
                    .check_writable(&disk_of(&canonical))
                    .map_err(guard_error)?;
                devices[i] = Some(canonical);
            }
            None => search.push(i),
        }
    }
    if !search.is_empty() {
        if root.is_none() {
            root = Some(root_disk(env)?);
        }
        if let Some(r) = root.as_ref() {
            find_partitions(files, &search, r, &mut devices)?;
        }
    }
    devices
        .into_iter()
        .zip(files)
        .map(|(d, f)| {
            d.ok_or_else(|| {
                HardwareError::DeviceNotFound(format!("no partition found for {}", f.describe()))
            })
        })
        .collect()
}

/// Mounts each partition of the install disk read-only in turn until every searched item's
/// first path component is found as a directory on one.
pub(super) fn find_partitions(
    files: &[FileSpec],
    search: &[usize],
    root: &RootDisk,
    devices: &mut [Option<PathBuf>],
) -> HardwareResult<()> {
    let mut scanned = Vec::new();
    for part in &root.table.partitions {
        if search.iter().all(|i| devices[*i].is_some()) {
            break;
        }
        if part.is_extended() {
            continue;
        }
        let dev = blockdev::partition_path(&root.device, part.number);
        let fstype = match probe::probe(&dev) {
            Ok(Some(p)) if SKIPPED_FILESYSTEMS.contains(&p.fstype) => {
                debug!(partition = %dev.display(), fstype = p.fstype, "skipping partition");
                scanned.push(format!("{} ({}, skipped)", dev.display(), p.fstype));
                continue;
            }
            Ok(Some(p)) => p.fstype,
            Ok(None) => "unknown",
            Err(e) => {
                warn!(partition = %dev.display(), error = %e, "cannot inspect partition");
                scanned.push(format!("{} (unreadable)", dev.display()));
                continue;
            }
        };
        let mounted = match Mounted::new(&dev, false) {
            Ok(m) => m,
            Err(e) => {
                warn!(partition = %dev.display(), error = %e, "failure when inspecting partition");
                scanned.push(format!("{} ({fstype}, not mountable)", dev.display()));
                continue;
            }
        };
        scanned.push(format!("{} ({fstype})", dev.display()));
        let root_dir = match open_root(&mounted.dir) {
            Ok(d) => d,
            Err(e) => {
                warn!(partition = %dev.display(), error = %e, "cannot open the mounted partition");
                continue;
            }
        };
        for &i in search {
            if devices[i].is_some() {
                continue;
            }
            let Some(first) = files[i].components.first() else {
                continue;
            };
            let mut walker = Walker::new(root_dir.as_fd());
            match walker.walk([first.as_bytes().to_vec()], None) {
                Ok(true) => {
                    info!(path = %files[i].path, partition = %dev.display(), "found /{first}");
                    devices[i] = Some(dev.clone());
                }
                Ok(false) => {}
                Err(e) => debug!(partition = %dev.display(), error = %e, "not usable"),
            }
        }
        drop(root_dir);
        drop(mounted);
    }
    let missing: Vec<String> = search
        .iter()
        .filter(|i| devices[**i].is_none())
        .map(|i| {
            let first = files[*i]
                .components
                .first()
                .map(String::as_str)
                .unwrap_or("");
            format!("/{first} (for {})", files[*i].describe())
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HardwareError::DeviceNotFound(format!(
            "No partition found with path {} on {}, scanned: {}",
            missing.join(", "),
            root.device.display(),
            if scanned.is_empty() {
                "nothing".to_string()
            } else {
                scanned.join(", ")
            }
        )))
    }
}
