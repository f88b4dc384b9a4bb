//! `/dev/disk/by-path` names computed from sysfs, for systems without udev (the minimal
//! ramdisk), equal to the links udev 252 (Debian 12) creates.
//!
//! udev's `path_id` builtin walks from the block device up its sysfs ancestors and prepends
//! one component per recognised bus to `ID_PATH`; the persistent-storage rules then link
//! `/dev/disk/by-path/$ID_PATH` (disks), `$ID_PATH-partN` (partitions), `$ID_PATH-bootN`
//! (eMMC boot areas), the legacy ATA name `$ID_PATH_ATA_COMPAT[-partN]` and, for virtio-blk
//! (`vd*`) disks on PCI, the deprecated `virtio-$ID_PATH[-partN]`. This module reimplements
//! that walk over a root directory. Supported buses and the components they contribute:
//!
//! | bus / transport | component | example `ID_PATH` |
//! |---|---|---|
//! | PCI | `pci-<address>` | `pci-0000:00:02.0` (virtio-blk) |
//! | virtio | (none, a transport) | `pci-0000:00:03.0-scsi-0:0:0:0` (virtio-scsi) |
//! | libata (SATA/PATA/AHCI) | `ata-<port>.<target>`, behind a port multiplier `ata-<port>.<pmp>.0`; compat `ata-<port>` | `pci-0000:00:1f.2-ata-1.0` and `pci-0000:00:1f.2-ata-1` |
//! | SAS (mpt3sas, ...) | `sas-phy<N>-lun-<L>`, behind an expander `sas-exp<addr>-phy<N>-lun-<L>`, wide port `sas-<addr>-lun-<L>` | `pci-0000:01:00.0-sas-phy0-lun-0` |
//! | Fibre Channel | `fc-<port_name>-lun-<L>` | `pci-0000:05:00.0-fc-0x500a0981891b8dc5-lun-0` |
//! | iSCSI | `ip-<addr>:<port>-iscsi-<target>-lun-<L>` | `ip-10.0.0.1:3260-iscsi-iqn.2004-04.com.example:t1-lun-1` |
//! | Hyper-V | `vmbus-<guid>-lun-<L>` | |
//! | other SCSI | `scsi-<host>:<bus>:<target>:<lun>` (host rebased per controller) | `pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0` |
//! | USB | `usb-0:<port path>` | see above |
//! | NVMe | `nvme-<nsid>` (also for multipath `nvme-subsystem` heads) | `pci-0000:00:04.0-nvme-1` |
//! | platform, ACPI, Xen, ccw, ... | `platform-<name>`, `acpi-<name>`, `xen-<name>`, ... | `platform-fe340000.mmc` (MMC) |
//!
//! Devices under `/devices/virtual/` (loop, md, dm, zram) have no by-path name, like on udev.

use std::path::Path;

mod scsi;

use super::sysdev::{SysDevice, SysTree};
use scsi::handle_scsi;

/// udev's `ID_PATH` and `ID_PATH_ATA_COMPAT` of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathId {
    /// `ID_PATH`.
    pub id_path: String,
    /// `ID_PATH_ATA_COMPAT`: the pre-252 libata name (`...-ata-<port>`).
    pub ata_compat: Option<String>,
}

/// Kernel-name patterns of `60-persistent-storage.rules` (prefix, whether the name must end
/// in a digit).
const STORAGE_KERNELS: &[(&str, bool)] = &[
    ("loop", false),
    ("mmcblk", true),
    ("msblk", true),
    ("mspblk", true),
    ("nvme", false),
    ("sd", false),
    ("sr", false),
    ("vd", false),
    ("xvd", false),
    ("bcache", false),
    ("cciss", false),
    ("dasd", false),
    ("ubd", false),
    ("ubi", false),
    ("scm", false),
    ("pmem", false),
    ("nbd", false),
    ("zd", false),
];

/// Every `/dev/disk/by-path/` link udev would create for block device `name` (kernel name,
/// a disk or a partition) under `root`, as full paths, sorted.
pub(crate) fn by_path_links(root: &Path, name: &str) -> Vec<String> {
    let Some(tree) = SysTree::new(root) else {
        return Vec::new();
    };
    let Some(dev) = [
        root.join("sys/class/block").join(name),
        root.join("sys/block").join(name),
    ]
    .iter()
    .find_map(|p| tree.device(p)) else {
        return Vec::new();
    };
    let kernel = dev.sysname();
    if !is_storage_kernel(&kernel) || dev.path().join("whole_disk").exists() {
        return Vec::new();
    }
    let partition = dev.path().join("partition").is_file();
    let (disk, suffix) = if partition {
        let Some(disk) = tree.parent(&dev) else {
            return Vec::new();
        };
        let num = dev.sysnum().unwrap_or_default();
        (disk, format!("-part{num}"))
    } else {
        (dev.clone(), String::new())
    };
    if !disk_gets_path_id(&tree, &disk) {
        return Vec::new();
    }
    let Some(id) = path_id(&tree, &disk) else {
        return Vec::new();
    };
    let disk_kernel = disk.sysname();
    let mut names = Vec::new();
    if is_mmc_boot(&kernel) {
        names.push(format!(
            "{}-boot{}",
            id.id_path,
            dev.sysnum().unwrap_or_default()
        ));
    } else {
        names.push(format!("{}{suffix}", id.id_path));
        if let Some(compat) = &id.ata_compat {
            names.push(format!("{compat}{suffix}"));
        }
    }
    if disk_kernel.starts_with("vd") && id.id_path.starts_with("pci-") {
        names.push(format!("virtio-{}{suffix}", id.id_path));
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| format!("/dev/disk/by-path/{n}"))
        .collect()
}

/// The by-path name reported for `name`: the first of [`by_path_links`] by name, the rule
/// the inventory applies to existing links.
pub(crate) fn by_path(root: &Path, name: &str) -> Option<String> {
    by_path_links(root, name).into_iter().next()
}

/// Whether `kernel` matches the kernel names the persistent-storage rules handle.
fn is_storage_kernel(kernel: &str) -> bool {
    STORAGE_KERNELS.iter().any(|(prefix, digit)| {
        kernel.starts_with(prefix) && (!digit || kernel.ends_with(|c: char| c.is_ascii_digit()))
    })
}

/// `mmcblk<N>boot<M>`: an eMMC boot area.
fn is_mmc_boot(kernel: &str) -> bool {
    kernel
        .strip_prefix("mmcblk")
        .and_then(|r| r.split_once("boot"))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// The rules run `path_id` for disks outside `/devices/virtual/`, and for NVMe multipath
/// heads (children of an `nvme-subsystem` device).
fn disk_gets_path_id(tree: &SysTree, disk: &SysDevice) -> bool {
    if !tree.devpath(disk).contains("/virtual/") {
        return true;
    }
    let mut cur = tree.parent(disk);
    while let Some(d) = cur {
        if d.in_subsystem("nvme-subsystem") {
            return true;
        }
        cur = tree.parent(&d);
    }
    false
}

/// The path being composed: components are prepended, joined with `-`.
#[derive(Default)]
pub(super) struct Composer {
    pub(super) path: Option<String>,
    pub(super) compat: Option<String>,
}

impl Composer {
    pub(super) fn prepend(&mut self, component: &str) {
        prepend(&mut self.path, component);
    }

    /// Prepends to the path and, once the ATA compat path has been started, to it too.
    fn prepend_both(&mut self, component: &str) {
        self.prepend(component);
        if self.compat.is_some() {
            prepend(&mut self.compat, component);
        }
    }
}

pub(super) fn prepend(path: &mut Option<String>, component: &str) {
    *path = Some(match path.take() {
        Some(rest) => format!("{component}-{rest}"),
        None => component.to_string(),
    });
}

/// udev's `path_id` for device `dev` (a whole disk): `None` where udev sets no `ID_PATH`.
pub(crate) fn path_id(tree: &SysTree, dev: &SysDevice) -> Option<PathId> {
    let mut c = Composer::default();
    let mut supported_transport = false;
    let mut supported_parent = false;
    let mut cur = Some(dev.clone());
    while let Some(parent) = cur {
        let next = match parent.subsystem().as_deref() {
            Some("scsi") => {
                supported_transport = true;
                handle_scsi(tree, parent, &mut c, &mut supported_parent)
            }
            Some("cciss") => {
                supported_transport = true;
                handle_cciss(tree, parent, &mut c)
            }
            Some("usb") => {
                supported_transport = true;
                handle_usb(tree, parent, &mut c)
            }
            Some("bcma") => {
                supported_transport = true;
                let core = parent
                    .sysname()
                    .strip_prefix("bcma")
                    .and_then(|r| r.split_once(':'))
                    .and_then(|(_, core)| core.parse::<u32>().ok());
                core.map(|core| {
                    c.prepend(&format!("bcma-{core}"));
                    parent
                })
            }
            Some("serio") => match parent.sysnum() {
                Some(num) => {
                    c.prepend(&format!("serio-{num}"));
                    Some(skip_subsystem(tree, parent, "serio"))
                }
                None => Some(parent),
            },
            Some(bus @ ("pci" | "acpi" | "xen")) => {
                c.prepend_both(&format!("{bus}-{}", parent.sysname()));
                supported_parent = true;
                Some(skip_subsystem(tree, parent, bus))
            }
            Some(bus @ ("platform" | "scm" | "ccw" | "ccwgroup" | "iucv")) => {
                c.prepend_both(&format!("{bus}-{}", parent.sysname()));
                supported_transport = true;
                supported_parent = true;
                Some(skip_subsystem(tree, parent, bus))
            }
            Some("ap") => {
                match (parent.attr("type"), parent.attr("ap_functions")) {
                    (Some(t), Some(f)) => c.prepend(&format!("ap-{t}-{f}")),
                    _ => c.prepend(&format!("ap-{}", parent.sysname())),
                }
                supported_transport = true;
                supported_parent = true;
                Some(skip_subsystem(tree, parent, "ap"))
            }
            Some("virtio") => {
                supported_transport = true;
                Some(skip_subsystem(tree, parent, "virtio"))
            }
            Some(sub @ ("nvme" | "nvme-subsystem")) => match dev.attr("nsid") {
                Some(nsid) => {
                    c.prepend_both(&format!("nvme-{nsid}"));
                    let start = if sub == "nvme-subsystem" {
                        // A multipath head: continue from the controller in the "nvme" class.
                        Some(real_nvme_parent(tree, dev)?)
                    } else {
                        Some(parent)
                    };
                    supported_parent = true;
                    supported_transport = true;
                    start.map(|p| skip_subsystem(tree, p, "nvme"))
                }
                None => Some(parent),
            },
            Some("spi") => match parent.sysnum() {
                Some(num) => {
                    c.prepend(&format!("cs-{num}"));
                    Some(skip_subsystem(tree, parent, "spi"))
                }
                None => Some(parent),
            },
            _ => Some(parent),
        };
        let Some(next) = next else { break };
        cur = tree.parent(&next);
    }
    let id_path = c.path?;
    if !supported_parent {
        return None;
    }
    if dev.in_subsystem("block") && !supported_transport {
        return None;
    }
    Some(PathId {
        id_path,
        ata_compat: c.compat,
    })
}

/// The controller (`nvme` class device) behind NVMe multipath head `dev` (`nvme0n1` ->
/// `nvme0`); `None` when it is virtual (NVMe over fabrics).
fn real_nvme_parent(tree: &SysTree, dev: &SysDevice) -> Option<SysDevice> {
    let name = dev.sysname();
    let rest = name.strip_prefix("nvme")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ctrl = tree.by_subsystem_sysname("nvme", &name[..4 + digits])?;
    (!tree.devpath(&ctrl).starts_with("/devices/virtual/")).then_some(ctrl)
}

/// Climbs from `dev` while the parents are in `subsystem`; returns the last one that is.
pub(super) fn skip_subsystem(tree: &SysTree, dev: SysDevice, subsystem: &str) -> SysDevice {
    let mut dev = dev;
    let mut parent = Some(dev.clone());
    while let Some(p) = parent {
        if !p.in_subsystem(subsystem) {
            break;
        }
        parent = tree.parent(&p);
        dev = p;
    }
    dev
}

/// The nearest ancestor (or `dev` itself) in `subsystem` with `devtype`.
pub(super) fn ancestor_with(
    tree: &SysTree,
    dev: &SysDevice,
    subsystem: &str,
    devtype: &str,
) -> Option<SysDevice> {
    let mut cur = Some(dev.clone());
    while let Some(d) = cur {
        if d.in_subsystem(subsystem) && d.devtype().as_deref() == Some(devtype) {
            return Some(d);
        }
        cur = tree.parent(&d);
    }
    None
}

fn handle_cciss(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let name = parent.sysname();
    let (_, disk) = name.strip_prefix('c')?.split_once('d')?;
    let digits: String = disk.chars().take_while(char::is_ascii_digit).collect();
    let disk: u32 = digits.parse().ok()?;
    c.prepend(&format!("cciss-disk{disk}"));
    Some(skip_subsystem(tree, parent, "cciss"))
}

fn handle_usb(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    if !matches!(
        parent.devtype().as_deref(),
        Some("usb_interface" | "usb_device")
    ) {
        return Some(parent);
    }
    let name = parent.sysname();
    let Some((_, port)) = name.split_once('-') else {
        return Some(parent);
    };
    // The host number may change across boots: udev always writes 0.
    c.prepend(&format!("usb-0:{port}"));
    Some(skip_subsystem(tree, parent, "usb"))
}

#[cfg(test)]
mod tests;
