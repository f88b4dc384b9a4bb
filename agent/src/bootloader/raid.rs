//! ESPs of a software-RAID install device.
//!
//! A RAID built by this agent under UEFI has an ESP on every member disk, mirrored as a
//! metadata-1.0 RAID-1 named `esp` (the firmware reads each half as a plain FAT). When an
//! image written onto the RAID root volume brings its own ESP, its files are copied into the
//! mirror (keeping the filesystem's UUID and label) and the image's copy is wiped, as IPA
//! does; a boot entry is then made for each half, labelled `… (RAID, part<k>)`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::info;

use super::mount::{MountError, MountKind};
use super::nvram::EspLocation;
use super::{BootloaderError, Host};
use crate::clean::raid::mdadm;
use crate::disk::{blockdev, probe};
use crate::tools;

const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

/// The ESP mirror and where its halves are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `/dev/mdN`.
    pub device: PathBuf,
    /// One location per half, in member order.
    pub locations: Vec<EspLocation>,
}

/// The md array named `esp` whose members all sit on `holders` (the disks of the install
/// device), and its members. Arrays mdadm cannot describe are skipped.
fn find_mirror(host: &Host<'_>, holders: &[PathBuf]) -> Option<(PathBuf, Vec<PathBuf>)> {
    for array in mdadm::arrays(&host.sys_block) {
        let dev = array.device.to_string_lossy().into_owned();
        let out = match tools::run_ok(
            host.tools,
            "mdadm",
            &["--detail", "--export", &dev],
            TOOL_TIMEOUT,
        ) {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(array = %dev, error = %e, "skipping an md array mdadm cannot describe");
                continue;
            }
        };
        if mdadm::parse_export_name(&out).as_deref() != Some("esp") {
            continue;
        }
        let mut members = mdadm::parse_export_members(&out);
        members.sort();
        if !members.is_empty()
            && members
                .iter()
                .all(|m| holders.contains(&mdadm::holder_disk(m)))
        {
            return Some((array.device, members));
        }
        tracing::warn!(array = %dev, ?members, "an md array named esp outside the install device's disks: not used");
    }
    None
}

/// Sum of the file sizes under `dir`.
fn used_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => used_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Copies the image's ESP `image_esp` (if it has one) (a partition of the RAID volume `device`) into the ESP
/// mirror and returns the mirror with its halves.
///
/// # Errors
/// No mirror exists, the files do not fit, or a tool failed.
pub fn relocate_esp(
    host: &Host<'_>,
    device: &Path,
    image_esp: Option<&Path>,
) -> Result<Mirror, BootloaderError> {
    let exec = BootloaderError::Execution;
    let mount_fail = |e: MountError| exec(e.to_string());
    let holders = holder_disks(host, device)?;
    let Some((mirror, members)) = find_mirror(host, &holders) else {
        return Err(BootloaderError::DeviceNotFound(format!(
            "{} is a software RAID device but no mirrored EFI system partition (an md array \
             named \"esp\") exists; create the RAID with create_configuration in UEFI mode",
            device.display()
        )));
    };
    let fs = match image_esp {
        Some(p) => probe::probe(p)
            .map_err(|e| exec(e.to_string()))?
            .map(|f| (p, f)),
        None => None,
    };
    if let Some((image_esp, fs)) = fs.filter(|(_, f)| f.fstype == "vfat") {
        info!(from = %image_esp.display(), to = %mirror.display(), "relocating the image's ESP into the ESP mirror");
        let mut mounts = host.mounts();
        let copied = (|| -> Result<(), BootloaderError> {
            let src = mounts.dir(&host.scratch, "esp-src").map_err(mount_fail)?;
            mounts
                .mount(image_esp, &src, MountKind::Device(Some("vfat")))
                .map_err(mount_fail)?;
            let size = blockdev::size_bytes(&mirror).map_err(|e| exec(e.to_string()))?;
            let used = used_bytes(&src);
            if used > size {
                return Err(exec(format!(
                    "ESP content ({used} bytes) exceeds md device size ({size} bytes)"
                )));
            }
            let label = fs.label.clone().unwrap_or_else(|| "esp".into());
            let mut args = vec!["-n".to_string(), label];
            if let Some(id) = fs.uuid.as_deref() {
                args.push("-i".into());
                args.push(id.replace('-', ""));
            }
            args.push(mirror.to_string_lossy().into_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tools::run_ok(host.tools, "mkfs.vfat", &args, TOOL_TIMEOUT).map_err(exec)?;
            let dst = mounts.dir(&host.scratch, "esp-dst").map_err(mount_fail)?;
            mounts
                .mount(&mirror, &dst, MountKind::Device(Some("vfat")))
                .map_err(mount_fail)?;
            let from = format!("{}/.", src.display());
            let to = format!("{}/", dst.display());
            tools::run_ok(host.tools, "cp", &["-a", &from, &to], TOOL_TIMEOUT).map_err(exec)?;
            Ok(())
        })();
        let released = mounts.release();
        copied?;
        released.map_err(mount_fail)?;
        tools::run_ok(
            host.tools,
            "wipefs",
            &["-a", &image_esp.to_string_lossy()],
            TOOL_TIMEOUT,
        )
        .map_err(exec)?;
    }
    let mut locations = Vec::new();
    for (k, member) in members.iter().enumerate() {
        let disk = mdadm::holder_disk(member);
        let number = blockdev::partition_number(&disk, member).ok_or_else(|| {
            BootloaderError::DeviceNotFound(format!(
                "Could not extract the partition number from {}",
                member.display()
            ))
        })?;
        locations.push(EspLocation::new(
            &disk,
            number,
            Some(format!("(RAID, part{k})")),
        ));
    }
    Ok(Mirror {
        device: mirror,
        locations,
    })
}

/// The member disks of the md array `device` (for `grub-install` on every holder).
///
/// # Errors
/// mdadm failed or reported no members.
pub fn holder_disks(host: &Host<'_>, device: &Path) -> Result<Vec<PathBuf>, BootloaderError> {
    let out = tools::run_ok(
        host.tools,
        "mdadm",
        &["--detail", "--export", &device.to_string_lossy()],
        TOOL_TIMEOUT,
    )
    .map_err(BootloaderError::Execution)?;
    let mut disks: Vec<PathBuf> = mdadm::parse_export_members(&out)
        .iter()
        .map(|m| mdadm::holder_disk(m))
        .collect();
    disks.sort();
    disks.dedup();
    if disks.is_empty() {
        return Err(BootloaderError::DeviceNotFound(format!(
            "mdadm reports no member disks for {}",
            device.display()
        )));
    }
    Ok(disks)
}
