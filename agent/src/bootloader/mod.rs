//! `image.install_bootloader`: makes the deployed disk bootable.
//!
//! 1. **UEFI boot entries** ([`uefi_setup`]), when the ramdisk runs under UEFI and has
//!    `efibootmgr`: the ESP of the install device (by type, else by `efi_system_part_uuid`)
//!    is mounted and searched for loaders ([`esp`]); a boot entry is created for each
//!    ([`nvram`]). On a software-RAID install device the image's ESP is first copied into the
//!    ESP mirror and an entry is made per mirror half ([`raid`]). An ESP without loaders falls
//!    through to step 3.
//! 2. A whole-disk image (`root_uuid` null or `0x00000000`) is then done.
//! 3. **GRUB from the image** ([`grub`]), only when `enable_bios_bootloader_install` is on
//!    (the conductor's lookup config or the agent's flag; off by default since it runs the
//!    image's programs as root in the ramdisk): the root filesystem is mounted, `/dev`,
//!    `/proc`, `/run` bound, sysfs mounted, and `grub-install` and `grub-mkconfig` run in a
//!    chroot; under UEFI the ESP is mounted at `/boot/efi` and gets an entry as in step 1.
//!
//! A failure fails the command with the tool's stderr, unless `ignore_bootloader_failure`
//! (the parameter, else the agent's configuration) is true: then the command succeeds and
//! its result lists the ignored failures under `warnings`.

pub mod esp;
pub mod grub;
pub mod mount;
pub mod nvram;
pub mod raid;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hardware_managers::{IpaClass, IpaError};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{error, info, warn};

use crate::tools::{SystemTools, Tools};
use mount::{MountError, MountKind, MountStack, Mounter, SystemMounter};

/// Where the kernel shows that the machine booted through UEFI.
const EFI_SYSFS: &str = "/sys/firmware/efi";
/// The UEFI variables filesystem.
const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// `image.install_bootloader` parameters as Ironic sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InstallBootloaderParams {
    /// Root filesystem UUID of a partition image; null or `0x…` for whole-disk images.
    #[serde(default)]
    pub root_uuid: Option<String>,
    /// The ESP's filesystem UUID (UEFI partition images).
    #[serde(default)]
    pub efi_system_part_uuid: Option<String>,
    /// The PReP partition (ppc64, deprecated).
    #[serde(default)]
    pub prep_boot_part_uuid: Option<String>,
    /// `bios` (default) or `uefi`.
    #[serde(default)]
    pub target_boot_mode: Option<String>,
    /// Overrides the agent's `ignore_bootloader_failure`.
    #[serde(default)]
    pub ignore_bootloader_failure: Option<bool>,
}

/// The boot mode asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetMode {
    /// Legacy BIOS.
    Bios,
    /// UEFI.
    Uefi,
}

impl InstallBootloaderParams {
    /// Parses and checks `params`.
    ///
    /// # Errors
    /// Wrong types or an unknown boot mode, as a message for a 400.
    pub fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        let p: InstallBootloaderParams = serde_json::from_value(Value::Object(params.clone()))
            .map_err(|e| format!("install_bootloader: {e}"))?;
        p.mode()?;
        Ok(p)
    }

    /// `target_boot_mode`, `bios` when absent.
    ///
    /// # Errors
    /// Anything but `bios` or `uefi`.
    pub fn mode(&self) -> Result<TargetMode, String> {
        match self.target_boot_mode.as_deref() {
            None | Some("bios") => Ok(TargetMode::Bios),
            Some("uefi") => Ok(TargetMode::Uefi),
            Some(other) => Err(format!(
                "target_boot_mode must be \"bios\" or \"uefi\", not {other:?}"
            )),
        }
    }

    /// Whether `root_uuid` names no partition: null, or a whole-disk image's MBR signature
    /// (`0x` and 8 hex digits, what `get_partition_uuids` reports for whole disks). IPA only
    /// recognises `0x00000000`; a filesystem UUID never looks like a signature.
    pub fn whole_disk(&self) -> bool {
        self.root_uuid.as_deref().is_none_or(|u| {
            u.is_empty()
                || u.strip_prefix("0x")
                    .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    }
}

/// Why the bootloader could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootloaderError {
    /// A partition or device is missing (IPA's `DeviceNotFound`).
    #[error("{0}")]
    DeviceNotFound(String),
    /// A tool failed (IPA's `CommandExecutionError`).
    #[error("{0}")]
    Execution(String),
    /// GRUB installation is disabled (IPA's `InvalidImage`).
    #[error("{0}")]
    Disabled(String),
}

impl BootloaderError {
    /// IPA's error for this failure.
    pub fn to_ipa_error(&self) -> IpaError {
        let (class, details) = match self {
            BootloaderError::DeviceNotFound(d) => (IpaClass::DeviceNotFound, d),
            BootloaderError::Execution(d) => (IpaClass::CommandExecutionError, d),
            BootloaderError::Disabled(d) => (IpaClass::InvalidImage, d),
        };
        IpaError::new(class, details.clone())
    }
}

/// The machine as the bootloader code sees it: tools, mounts and firmware facts.
pub struct Host<'a> {
    /// Runs programs.
    pub tools: &'a dyn Tools,
    /// Mounts filesystems.
    pub mounter: &'a dyn Mounter,
    /// Whether the ramdisk booted through UEFI.
    pub efi_booted: bool,
    /// The efivarfs mount to expose inside the chroot (so the image's `grub-install` can
    /// create its boot entry), when the ramdisk has one.
    pub efivars: Option<PathBuf>,
    /// Where mount points are made.
    pub scratch: PathBuf,
    /// `/sys/block`, for md arrays.
    pub sys_block: PathBuf,
    /// `/dev`, where `disk/by-uuid` links are added for the chroot when no udev made them.
    pub dev_dir: PathBuf,
    /// Wait between unmount attempts.
    pub retry_delay: Duration,
}

impl Host<'_> {
    /// An empty mount stack using this host's mounter.
    pub fn mounts(&self) -> MountStack<'_> {
        MountStack::new(self.mounter).with_retry_delay(self.retry_delay)
    }
}

/// Whether `dev` is an md array (`/dev/md0`, `/dev/md/root`).
pub fn is_md(dev: &Path) -> bool {
    let s = dev.to_string_lossy();
    s.starts_with("/dev/md")
}

/// What [`install`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Failures ignored because of `ignore_bootloader_failure`.
    pub warnings: Vec<String>,
}

/// Settings from the agent's configuration and the conductor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `enable_bios_bootloader_install`.
    pub grub_enabled: bool,
    /// The configured `ignore_bootloader_failure` (the parameter wins).
    pub ignore_failure: bool,
}

/// Installs the bootloader for `params` on `device`.
///
/// # Errors
/// The first failure, unless failures are ignored.
pub fn install(
    host: &Host<'_>,
    device: &Path,
    params: &InstallBootloaderParams,
    policy: Policy,
) -> Result<Outcome, BootloaderError> {
    let ignore = params
        .ignore_bootloader_failure
        .unwrap_or(policy.ignore_failure);
    let mode = params.mode().map_err(BootloaderError::Execution)?;
    let mut outcome = Outcome::default();
    let tolerate = |e: BootloaderError, outcome: &mut Outcome| -> Result<(), BootloaderError> {
        error!(error = %e, "installing the bootloader failed");
        if ignore {
            warn!("ignoring the bootloader failure (ignore_bootloader_failure)");
            outcome
                .warnings
                .push(format!("Ignored bootloader failure: {e}"));
            Ok(())
        } else {
            Err(e)
        }
    };
    if params.prep_boot_part_uuid.is_some() {
        warn!("PReP partition support is deprecated");
    }
    info!(device = %device.display(), root_uuid = ?params.root_uuid,
          efi_system_part_uuid = ?params.efi_system_part_uuid, ?mode, "installing the bootloader");
    match uefi_setup(host, device, params.efi_system_part_uuid.as_deref(), mode) {
        Ok(true) => return Ok(outcome),
        Ok(false) => {}
        Err(e) => {
            tolerate(e, &mut outcome)?;
        }
    }
    if params.whole_disk() {
        info!("no root UUID (whole-disk image): GRUB is not installed");
        return Ok(outcome);
    }
    if !policy.grub_enabled {
        let e = BootloaderError::Disabled(
            "Install of legacy BIOS bootloaders disabled by \
             CONF.enable_bios_bootloader_install as part of CVE-2026-43003 mitigation."
                .into(),
        );
        tolerate(e, &mut outcome)?;
        return Ok(outcome);
    }
    if let Err(e) = grub::install(host, device, params, mode) {
        tolerate(e, &mut outcome)?;
    }
    Ok(outcome)
}

/// UEFI boot entries from the ESP's loaders. `Ok(false)` when not applicable (not booted
/// through UEFI, no efibootmgr) or the ESP holds no loader.
///
/// # Errors
/// No ESP, or mounting or efibootmgr failed.
pub fn uefi_setup(
    host: &Host<'_>,
    device: &Path,
    efi_uuid: Option<&str>,
    mode: TargetMode,
) -> Result<bool, BootloaderError> {
    let current = if host.efi_booted {
        TargetMode::Uefi
    } else {
        TargetMode::Bios
    };
    if current != mode {
        warn!(target = ?mode, current = ?current,
              "boot mode mismatch: installing the boot loader may fail or work incorrectly");
    }
    if !host.efi_booted {
        return Ok(false);
    }
    if !host.tools.installed("efibootmgr") {
        warn!("efibootmgr is not available in the ramdisk");
        return Ok(false);
    }
    let exec = BootloaderError::Execution;
    let mount_fail = |e: MountError| exec(e.to_string());
    let found = esp::find_esp(device, efi_uuid).map_err(|e| exec(e.to_string()))?;
    let Some(found) = found else {
        return Err(BootloaderError::DeviceNotFound(format!(
            "No EFI partition could be detected on device {} and EFI partition UUID has not \
             been recorded during deployment (which is often the case for whole disk images). \
             Are you using a UEFI-compatible image?",
            device.display()
        )));
    };
    let mut mounts = host.mounts();
    let result = (|| -> Result<bool, BootloaderError> {
        let mnt = mounts.dir(&host.scratch, "esp").map_err(mount_fail)?;
        mounts
            .mount(&found.path, &mnt, MountKind::Device(Some("vfat")))
            .map_err(|e| {
                exec(format!(
                    "Could not configure UEFI boot on device {}: {e}",
                    device.display()
                ))
            })?;
        let loaders = esp::find_loaders(&mnt);
        if loaders.is_empty() {
            warn!(esp = %found.path.display(), "empty EFI partition: no loader to add");
            return Ok(false);
        }
        let locations = if is_md(device) {
            mounts.unmount(&mnt).map_err(mount_fail)?;
            let mirror = raid::relocate_esp(host, device, Some(&found.path))?;
            mounts
                .mount(&mirror.device, &mnt, MountKind::Device(Some("vfat")))
                .map_err(mount_fail)?;
            mirror.locations
        } else {
            vec![nvram::EspLocation::new(device, found.number, None)]
        };
        nvram::entries_for_esp(host.tools, &mnt, &locations).map_err(|e| {
            exec(format!(
                "Could not configure UEFI boot on device {}: {e}",
                device.display()
            ))
        })?;
        Ok(true)
    })();
    let released = mounts.release();
    nvram::sync(host.tools);
    match (result, released) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(exec(format!("Umounting efi system partition failed: {e}"))),
        (Ok(done), Ok(())) => Ok(done),
    }
}

/// Installs the bootloader for `params` on `device` of this machine: its tools and mounts,
/// its firmware as the kernel shows it.
///
/// # Errors
/// As [`install`].
pub fn install_here(
    device: &Path,
    params: &InstallBootloaderParams,
    policy: Policy,
) -> Result<Outcome, BootloaderError> {
    let tools = SystemTools;
    let mounter = SystemMounter { tools: &tools };
    let efivars = Path::new(EFIVARS);
    let host = Host {
        tools: &tools,
        mounter: &mounter,
        efi_booted: Path::new(EFI_SYSFS).is_dir(),
        efivars: efivars_mounted(efivars).then(|| efivars.to_path_buf()),
        scratch: std::env::temp_dir(),
        sys_block: PathBuf::from("/sys/block"),
        dev_dir: PathBuf::from("/dev"),
        retry_delay: Duration::from_secs(1),
    };
    install(&host, device, params, policy)
}

/// Whether efivarfs is mounted at `dir` (it lists variables).
fn efivars_mounted(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests;
