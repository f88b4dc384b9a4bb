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

use super::sysdev::{SysDevice, SysTree};

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
struct Composer {
    path: Option<String>,
    compat: Option<String>,
}

impl Composer {
    fn prepend(&mut self, component: &str) {
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

fn prepend(path: &mut Option<String>, component: &str) {
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
fn skip_subsystem(tree: &SysTree, dev: SysDevice, subsystem: &str) -> SysDevice {
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
fn ancestor_with(
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

/// `lun-<L>` for the LUN of SCSI device `dev` (the trailing number of `h:b:t:l`), in udev's
/// format: decimal below 256, else the 8-byte SCSI LUN layout.
fn lun_component(dev: &SysDevice) -> Option<String> {
    let lun: u64 = dev.sysnum()?.parse().ok()?;
    Some(if lun < 256 {
        format!("lun-{lun}")
    } else {
        format!(
            "lun-0x{:04x}{:04x}00000000",
            lun & 0xffff,
            (lun >> 16) & 0xffff
        )
    })
}

/// Prepends `component` followed by the LUN of `dev` (udev drops the LUN part, keeping the
/// dash, when it cannot be formatted).
fn prepend_with_lun(c: &mut Composer, component: &str, dev: &SysDevice) {
    let lun = lun_component(dev).unwrap_or_else(|| "(null)".to_string());
    c.prepend(&format!("{component}-{lun}"));
}

/// The four numbers of a SCSI device name `h:b:t:l`.
fn hbtl(name: &str) -> Option<[u32; 4]> {
    let mut it = name.split(':').map(|p| p.parse::<u32>().ok());
    let out = [it.next()??, it.next()??, it.next()??, it.next()??];
    it.next().is_none().then_some(out)
}

fn handle_scsi(
    tree: &SysTree,
    parent: SysDevice,
    c: &mut Composer,
    supported_parent: &mut bool,
) -> Option<SysDevice> {
    if parent.devtype().as_deref() != Some("scsi_device") {
        return Some(parent);
    }
    if let Some(id) = parent.attr("ieee1394_id") {
        c.prepend(&format!("ieee1394-0x{id}"));
        *supported_parent = true;
        return Some(skip_subsystem(tree, parent, "scsi"));
    }
    let syspath = tree.syspath(&parent);
    if syspath.contains("/rport-") {
        *supported_parent = true;
        handle_fibre_channel(tree, parent, c)
    } else if syspath.contains("/end_device-") {
        *supported_parent = true;
        handle_sas(tree, parent, c)
    } else if syspath.contains("/session") {
        *supported_parent = true;
        handle_iscsi(tree, parent, c)
    } else if syspath.contains("/ata") {
        handle_ata(tree, parent, c)
    } else if syspath.contains("/vmbus_") {
        handle_hyperv(tree, parent, c, 37)
    } else if syspath.contains("/VMBUS") {
        handle_hyperv(tree, parent, c, 38)
    } else {
        handle_scsi_default(tree, parent, c)
    }
}

fn handle_fibre_channel(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let target = ancestor_with(tree, &parent, "scsi", "scsi_target")?;
    let fc = tree.by_subsystem_sysname("fc_transport", &target.sysname())?;
    let port = fc.attr("port_name")?;
    prepend_with_lun(c, &format!("fc-{port}"), &parent);
    Some(parent)
}

fn handle_sas(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let target = ancestor_with(tree, &parent, "scsi", "scsi_target")?;
    let end_device = tree.parent(&target)?;
    let target_sas = tree.by_subsystem_sysname("sas_device", &end_device.sysname())?;
    let port = tree.parent(&end_device)?;
    let port_sas = tree.by_subsystem_sysname("sas_port", &port.sysname())?;
    let phys = port_sas.attr("num_phys")?;
    if phys != "1" {
        // A wide port: named by the end device's SAS address.
        let address = target_sas.attr("sas_address")?;
        prepend_with_lun(c, &format!("sas-{address}"), &parent);
        return Some(parent);
    }
    let phy = target_sas.attr("phy_identifier")?;
    let expander = tree.parent(&port)?;
    let component = match tree.by_subsystem_sysname("sas_device", &expander.sysname()) {
        Some(exp) => format!("sas-exp{}-phy{phy}", exp.attr("sas_address")?),
        None => format!("sas-phy{phy}"),
    };
    prepend_with_lun(c, &component, &parent);
    Some(parent)
}

fn handle_iscsi(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let mut session = tree.parent(&parent)?;
    while !session.sysname().starts_with("session") {
        session = tree.parent(&session)?;
    }
    let session_dev = tree.by_subsystem_sysname("iscsi_session", &session.sysname())?;
    let target = session_dev.attr("targetname")?;
    let num = session.sysnum()?;
    let conn = tree.by_subsystem_sysname("iscsi_connection", &format!("connection{num}:0"))?;
    let addr = conn.attr("persistent_address")?;
    let port = conn.attr("persistent_port")?;
    prepend_with_lun(c, &format!("ip-{addr}:{port}-iscsi-{target}"), &parent);
    Some(parent)
}

fn handle_ata(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let [_, bus, target, _] = hbtl(&parent.sysname())?;
    let host = ancestor_with(tree, &parent, "scsi", "scsi_host")?;
    let ata = tree.parent(&host)?;
    let port = tree
        .by_subsystem_sysname("ata_port", &ata.sysname())?
        .attr("port_no")?;
    if bus != 0 {
        // Behind a port multiplier.
        c.prepend(&format!("ata-{port}.{bus}.0"));
    } else {
        // Master/slave told apart by the target id.
        c.prepend(&format!("ata-{port}.{target}"));
    }
    prepend(&mut c.compat, &format!("ata-{port}"));
    Some(parent)
}

fn handle_scsi_default(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let host = ancestor_with(tree, &parent, "scsi", "scsi_host")?;
    let name = parent.sysname();
    let mut it = name.split(':').map(|p| p.parse::<i64>().ok());
    let (Some(Some(h)), Some(Some(b)), Some(Some(t)), Some(Some(l))) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return None;
    };
    // udev rebases the host number on the lowest `hostN` under the same controller.
    let base = host.path().parent()?;
    let lowest = std::fs::read_dir(base)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let digits = n.strip_prefix("host")?;
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<i64>().ok())
                .flatten()
        })
        .min();
    let Some(lowest) = lowest else {
        return Some(host);
    };
    c.prepend(&format!("scsi-{}:{b}:{t}:{l}", h - lowest));
    Some(host)
}

fn handle_hyperv(
    tree: &SysTree,
    parent: SysDevice,
    c: &mut Composer,
    guid_len: usize,
) -> Option<SysDevice> {
    let host = ancestor_with(tree, &parent, "scsi", "scsi_host")?;
    let vmbus = tree.parent(&host)?;
    let guid = vmbus.attr("device_id")?;
    let bytes = guid.as_bytes();
    if bytes.len() < guid_len || bytes[0] != b'{' || bytes[guid_len - 1] != b'}' {
        return None;
    }
    let compact: String = bytes[1..guid_len - 1]
        .iter()
        .filter(|&&b| b != b'-')
        .map(|&b| char::from(b))
        .collect();
    prepend_with_lun(c, &format!("vmbus-{compact}"), &parent);
    Some(parent)
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
#[path = "path_id_tests.rs"]
pub(crate) mod tests;
