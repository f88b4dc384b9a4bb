//! Disk erasure: `erase_devices`, `erase_devices_metadata`, `erase_devices_express`,
//! offered under the generic manager's name.
//!
//! * `erase_devices` (clean, priority 10): every disk, in parallel
//!   (`disk_erasure_concurrency`): NVMe secure erase (`nvme format`, or `nvme sanitize` when
//!   the node opts in with `agent_enable_nvme_sanitize`), else ATA secure erase (hdparm), else
//!   — or after a failed secure erase when `agent_continue_if_secure_erase_failed` is set — a
//!   native overwrite (random passes, then zeros). Result `{"/dev/sda": null, ...}`.
//! * `erase_devices_metadata` (clean 99, deploy 0): partition tables and signatures of every
//!   device, partitions included. Result `null`.
//! * `erase_devices_express` (clean 0): NVMe secure erase where it applies, else (or when it
//!   fails) the metadata erase. Result `null`.
//!
//! Every device passes the agent's disk guard and IPA's exclusions first ([`select`]): disks
//! outside `--allow-device` and RAID members are skipped and logged, mounted disks fail, and
//! read-only disks are skipped or fail per `agent_erase_skip_read_only`. Then, before anything
//! is written, the shared-disk filesystem guard ([`protect`]) runs on every device to be
//! erased. Failures of single devices are collected into one `BlockDeviceEraseError`.
//!
//! Modules: [`settings`] (driver_internal_info), [`tools`] (running nvme/hdparm), [`nvme`],
//! [`ata`], [`overwrite`], `select`, `protect`, `devices` (the `erase_devices` flow), `metadata`
//! (the metadata and express flows), `report` (errors).

pub use super::without_skipped;

pub mod ata;
mod devices;
mod metadata;
pub mod nvme;
pub mod overwrite;
mod protect;
mod report;
mod select;
pub mod settings;

use std::path::PathBuf;

use hardware_managers::guard::DiskGuard;
use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value};
use tracing::info;

pub use settings::EraseSettings;

use crate::clean::deploy_step;
use crate::devices::Devices;

/// `erase_devices`.
pub const ERASE_DEVICES: &str = "erase_devices";
/// `erase_devices_metadata`.
pub const ERASE_DEVICES_METADATA: &str = "erase_devices_metadata";
/// `erase_devices_express`.
pub const ERASE_DEVICES_EXPRESS: &str = "erase_devices_express";

/// The erase steps of `kind`, as IPA offers them: all on the `deploy` interface, abortable,
/// no reboot.
pub fn steps(kind: StepKind) -> Vec<Step> {
    match kind {
        StepKind::Clean => vec![
            deploy_step(ERASE_DEVICES, 10, true),
            deploy_step(ERASE_DEVICES_METADATA, 99, true),
            deploy_step(ERASE_DEVICES_EXPRESS, 0, true),
        ],
        StepKind::Deploy => vec![deploy_step(ERASE_DEVICES_METADATA, 0, true)],
        StepKind::Service => Vec::new(),
    }
}

/// Runs erase step `name` on the node of `step_ctx`; `Incompatible` for other names.
///
/// # Errors
/// `InvalidArgs` for malformed settings or skip list, `ProtectedDeviceError` when a device
/// holds a shared-disk filesystem, `BlockDeviceEraseError` naming every device that failed.
pub fn execute(
    devices: &Devices,
    name: &str,
    step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    if ![ERASE_DEVICES, ERASE_DEVICES_METADATA, ERASE_DEVICES_EXPRESS].contains(&name) {
        return Err(HardwareError::incompatible(name));
    }
    if !args.is_empty() {
        info!(step = name, args = ?args.keys().collect::<Vec<_>>(), "ignoring step arguments");
    }
    let node = &step_ctx.node;
    let settings = EraseSettings::from_node(node)?;
    let tools = crate::tools::SystemTools;
    let eraser = Eraser::new(settings, &tools, devices.guard(), PathBuf::from("/"));
    info!(step = name, settings = ?eraser.settings, "starting");
    let list = |partitions: bool| without_skipped(node, devices.list(partitions)?);
    match name {
        ERASE_DEVICES => eraser.erase_devices(&list(false)?),
        ERASE_DEVICES_METADATA => eraser.erase_devices_metadata(&list(true)?),
        _ => eraser.erase_devices_express(&list(true)?),
    }
}

/// Everything an erase step needs: the node's settings, the tools, where to read the system
/// and the disk guard.
pub(crate) struct Eraser<'a> {
    /// The node's erase settings.
    pub settings: EraseSettings,
    /// nvme, hdparm, smartctl.
    pub tools: &'a dyn crate::tools::Tools,
    /// Admission checks.
    pub selector: select::Selector,
    /// NVMe time limits.
    pub nvme: nvme::NvmeTiming,
    /// ATA time limits.
    pub ata: ata::AtaTiming,
}

impl<'a> Eraser<'a> {
    /// An eraser with the default time limits.
    pub fn new(
        settings: EraseSettings,
        tools: &'a dyn crate::tools::Tools,
        guard: DiskGuard,
        root: PathBuf,
    ) -> Self {
        Eraser {
            settings,
            tools,
            selector: select::Selector { root, guard },
            nvme: nvme::NvmeTiming::default(),
            ata: ata::AtaTiming::default(),
        }
    }
}

/// IPA's test: the device name starts with `/dev/nvme`.
fn is_nvme(dev: &str) -> bool {
    dev.starts_with("/dev/nvme")
}

#[cfg(test)]
mod tests;
