//! `erase_devices_metadata` and `erase_devices_express`: the devices IPA calls erasable
//! (partitions included, vmedia, RAID members and read-only devices left out), each wiped of
//! its partition table and signatures — or, for express, NVMe-formatted where that applies.
//!
//! A disk's metadata wipe ([`wipe::erase_metadata`]) also zeroes the signatures inside each of
//! its partitions (found through its table), so a partition whose disk is wiped needs no pass
//! of its own; a partition is wiped on its own only when its disk is left alone (e.g. the disk
//! is skipped because another partition is a RAID member, as IPA would do it).

use std::path::Path;

use hardware_managers::{BlockDevice, HardwareResult};
use serde_json::Value;
use tracing::{debug, error, info};

use super::report::{self, Failure};
use super::select::{Admission, ReadOnly};
use super::{Eraser, is_nvme, nvme, protect};
use crate::disk::{blockdev, wipe};

/// A device to wipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// Its path.
    pub dev: String,
    /// For a partition: its disk and number.
    pub partition_of: Option<(String, u32)>,
}

/// The disk of partition `dev` among `devices`, with the partition number.
fn disk_of(dev: &str, devices: &[BlockDevice]) -> Option<(String, u32)> {
    devices.iter().find_map(|d| {
        blockdev::partition_number(Path::new(&d.name), Path::new(dev)).map(|n| (d.name.clone(), n))
    })
}

/// The last path component (`sda` of `/dev/sda`).
fn base(dev: &str) -> &str {
    dev.rsplit('/').next().unwrap_or(dev)
}

impl Eraser<'_> {
    /// IPA's `_list_erasable_devices` plus the guard: the devices to wipe, sorted by name
    /// descending (partitions before their disk), and the devices that must fail.
    pub(super) fn erasable(&self, devices: &[BlockDevice]) -> (Vec<Target>, Vec<Failure>) {
        let mut failures = Vec::new();
        let mut disks = Vec::new();
        let mut partitions = Vec::new();
        for d in devices {
            match disk_of(&d.name, devices) {
                Some(p) => partitions.push((d.name.clone(), p)),
                None => disks.push(d.name.clone()),
            }
        }
        let mut targets = Vec::new();
        for disk in &disks {
            match self.selector.admit(disk, None, ReadOnly::Skip) {
                Ok(Admission::Erase) => targets.push(Target {
                    dev: disk.clone(),
                    partition_of: None,
                }),
                Ok(Admission::Skip(_)) => {}
                Err(e) => failures.push(Failure::new(disk, e)),
            }
        }
        for (part, (disk, number)) in partitions {
            if targets.iter().any(|t| t.dev == disk) {
                debug!(partition = %part, disk = %disk, "wiped together with its disk");
                continue;
            }
            match self
                .selector
                .admit(&part, Some(base(&disk)), ReadOnly::Skip)
            {
                Ok(Admission::Erase) => targets.push(Target {
                    dev: part,
                    partition_of: Some((disk, number)),
                }),
                Ok(Admission::Skip(_)) => {}
                Err(e) => failures.push(Failure::new(&part, e)),
            }
        }
        targets.sort_by(|a, b| b.dev.cmp(&a.dev));
        (targets, failures)
    }

    /// The special-filesystem guard over `targets` (unless `wipe_special_filesystems` is
    /// false).
    fn check_protected(&self, targets: &[Target]) -> HardwareResult<()> {
        if !self.settings.wipe_special_filesystems {
            return Ok(());
        }
        let found: Vec<_> = targets
            .iter()
            .filter_map(|t| {
                match &t.partition_of {
                    None => protect::check_disk(Path::new(&t.dev)),
                    Some((disk, n)) => {
                        protect::check_partition(Path::new(&t.dev), Path::new(disk), *n)
                    }
                }
                .err()
            })
            .collect();
        if found.is_empty() {
            Ok(())
        } else {
            Err(report::protected(&found))
        }
    }

    /// The metadata wipe of one target.
    fn wipe(&self, t: &Target) -> Result<(), String> {
        info!(device = %t.dev, method = "metadata", "erasing the metadata of {}", t.dev);
        wipe::erase_metadata(Path::new(&t.dev))
            .map(|r| {
                info!(device = %t.dev, signatures = ?r.signatures, wipefs = r.wipefs_ran, "metadata of {} erased", t.dev);
            })
            .map_err(|e| e.to_string())
    }

    /// IPA's `erase_devices_metadata` over `devices` (partitions included, skip list applied).
    pub fn erase_devices_metadata(&self, devices: &[BlockDevice]) -> HardwareResult<Value> {
        let (targets, mut failures) = self.erasable(devices);
        self.check_protected(&targets)?;
        for t in &targets {
            if let Err(e) = self.wipe(t) {
                error!(device = %t.dev, error = %e, "failed to erase the metadata of {}", t.dev);
                failures.push(Failure::new(&t.dev, e));
            }
        }
        report::aggregate("Failed to erase the metadata on the device(s)", &failures)?;
        Ok(Value::Null)
    }

    /// IPA's `erase_devices_express`: NVMe secure erase of NVMe disks (when enabled), the
    /// metadata wipe for everything else and for NVMe disks whose secure erase failed.
    pub fn erase_devices_express(&self, devices: &[BlockDevice]) -> HardwareResult<Value> {
        let (targets, mut failures) = self.erasable(devices);
        if targets.is_empty() {
            debug!("no erasable devices have been found");
        }
        self.check_protected(&targets)?;
        for t in &targets {
            let mut secure_error = None;
            if t.partition_of.is_none() && is_nvme(&t.dev) && self.settings.nvme_secure_erase {
                match nvme::erase(self.tools, &t.dev, self.settings.nvme_sanitize, &self.nvme) {
                    Ok(_) => continue,
                    Err(e) => {
                        error!(device = %t.dev, error = %e, "secure erase of {} failed; falling back to a metadata erase", t.dev);
                        secure_error = Some(e);
                    }
                }
            }
            if let Err(e) = self.wipe(t) {
                error!(device = %t.dev, error = %e, "failed to erase the metadata of {}", t.dev);
                let reason = match secure_error {
                    Some(s) => format!(
                        "Secure erase failed: {s}. Fallback to metadata erase also failed: {e}."
                    ),
                    None => e,
                };
                failures.push(Failure::new(&t.dev, reason));
            }
        }
        report::aggregate(
            "Failed to conduct an express erase on the device(s)",
            &failures,
        )?;
        Ok(Value::Null)
    }
}
