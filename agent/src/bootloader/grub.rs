//! GRUB from the deployed image, run in a chroot.
//!
//! The root partition (found by `root_uuid`) is mounted on a fresh directory; `/dev`,
//! `/proc` and `/run` are bound into it and sysfs mounted on its `/sys` (plus efivarfs when
//! the ramdisk has it, so the image's `grub-install` can write its boot entry). Then, inside
//! `chroot`:
//!
//! * `mount -a -t vfat` (partitions the image's fstab wants, such as a separate grubenv);
//! * UEFI (an ESP given): the ESP mounted at `/boot/efi`. If the image carries its own
//!   `/boot/efi/EFI` tree it is copied onto the ESP and, when that holds a loader, only boot
//!   entries are made (IPA's asset preservation). Otherwise `grub-install` and
//!   `grub-install --removable` (the fallback path `\EFI\BOOT\BOOT*.EFI`); one of them must
//!   succeed;
//! * BIOS: `grub-install DISK` on the disk, or on every member disk of a RAID (the PReP
//!   partition on ppc64);
//! * `grub-mkconfig -o /boot/grub/grub.cfg` (`grub2` names when the image has
//!   `grub2-install`) with `GRUB_DISABLE_OS_PROBER=true` and `GRUB_SAVEDEFAULT=true`;
//! * under UEFI, an fstab line mounting the ESP at `/boot/efi`, and boot entries for the
//!   loaders now on the ESP.
//!
//! Everything is unmounted (newest first, three attempts each) on every path; a failure
//! returns the command and its stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use super::mount::{MountError, MountKind, MountStack};
use super::{BootloaderError, Host, InstallBootloaderParams, TargetMode, esp, is_md, nvram, raid};
use crate::disk::{blockdev, table};
use crate::tools::{self, command_line};

/// How long one grub tool may run.
const GRUB_TIMEOUT: Duration = Duration::from_secs(900);

/// Directories bound into the chroot (sysfs is mounted fresh).
const BIND_MOUNTS: &[&str] = &["/dev", "/proc", "/run"];

/// `PATH` inside the chroot: the ramdisk's, plus the usual system directories.
fn chroot_path() -> String {
    let base = std::env::var("PATH").unwrap_or_default();
    format!("{base}:/bin:/usr/sbin:/sbin")
}

/// Runs `args` inside the chroot at `root` with `env` set, through `env … chroot ROOT …`
/// (no shell: nothing is interpreted).
fn in_chroot(
    host: &Host<'_>,
    root: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<String, String> {
    let path = format!("PATH={}", chroot_path());
    let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let root_s = root.to_string_lossy();
    let mut argv: Vec<&str> = vec![&path];
    argv.extend(pairs.iter().map(String::as_str));
    argv.push("chroot");
    argv.push(&root_s);
    argv.extend_from_slice(args);
    tools::run_ok(host.tools, "env", &argv, GRUB_TIMEOUT).map_err(|e| {
        // Show the command as run inside the chroot, not the env/chroot plumbing.
        match e.split_once("` failed") {
            Some((_, rest)) => format!(
                "`{}` (in chroot {root_s}) failed{rest}",
                command_line(args[0], &args[1..])
            ),
            None => e,
        }
    })
}

fn exec_error(device: &Path, e: impl std::fmt::Display) -> BootloaderError {
    BootloaderError::Execution(format!(
        "Installing GRUB2 boot loader to device {} failed with {e}",
        device.display()
    ))
}

/// The partition of `device` holding the filesystem (or PARTUUID, or label) `id`; the device
/// itself when its own filesystem has that UUID.
fn find_root(device: &Path, id: &str) -> Result<PathBuf, BootloaderError> {
    let table = table::read_table(device).map_err(|e| exec_error(device, e))?;
    if let Some(t) = &table
        && let Some(p) = esp::find_partition(device, t, id).map_err(|e| exec_error(device, e))?
    {
        return Ok(p.path);
    }
    if let Ok(Some(fs)) = crate::disk::probe::probe(device)
        && fs
            .uuid
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(id))
    {
        return Ok(device.to_path_buf());
    }
    // IPA's last resort on software RAID: the array's first partition.
    if is_md(device) {
        let p1 = blockdev::partition_path(device, 1);
        if blockdev::is_block_device(&p1) {
            warn!(root = %p1.display(), uuid = id, "root UUID not found on the array; using its first partition");
            return Ok(p1);
        }
    }
    Err(BootloaderError::DeviceNotFound(format!(
        "No partition with UUID {id} found on device {}",
        device.display()
    )))
}

/// Whether `device` already boots through a BIOS boot loader: a partition marked bootable
/// (MBR active flag, GPT legacy-BIOS-bootable attribute) and boot code in the MBR (what
/// IPA's `file -s` check amounts to).
fn bootloader_present(device: &Path) -> bool {
    let bootable = table::read_table(device)
        .ok()
        .flatten()
        .is_some_and(|t| t.partitions.iter().any(|p| p.bootable));
    bootable && mbr_has_code(device)
}

/// Whether the first 218 bytes of `device` (the MBR's boot code) are not all zero.
fn mbr_has_code(device: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 218];
    std::fs::File::open(device)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok_and(|()| buf.iter().any(|&b| b != 0))
}

/// Installs GRUB from the image on `device`.
///
/// # Errors
/// Missing partitions, or the failing tool with its stderr.
pub fn install(
    host: &Host<'_>,
    device: &Path,
    params: &InstallBootloaderParams,
    mode: TargetMode,
) -> Result<(), BootloaderError> {
    let root_uuid = params.root_uuid.as_deref().unwrap_or_default();
    let root_part = find_root(device, root_uuid)?;
    let md = is_md(device);
    // IPA checks this only when the ramdisk itself runs in BIOS mode.
    if !md
        && !host.efi_booted
        && params.efi_system_part_uuid.is_none()
        && params.prep_boot_part_uuid.is_none()
        && bootloader_present(device)
    {
        info!(device = %device.display(), "a BIOS boot loader is already installed: skipping");
        return Ok(());
    }
    let mut efi_part = match params.efi_system_part_uuid.as_deref() {
        Some(u) => Some(
            esp::find_esp(device, Some(u))
                .map_err(|e| exec_error(device, e))?
                .map(|e| e.path)
                .ok_or_else(|| {
                    BootloaderError::DeviceNotFound(format!(
                        "No EFI system partition with UUID {u} on device {}",
                        device.display()
                    ))
                })?,
        ),
        None => None,
    };
    let mut esp_locations = None;
    if md && mode == TargetMode::Uefi {
        // The ESP mirror (the image's ESP, if any, copied into it).
        let image_esp = match &efi_part {
            Some(p) => Some(p.clone()),
            None => esp::find_esp(device, None)
                .map_err(|e| exec_error(device, e))?
                .map(|e| e.path),
        };
        let mirror = raid::relocate_esp(host, device, image_esp.as_deref())?;
        efi_part = Some(mirror.device.clone());
        esp_locations = Some(mirror.locations);
    }
    let grub_disks: Vec<PathBuf> = match params.prep_boot_part_uuid.as_deref() {
        Some(u) => vec![find_root(device, u)?],
        None if md => raid::holder_disks(host, device)?,
        None => vec![device.to_path_buf()],
    };

    // Debian's grub-mkconfig writes `root=UUID=` only when /dev/disk/by-uuid has the link,
    // which udev makes; a ramdisk without udev gets it here, for the time of the run.
    let mut links = DevLinks::new(&host.dev_dir);
    links.add(root_uuid, &root_part);
    if let (Some(u), Some(p)) = (params.efi_system_part_uuid.as_deref(), efi_part.as_deref()) {
        links.add(u, p);
    }
    let mut mounts = host.mounts();
    let result = run_in_root(
        host,
        &mut mounts,
        device,
        &root_part,
        efi_part.as_deref(),
        esp_locations,
        params.efi_system_part_uuid.as_deref(),
        &grub_disks,
    );
    let released = mounts.release();
    match (result, released) {
        (Err(e), Err(u)) => {
            warn!(error = %u, "mounts left behind after the failure");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(u)) => Err(exec_error(device, format!("unmounting failed: {u}"))),
        (Ok(()), Ok(())) => {
            info!(device = %device.display(), "GRUB2 successfully installed");
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_in_root(
    host: &Host<'_>,
    mounts: &mut MountStack<'_>,
    device: &Path,
    root_part: &Path,
    efi_part: Option<&Path>,
    esp_locations: Option<Vec<nvram::EspLocation>>,
    efi_uuid: Option<&str>,
    grub_disks: &[PathBuf],
) -> Result<(), BootloaderError> {
    let fail = |e: String| exec_error(device, e);
    let mount_fail = |e: MountError| exec_error(device, e);
    let root = mounts.dir(&host.scratch, "root").map_err(mount_fail)?;
    mounts
        .mount(root_part, &root, MountKind::Device(None))
        .map_err(mount_fail)?;
    for fs in BIND_MOUNTS {
        mounts
            .mount(
                Path::new(fs),
                &root.join(fs.trim_start_matches('/')),
                MountKind::Bind,
            )
            .map_err(mount_fail)?;
    }
    mounts
        .mount(
            Path::new("sysfs"),
            &root.join("sys"),
            MountKind::Pseudo("sysfs"),
        )
        .map_err(mount_fail)?;
    if let Some(efivars) = &host.efivars {
        let inside = root.join("sys/firmware/efi/efivars");
        if inside.is_dir() {
            mounts
                .mount(efivars, &inside, MountKind::Pseudo("efivarfs"))
                .map_err(mount_fail)?;
        }
    }
    let bin = if root.join("usr/sbin/grub2-install").exists() {
        "grub2"
    } else {
        "grub"
    };
    let install = format!("{bin}-install");
    let mkconfig = format!("{bin}-mkconfig");

    let esp_mnt = root.join("boot/efi");
    let result = (|| -> Result<(), BootloaderError> {
        // IPA's asset preservation, before anything of the image's fstab is mounted: an image
        // shipping its own `/boot/efi/EFI` tree gets it copied onto the ESP.
        if let Some(esp_dev) = efi_part
            && !is_md(device)
            && preserve_efi_assets(host, mounts, &root, &mkconfig, esp_dev)?
        {
            let entries = esp_entries(host, device, esp_dev, &esp_mnt, esp_locations.as_deref());
            match entries {
                Ok(()) => {
                    if let Some(id) = efi_uuid {
                        append_esp_to_fstab(&root, device, id);
                    }
                    info!("the image's EFI assets were copied to the ESP; GRUB is not reinstalled");
                    return Ok(());
                }
                Err(e) => {
                    warn!(error = %e, "no boot entry for the preserved EFI assets; installing GRUB");
                    mounts.unmount(&esp_mnt).map_err(mount_fail)?;
                }
            }
        }
        // Partitions of the image's fstab such as a separate /boot/efi holding grubenv.
        in_chroot(host, &root, &[], &["mount", "-a", "-t", "vfat"]).map_err(fail)?;
        if let Some(esp_dev) = efi_part {
            if !mounts.is_mounted(&esp_mnt) {
                mounts
                    .mount(esp_dev, &esp_mnt, MountKind::Device(Some("vfat")))
                    .map_err(mount_fail)?;
            }
            let first = in_chroot(host, &root, &[], &[&install]);
            if let Err(e) = &first {
                warn!(error = %e, "grub-install for UEFI failed; trying --removable");
            }
            let removable = in_chroot(host, &root, &[], &[&install, "--removable"]);
            match (&first, &removable) {
                // Unlike IPA (which ignores both), an ESP left without GRUB is an error.
                (Err(a), Err(b)) => return Err(fail(format!("{a}; {b}"))),
                (Ok(_), Err(e)) => warn!(error = %e, "grub-install --removable failed"),
                _ => {}
            }
            configure(host, &root, &mkconfig, is_md(device)).map_err(fail)?;
            if let Some(id) = efi_uuid {
                append_esp_to_fstab(&root, device, id);
            }
            // grub-install made its own entry when it could; ours points at what is on the
            // ESP now (the fallback loader at least). A failure here is not fatal: the
            // firmware still finds \EFI\BOOT\BOOT*.EFI.
            if let Err(e) = esp_entries(host, device, esp_dev, &esp_mnt, esp_locations.as_deref()) {
                warn!(error = %e, "could not add a UEFI boot entry for the installed GRUB");
            }
        } else {
            info!(disks = ?grub_disks, "installing GRUB2 for BIOS");
            for disk in grub_disks {
                in_chroot(host, &root, &[], &[&install, &disk.to_string_lossy()]).map_err(fail)?;
            }
            configure(host, &root, &mkconfig, is_md(device)).map_err(fail)?;
        }
        Ok(())
    })();
    // Our ESP mount first (the chroot's `umount -a -t vfat` would take it along), then what
    // the image's fstab mounted: on every path, as IPA's `finally`.
    if mounts.is_mounted(&esp_mnt)
        && let Err(e) = mounts.unmount(&esp_mnt)
    {
        warn!(error = %e, "unmounting the ESP failed");
    }
    if let Err(e) = in_chroot(host, &root, &[], &["umount", "-a", "-t", "vfat"]) {
        warn!(error = %e, "unmounting the image's vfat partitions failed");
    }
    nvram::sync(host.tools);
    result
}

/// Boot entries for the loaders on the ESP mounted at `esp_mnt` (only when the ramdisk runs
/// under UEFI with efibootmgr).
fn esp_entries(
    host: &Host<'_>,
    device: &Path,
    esp_dev: &Path,
    esp_mnt: &Path,
    locations: Option<&[nvram::EspLocation]>,
) -> Result<(), String> {
    if !(host.efi_booted && host.tools.installed("efibootmgr")) {
        return Err("the ramdisk was not booted in UEFI mode or has no efibootmgr".into());
    }
    let locations = match locations {
        Some(l) => l.to_vec(),
        None => {
            let number = blockdev::partition_number(device, esp_dev).unwrap_or(1);
            vec![nvram::EspLocation::new(device, number, None)]
        }
    };
    nvram::entries_for_esp(host.tools, esp_mnt, &locations).map(drop)
}

/// IPA's `_try_preserve_efi_assets`: when the image's root holds `/boot/efi/EFI` with a
/// loader, the GRUB configuration is generated (when the image has GRUB), `grub.cfg` and
/// `grubenv` are copied into each vendor directory lacking them, and the tree is copied onto
/// the ESP, which stays mounted at `/boot/efi`. `Ok(false)`: nothing to preserve (the ESP
/// is not mounted).
fn preserve_efi_assets(
    host: &Host<'_>,
    mounts: &mut MountStack<'_>,
    root: &Path,
    mkconfig: &str,
    esp_dev: &Path,
) -> Result<bool, BootloaderError> {
    let fail = |e: String| BootloaderError::Execution(e);
    let mount_fail = |e: MountError| fail(e.to_string());
    let esp_mnt = root.join("boot/efi");
    let efi = esp_mnt.join("EFI");
    if !efi.is_dir() || esp::find_loaders(&esp_mnt).is_empty() {
        return Ok(false);
    }
    let grub_dir = if mkconfig.starts_with("grub2") {
        "boot/grub2"
    } else {
        "boot/grub"
    };
    if root
        .join("usr/sbin")
        .join(mkconfig.replace("mkconfig", "install"))
        .exists()
    {
        // A failure here leaves the image's own configuration in place, as with IPA.
        if let Err(e) = configure(host, root, mkconfig, false) {
            warn!(error = %e, "grub-mkconfig failed before preserving the EFI assets");
        }
    }
    let stash = super::mount::fresh_dir(&host.scratch, "efi-assets").map_err(mount_fail)?;
    let copied = (|| -> std::io::Result<()> {
        copy_tree(&efi, &stash)?;
        for vendor in std::fs::read_dir(&stash)?.flatten() {
            if !vendor.file_type()?.is_dir() {
                continue;
            }
            for name in ["grub.cfg", "grubenv"] {
                let src = root.join(grub_dir).join(name);
                let dst = vendor.path().join(name);
                if src.is_file() && !dst.exists() {
                    std::fs::copy(&src, &dst)?;
                }
            }
        }
        Ok(())
    })();
    let result = copied
        .map_err(|e| fail(format!("copying the image's EFI assets: {e}")))
        .and_then(|()| {
            mounts
                .mount(esp_dev, &esp_mnt, MountKind::Device(Some("vfat")))
                .map_err(mount_fail)?;
            copy_tree(&stash, &esp_mnt.join("EFI"))
                .map_err(|e| fail(format!("copying the EFI assets onto the ESP: {e}")))
        });
    // The stash is a fresh directory of ours (nothing is mounted in it).
    let _ = std::fs::remove_dir_all(&stash);
    result?;
    Ok(!esp::find_loaders(&esp_mnt).is_empty())
}

/// `/dev/disk/by-uuid/<uuid>` links this run added (removed again on drop).
struct DevLinks {
    dir: PathBuf,
    made: Vec<PathBuf>,
}

impl DevLinks {
    fn new(dev: &Path) -> Self {
        DevLinks {
            dir: dev.join("disk/by-uuid"),
            made: Vec::new(),
        }
    }

    /// Links `uuid` to `node` unless a link of that name exists. Failures are logged: the
    /// configuration then names the device instead of the UUID.
    fn add(&mut self, uuid: &str, node: &Path) {
        if uuid.is_empty() || uuid.contains(['/', '\0']) || uuid.starts_with('.') {
            return;
        }
        let link = self.dir.join(uuid);
        if link.symlink_metadata().is_ok() {
            return;
        }
        match std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::os::unix::fs::symlink(node, &link))
        {
            Ok(()) => {
                tracing::debug!(link = %link.display(), target = %node.display(), "added a by-uuid link");
                self.made.push(link);
            }
            Err(e) => warn!(link = %link.display(), error = %e, "cannot add a by-uuid link"),
        }
    }
}

impl Drop for DevLinks {
    fn drop(&mut self) {
        for link in self.made.drain(..) {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// `grub-mkconfig -o /boot/<grub|grub2>/grub.cfg`; on software RAID with dracut in the
/// image, `rd.md.uuid=` of every array is added to `GRUB_CMDLINE_LINUX` first (so the
/// initramfs assembles them), as IPA does.
fn configure(host: &Host<'_>, root: &Path, mkconfig: &str, md: bool) -> Result<(), String> {
    if md
        && [
            "usr/bin/dracut",
            "usr/sbin/dracut",
            "bin/dracut",
            "sbin/dracut",
        ]
        .iter()
        .any(|p| root.join(p).exists())
    {
        let uuids = md_uuids(host);
        add_rd_md_uuids(&root.join("etc/default/grub"), &uuids)?;
    }
    let dir = if mkconfig.starts_with("grub2") {
        "grub2"
    } else {
        "grub"
    };
    let out = format!("/boot/{dir}/grub.cfg");
    std::fs::create_dir_all(root.join("boot").join(dir))
        .map_err(|e| format!("cannot create /boot/{dir} in the image: {e}"))?;
    in_chroot(
        host,
        root,
        &[
            ("GRUB_DISABLE_OS_PROBER", "true"),
            ("GRUB_SAVEDEFAULT", "true"),
            ("LC_ALL", "C"),
        ],
        &[mkconfig, "-o", &out],
    )
    .map(drop)
}

/// `MD_UUID` of every md array of the machine.
fn md_uuids(host: &Host<'_>) -> Vec<String> {
    crate::clean::raid::mdadm::arrays(&host.sys_block)
        .iter()
        .filter_map(|a| {
            let out = tools::run_ok(
                host.tools,
                "mdadm",
                &["--detail", "--export", &a.device.to_string_lossy()],
                GRUB_TIMEOUT,
            )
            .ok()?;
            out.lines()
                .find_map(|l| l.strip_prefix("MD_UUID="))
                .map(|u| u.trim().to_string())
        })
        .collect()
}

/// Appends `rd.md.uuid=<u>` for each of `uuids` inside `GRUB_CMDLINE_LINUX="…"` of the
/// image's `/etc/default/grub` (left alone when it has no such line).
fn add_rd_md_uuids(default_grub: &Path, uuids: &[String]) -> Result<(), String> {
    if uuids.is_empty() {
        return Ok(());
    }
    let Ok(text) = std::fs::read_to_string(default_grub) else {
        return Ok(());
    };
    let extra: Vec<String> = uuids.iter().map(|u| format!("rd.md.uuid={u}")).collect();
    let mut changed = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| match l.strip_prefix("GRUB_CMDLINE_LINUX=\"") {
            Some(rest) if rest.ends_with('"') && !changed => {
                changed = true;
                let current = &rest[..rest.len() - 1];
                let sep = if current.is_empty() { "" } else { " " };
                format!("GRUB_CMDLINE_LINUX=\"{current}{sep}{}\"", extra.join(" "))
            }
            _ => l.to_string(),
        })
        .collect();
    if changed {
        let mut out = lines.join("\n");
        out.push('\n');
        std::fs::write(default_grub, out)
            .map_err(|e| format!("cannot update {}: {e}", default_grub.display()))?;
        info!(uuids = ?uuids, "added rd.md.uuid to GRUB_CMDLINE_LINUX");
    }
    Ok(())
}

/// Copies the regular files and directories of `from` into `to` (links are skipped: vfat
/// has none).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        let dst = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else if t.is_file() {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}

/// Adds `UUID=<id>` (or `PARTUUID=`) `/boot/efi vfat umask=0077 0 1` to the image's fstab
/// unless it is there. Failures are only logged, as with IPA.
fn append_esp_to_fstab(root: &Path, device: &Path, id: &str) {
    let fstab = root.join("etc/fstab");
    if !fstab.is_file() {
        return;
    }
    // A UUID, PARTUUID or FAT volume id; anything else would not be an fstab source.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        warn!(
            id,
            "not adding the ESP to the image's /etc/fstab: not a UUID"
        );
        return;
    }
    let is_partuuid = table::read_table(device).ok().flatten().is_some_and(|t| {
        t.partitions
            .iter()
            .any(|p| p.partuuid.eq_ignore_ascii_case(id))
    });
    let key = if is_partuuid { "PARTUUID" } else { "UUID" };
    let entry = format!("{key}={id}");
    let current = std::fs::read_to_string(&fstab).unwrap_or_default();
    if current.contains(&entry) {
        return;
    }
    let line = format!("{entry}\t/boot/efi\tvfat\tumask=0077\t0\t1\n");
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(&fstab)
        .and_then(|mut f| {
            if !current.is_empty() && !current.ends_with('\n') {
                f.write_all(b"\n")?;
            }
            f.write_all(line.as_bytes())
        });
    match written {
        Ok(()) => info!(%entry, "added the ESP to the image's /etc/fstab"),
        Err(e) => warn!(error = %e, "could not add the ESP to the image's /etc/fstab"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rd_md_uuids_go_into_grub_cmdline_linux() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let f = tmp.path().join("grub");
        std::fs::write(
            &f,
            "GRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n",
        )?;
        add_rd_md_uuids(&f, &["a:b:c:d".into(), "e:f:0:1".into()]).map_err(anyhow::Error::msg)?;
        assert_eq!(
            std::fs::read_to_string(&f)?,
            "GRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n\
             GRUB_CMDLINE_LINUX=\"console=ttyS0 rd.md.uuid=a:b:c:d rd.md.uuid=e:f:0:1\"\n"
        );
        std::fs::write(&f, "GRUB_CMDLINE_LINUX=\"\"\n")?;
        add_rd_md_uuids(&f, &["x".into()]).map_err(anyhow::Error::msg)?;
        assert_eq!(
            std::fs::read_to_string(&f)?,
            "GRUB_CMDLINE_LINUX=\"rd.md.uuid=x\"\n"
        );
        // No line, no file: nothing to do.
        std::fs::write(&f, "GRUB_TIMEOUT=0\n")?;
        add_rd_md_uuids(&f, &["x".into()]).map_err(anyhow::Error::msg)?;
        assert_eq!(std::fs::read_to_string(&f)?, "GRUB_TIMEOUT=0\n");
        add_rd_md_uuids(&tmp.path().join("missing"), &["x".into()]).map_err(anyhow::Error::msg)?;
        Ok(())
    }
}
