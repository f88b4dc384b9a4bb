//! `disk` facts: the count, then per disk its size (GB), sysfs identity and queue tunables,
//! the SCSI cache mode, `/dev/disk/by-id` names and SMART data (with `smartctl`).

use std::fs;

use super::tools::{self, first_line};
use super::{Facts, Root, smart};
use crate::generic::sysfs::{list_dir, natural_cmp};

/// The sysfs attributes reported for each disk (`device/rev` falls back to
/// `device/revision`; each falls back to the nested `device/device/` of NVMe).
const INFO: [&str; 7] = [
    "device/vendor",
    "device/model",
    "device/rev",
    "queue/optimal_io_size",
    "queue/physical_block_size",
    "queue/rotational",
    "queue/nr_requests",
];

/// Whether `hardware-detect` looks at this block device: `sd*`, `hd*`, `vd*` and `nvme*`.
pub fn is_disk_name(name: &str) -> bool {
    let b = name.as_bytes();
    (b.len() > 1 && b[1] == b'd' && matches!(b[0], b's' | b'h' | b'v')) || name.starts_with("nvme")
}

/// Size in decimal GB, rounded down, from a count of 512-byte sectors.
pub fn size_gb(sectors: u64) -> u64 {
    sectors.saturating_mul(512) / 1_000_000_000
}

/// The disks with a non-zero size, in natural order, with their size in GB.
pub fn disks(root: &Root) -> Vec<(String, u64)> {
    let mut names: Vec<String> = list_dir(&root.path("/sys/block"))
        .into_iter()
        .filter(|n| is_disk_name(n))
        .collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names
        .into_iter()
        .filter_map(|n| {
            let sectors = first_line(&root.path(&format!("/sys/block/{n}/size")))?
                .trim()
                .parse()
                .ok()?;
            let gb = size_gb(sectors);
            (gb > 0).then_some((n, gb))
        })
        .collect()
}

/// Adds the `disk` facts.
pub fn detect(root: &Root, facts: &mut Facts) {
    let disks = disks(root);
    facts.push("disk", "logical", "count", disks.len().to_string());
    let smartctl = tools::available(root, "smartctl");
    for (name, gb) in &disks {
        facts.push("disk", name, "size", gb.to_string());
        sysfs_info(root, name, facts);
        if !name.starts_with("nvme") {
            cache(root, name, facts);
        }
        by_id(root, name, facts);
        if smartctl {
            if name.starts_with("nvme") {
                smart::read_nvme(root, name, facts);
            } else {
                smart::read(root, name, facts);
            }
        }
    }
}

fn sysfs_info(root: &Root, name: &str, facts: &mut Facts) {
    let base = format!("/sys/block/{name}");
    for info in INFO {
        let mut info = info;
        let mut path = root.path(&format!("{base}/{info}"));
        if !path.exists() && info == "device/rev" {
            info = "device/revision";
        }
        if !path.exists() {
            path = root.path(&format!("{base}/device/{info}"));
        }
        if let Some(line) = first_line(&path) {
            let key = info.split('/').nth(1).unwrap_or(info);
            facts.push("disk", name, key, line.trim());
        }
    }
    if let Some(line) = first_line(&root.path(&format!("{base}/queue/scheduler")))
        && let Some(active) = line.split('[').nth(1).and_then(|s| s.split(']').next())
    {
        facts.push("disk", name, "scheduler", active);
    }
}

/// `Write Cache Enable` / `Read Cache Disable` from the SCSI disk's `cache_type`.
pub fn cache_flags(cache_type: &str) -> (&'static str, &'static str) {
    match cache_type {
        "write through" => ("0", "0"),
        "none" => ("0", "1"),
        t if t.contains("daft") => ("1", "1"),
        _ => ("1", "0"),
    }
}

fn cache(root: &Root, name: &str, facts: &mut Facts) {
    let device = root.path(&format!("/sys/block/{name}/device"));
    let Some(addr) = fs::read_link(&device)
        .ok()
        .and_then(|t| t.file_name().map(|f| f.to_string_lossy().into_owned()))
    else {
        return;
    };
    let Some(cache_type) = first_line(&device.join(format!("scsi_disk/{addr}/cache_type"))) else {
        return;
    };
    let (wce, rcd) = cache_flags(cache_type.trim());
    facts.push("disk", name, "Write Cache Enable", wce);
    facts.push("disk", name, "Read Cache Disable", rcd);
}

fn by_id(root: &Root, name: &str, facts: &mut Facts) {
    let dir = root.path("/dev/disk/by-id");
    for entry in list_dir(&dir) {
        let Ok(target) = fs::read_link(dir.join(&entry)) else {
            continue;
        };
        if target.file_name().is_some_and(|f| f == name) {
            let key = if entry.starts_with("wwn") {
                "wwn-id"
            } else if entry.starts_with("scsi") {
                "scsi-id"
            } else {
                "id"
            };
            facts.push("disk", name, key, entry.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        for n in ["sda", "vdb", "hdc", "nvme0n1"] {
            assert!(is_disk_name(n), "{n}");
        }
        for n in ["loop0", "sr0", "dm-0", "md0", "s"] {
            assert!(!is_disk_name(n), "{n}");
        }
        assert_eq!(size_gb(536_870_912), 274);
        assert_eq!(size_gb(1), 0);
    }

    #[test]
    fn fixture_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("sys/block/sda");
        fs::create_dir_all(d.join("queue")).expect("mk");
        fs::create_dir_all(d.join("device")).expect("mk");
        fs::create_dir_all(dir.path().join("sys/block/loop0")).expect("mk");
        fs::write(d.join("size"), "3907029168\n").expect("w");
        fs::write(d.join("device/vendor"), "ATA     \n").expect("w");
        fs::write(d.join("device/model"), "ST2000NM0055\n").expect("w");
        fs::write(d.join("device/rev"), "SN04\n").expect("w");
        fs::write(d.join("queue/rotational"), "1\n").expect("w");
        fs::write(d.join("queue/scheduler"), "none [mq-deadline] kyber\n").expect("w");
        let mut facts = Facts::default();
        detect(&Root::at(dir.path()), &mut facts);
        let got: Vec<(String, String)> = facts
            .iter()
            .map(|f| (f.item().to_string(), format!("{}={}", f.key(), f.value())))
            .collect();
        assert_eq!(
            got,
            [
                ("logical", "count=\"1\""),
                ("sda", "size=\"2000\""),
                ("sda", "vendor=\"ATA\""),
                ("sda", "model=\"ST2000NM0055\""),
                ("sda", "rev=\"SN04\""),
                ("sda", "rotational=\"1\""),
                ("sda", "scheduler=\"mq-deadline\""),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn cache_modes() {
        assert_eq!(cache_flags("write back"), ("1", "0"));
        assert_eq!(cache_flags("write through"), ("0", "0"));
        assert_eq!(cache_flags("none"), ("0", "1"));
        assert_eq!(cache_flags("write back, no read (daft)"), ("1", "1"));
    }
}
