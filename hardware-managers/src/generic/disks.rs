//! Block devices from `/sys/block`, with IPA's inventory rules.
//!
//! Listed: disks (sd, vd, nvme, xvd, mmcblk, ...), md arrays whose level is a RAID level,
//! device-mapper multipath and dmraid devices. Skipped: `ram*`, `zram*`, `fd*`, optical
//! drives, hidden devices (NVMe multipath paths), empty devices, plain device-mapper devices
//! (LVM, crypt), paths that belong to a multipath device, and loop devices unless they are
//! on the allow-list. With partitions, each disk is followed by its partitions.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use tracing::debug;

use super::identity::{self, DiskIds};
use super::model;
use super::path_id;
use super::sysfs::{link_basename, list_dir, natural_cmp, read_trimmed, read_u64};
use super::udev::UdevProperties;
use super::wwn::Wwn;
use crate::error::{HardwareError, HardwareResult};
use crate::hints::{HintKey, HintTarget};
use crate::inventory::BlockDevice;

/// The kernel's unit for `size` attributes.
const SECTOR: u64 = 512;

/// Where and what to list.
pub(crate) struct DiskScan<'a> {
    /// Filesystem root (`/` or a fake tree).
    pub root: &'a Path,
    /// Loop devices listed as disks (`/dev/loopN`).
    pub allowed: &'a [PathBuf],
}

impl DiskScan<'_> {
    /// Lists block devices, partitions too when `include_partitions`.
    pub fn list(&self, include_partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
        let sys_block = self.root.join("sys/block");
        let entries = fs::read_dir(&sys_block)
            .map_err(|e| HardwareError::io(format!("listing {}", sys_block.display()), e))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        let by_path = by_path_source(self.root);

        let mut out = Vec::new();
        for name in names {
            let dir = sys_block.join(&name);
            if !self.is_listed(&dir, &name, include_partitions) {
                continue;
            }
            let disk = self.describe_disk(&dir, &name, &by_path);
            if include_partitions {
                let parts: Vec<BlockDevice> = partitions(&dir, &name)
                    .into_iter()
                    .filter_map(|p| self.describe_partition(&dir.join(&p), &p, &disk, &by_path))
                    .collect();
                out.push(disk);
                out.extend(parts);
            } else {
                out.push(disk);
            }
        }
        Ok(out)
    }

    /// Whether `/sys/block/<name>` belongs in the listing.
    fn is_listed(&self, dir: &Path, name: &str, include_partitions: bool) -> bool {
        if ["ram", "zram", "fd", "sr"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            return false;
        }
        if name.starts_with("loop") && !self.allowed.iter().any(|a| *a == dev_path(name)) {
            return false;
        }
        // SCSI peripheral type 5 is a CD/DVD drive (lsblk TYPE `rom`).
        if read_u64(&dir.join("device/type")) == Some(5) || read_u64(&dir.join("hidden")) == Some(1)
        {
            return false;
        }
        if read_u64(&dir.join("size")).unwrap_or(0) == 0 {
            return false;
        }
        if name.starts_with("dm-") {
            let kind = dm_kind(dir);
            if kind != "mpath" && !kind.contains("raid") {
                debug!(device = name, kind, "skipping device-mapper device");
                return false;
            }
        } else if name.starts_with("md") && dir.join("md").is_dir() {
            let level = read_trimmed(&dir.join("md/level")).unwrap_or_default();
            if !level.contains("raid") && !include_partitions {
                return false;
            }
        }
        if is_multipath_member(dir) {
            debug!(device = name, "skipping multipath member path");
            return false;
        }
        true
    }

    /// The inventory entry of a whole device.
    fn describe_disk(&self, dir: &Path, name: &str, by_path: &ByPath) -> BlockDevice {
        let device = dir.join("device");
        let udev = UdevProperties::read(self.root, read_trimmed(&dir.join("dev")).as_deref());
        let ids = disk_ids(self.root, dir, name, &udev);
        BlockDevice {
            name: dev_path(name).to_string_lossy().into_owned(),
            model: model::lsblk_model(&udev, &device),
            size: size_bytes(dir),
            rotational: read_u64(&dir.join("queue/rotational")) == Some(1),
            wwn: ids.wwn,
            serial: ids.serial,
            vendor: read_trimmed(&device.join("vendor")),
            wwn_with_extension: ids.wwn_with_extension,
            wwn_vendor_extension: ids.wwn_vendor_extension,
            hctl: list_dir(&device.join("scsi_device")).into_iter().next(),
            by_path: by_path.get(name),
            logical_sectors: read_u64(&dir.join("queue/logical_block_size")),
            physical_sectors: read_u64(&dir.join("queue/physical_block_size")),
            tran: transport(dir, name),
            uuid: udev.get("ID_FS_UUID"),
            partuuid: None,
        }
    }

    /// The inventory entry of partition `name` of `disk`; `None` when empty.
    fn describe_partition(
        &self,
        dir: &Path,
        name: &str,
        disk: &BlockDevice,
        by_path: &ByPath,
    ) -> Option<BlockDevice> {
        let size = size_bytes(dir);
        if size == 0 {
            return None;
        }
        let udev = UdevProperties::read(self.root, read_trimmed(&dir.join("dev")).as_deref());
        Some(BlockDevice {
            name: dev_path(name).to_string_lossy().into_owned(),
            model: None,
            size,
            rotational: disk.rotational,
            wwn: None,
            serial: None,
            vendor: None,
            wwn_with_extension: None,
            wwn_vendor_extension: None,
            hctl: None,
            by_path: by_path.get(name),
            logical_sectors: disk.logical_sectors,
            physical_sectors: disk.physical_sectors,
            tran: None,
            uuid: udev.get("ID_FS_UUID"),
            partuuid: udev.get("ID_PART_ENTRY_UUID"),
        })
    }
}

/// The inventory's serial and WWNs of disk `name` (sysfs directory `dir`): lsblk's view of
/// udev's record when it names the device (sysfs values filling its gaps); without one, the
/// properties udev would have recorded, computed from sysfs ([`identity`]); for devices
/// that module does not know, the sysfs `serial` and `wwid` attributes.
fn disk_ids(root: &Path, dir: &Path, name: &str, udev: &UdevProperties) -> DiskIds {
    if identity::has_identity(udev) {
        identity::inventory_view(udev).or(sysfs_ids(dir))
    } else if let Some(props) = identity::synthesize(root, dir, name) {
        identity::inventory_view(&props)
    } else {
        sysfs_ids(dir)
    }
}

/// Serial and WWNs from the plain sysfs attributes (`serial`, `wwid`).
fn sysfs_ids(dir: &Path) -> DiskIds {
    let device = dir.join("device");
    let wwn = read_trimmed(&dir.join("wwid"))
        .or_else(|| read_trimmed(&device.join("wwid")))
        .map(|w| Wwn::from_wwid(&w))
        .unwrap_or_default();
    DiskIds {
        serial: read_trimmed(&device.join("serial")).or_else(|| read_trimmed(&dir.join("serial"))),
        wwn: wwn.wwn,
        wwn_with_extension: wwn.with_extension,
        wwn_vendor_extension: wwn.vendor_extension,
    }
}

/// The hint-matching view of `device`: its inventory values plus every other serial and WWN
/// that sysfs and udev know it by (IPA matches hints against all of them), the inventory's
/// value first.
pub(crate) fn hint_target(root: &Path, device: &BlockDevice) -> HintTarget {
    let mut target = HintTarget::from(device);
    let Some(name) = device.name.strip_prefix("/dev/") else {
        return target;
    };
    let Some(dir) = [
        root.join("sys/class/block").join(name),
        root.join("sys/block").join(name),
    ]
    .into_iter()
    .find(|d| d.is_dir()) else {
        return target;
    };
    let sys = dir.join("device");
    let udev = UdevProperties::read(root, read_trimmed(&dir.join("dev")).as_deref());
    let sysfs_wwn = read_trimmed(&dir.join("wwid"))
        .or_else(|| read_trimmed(&sys.join("wwid")))
        .map(|w| Wwn::from_wwid(&w))
        .unwrap_or_default();
    let sources = [
        (HintKey::Serial, udev.get("ID_SERIAL_SHORT")),
        (HintKey::Serial, read_trimmed(&sys.join("serial"))),
        (HintKey::Serial, read_trimmed(&dir.join("serial"))),
        (HintKey::Serial, udev.get("ID_SERIAL")),
        (HintKey::Serial, udev.get("DM_SERIAL")),
        (HintKey::Wwn, udev.get("ID_WWN")),
        (HintKey::Wwn, sysfs_wwn.wwn),
        (HintKey::Wwn, udev.get("DM_WWN")),
        (HintKey::WwnWithExtension, udev.get("ID_WWN_WITH_EXTENSION")),
        (HintKey::WwnWithExtension, sysfs_wwn.with_extension),
        (
            HintKey::WwnVendorExtension,
            udev.get("ID_WWN_VENDOR_EXTENSION"),
        ),
        (HintKey::WwnVendorExtension, sysfs_wwn.vendor_extension),
    ];
    for (key, value) in sources {
        if let Some(value) = value {
            target.add_identifier(key, &value);
        }
    }
    // What udev would have recorded, for hints written against a udev system's values.
    if let Some(props) = identity::synthesize(root, &dir, name) {
        for (key, prop) in [
            (HintKey::Serial, "ID_SCSI_SERIAL"),
            (HintKey::Serial, "ID_SERIAL_SHORT"),
            (HintKey::Serial, "ID_SERIAL"),
            (HintKey::Wwn, "ID_WWN"),
            (HintKey::Wwn, "ID_WWN_WITH_EXTENSION"),
            (HintKey::WwnWithExtension, "ID_WWN_WITH_EXTENSION"),
            (HintKey::WwnVendorExtension, "ID_WWN_VENDOR_EXTENSION"),
        ] {
            if let Some(value) = props.get(prop) {
                target.add_identifier(key, &value);
            }
        }
    }
    target
}

/// `/dev/<name>`.
fn dev_path(name: &str) -> PathBuf {
    Path::new("/dev").join(name)
}

/// `size` (in 512-byte sectors whatever the logical block size) in bytes.
fn size_bytes(dir: &Path) -> u64 {
    read_u64(&dir.join("size"))
        .unwrap_or(0)
        .saturating_mul(SECTOR)
}

/// lsblk's TYPE for a device-mapper device: the lower-cased prefix of its `dm/uuid`
/// (`mpath`, `lvm`, `crypt`, `dmraid`, ...), or `dm` without one.
fn dm_kind(dir: &Path) -> String {
    read_trimmed(&dir.join("dm/uuid"))
        .and_then(|u| {
            u.split_once('-')
                .map(|(prefix, _)| prefix.to_ascii_lowercase())
        })
        .unwrap_or_else(|| "dm".to_string())
}

/// Whether a device is one path of a multipath device (held by a `mpath` dm device).
fn is_multipath_member(dir: &Path) -> bool {
    let holders = dir.join("holders");
    list_dir(&holders).iter().any(|h| {
        h.starts_with("dm-")
            && read_trimmed(&holders.join(h).join("dm/uuid"))
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("mpath-"))
    })
}

/// The partitions of disk `name`: its sub-directories that have a `partition` attribute.
fn partitions(dir: &Path, name: &str) -> Vec<String> {
    let mut parts: Vec<String> = list_dir(dir)
        .into_iter()
        .filter(|p| p.starts_with(name) && dir.join(p).join("partition").is_file())
        .collect();
    parts.sort_by(|a, b| natural_cmp(a, b));
    parts
}

/// The transport, from the device's position in the sysfs tree as lsblk derives it: `nvme`,
/// `usb`, `sata` (libata), `sas` (SAS end device), `fc` (FC remote port), `iscsi` (session),
/// else `None` (virtio, md, dm, ...).
fn transport(dir: &Path, name: &str) -> Option<String> {
    if name.starts_with("nvme") {
        return Some("nvme".to_string());
    }
    let target = fs::read_link(dir).ok()?;
    let parts: Vec<String> = target
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let has = |pred: &dyn Fn(&str) -> bool| parts.iter().any(|p| pred(p));
    let numbered = |p: &str, prefix: &str| {
        p.strip_prefix(prefix)
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
    };
    let tran = if has(&|p| p.starts_with("usb")) {
        "usb"
    } else if has(&|p| numbered(p, "ata")) {
        "sata"
    } else if has(&|p| p.starts_with("end_device-")) {
        "sas"
    } else if has(&|p| p.starts_with("rport-")) {
        "fc"
    } else if has(&|p| numbered(p, "session")) {
        "iscsi"
    } else {
        return None;
    };
    Some(tran.to_string())
}

/// Where the by-path names come from: udev's links when `/dev/disk/by-path` exists (a udev
/// system), else computed from sysfs as udev would name them ([`path_id`]).
enum ByPath {
    /// `kernel name → /dev/disk/by-path/<link>` from the symlinks.
    Links(HashMap<String, String>),
    /// Computed under this root.
    Computed(PathBuf),
}

impl ByPath {
    /// The by-path name of block device `name` (first link by name).
    fn get(&self, name: &str) -> Option<String> {
        match self {
            ByPath::Links(map) => map.get(name).cloned(),
            ByPath::Computed(root) => path_id::by_path(root, name),
        }
    }
}

/// The by-path names under `root`: the links when `/dev/disk/by-path` exists, else computed.
fn by_path_source(root: &Path) -> ByPath {
    if root.join("dev/disk/by-path").is_dir() {
        ByPath::Links(by_path_links(root))
    } else {
        ByPath::Computed(root.to_path_buf())
    }
}

/// `kernel name → /dev/disk/by-path/<link>` from the by-path symlinks (first link by name).
fn by_path_links(root: &Path) -> HashMap<String, String> {
    let dir = root.join("dev/disk/by-path");
    let mut map = HashMap::new();
    for link in list_dir(&dir) {
        if let Some(target) = link_basename(&dir.join(&link)) {
            map.entry(target)
                .or_insert_with(|| format!("/dev/disk/by-path/{link}"));
        }
    }
    map
}
