//! Field-by-field comparison of an inventory with IPA 13's, with the justified exceptions:
//! shared by the host oracle (`tests/inventory_oracle.rs`) and the QEMU guest one
//! (`tests/vm.rs`), and summarised in the README ("Differences from IPA's inventory").

use serde_json::{Value, json};

/// The fields the comparison must have seen in IPA's inventory (a guard against both sides
/// silently dropping a field). `[]` means every element of a list.
pub const FIELDS: &[&str] = &[
    "cpu.model_name",
    "cpu.frequency",
    "cpu.count",
    "cpu.architecture",
    "cpu.flags",
    "cpu.socket_count",
    "memory.total",
    "memory.physical_mb",
    "disks[].name",
    "disks[].size",
    "disks[].model",
    "disks[].vendor",
    "disks[].serial",
    "disks[].wwn",
    "disks[].wwn_with_extension",
    "disks[].wwn_vendor_extension",
    "disks[].rotational",
    "disks[].by_path",
    "disks[].hctl",
    "disks[].tran",
    "disks[].logical_sectors",
    "disks[].physical_sectors",
    "interfaces[].name",
    "interfaces[].mac_address",
    "interfaces[].ipv4_address",
    "interfaces[].ipv6_address",
    "interfaces[].driver",
    "interfaces[].speed_mbps",
    "interfaces[].has_carrier",
    "interfaces[].lldp",
    "interfaces[].vendor",
    "interfaces[].product",
    "interfaces[].biosdevname",
    "interfaces[].client_id",
    "interfaces[].pci_address",
    "system_vendor.product_name",
    "system_vendor.serial_number",
    "system_vendor.manufacturer",
    "system_vendor.firmware.vendor",
    "system_vendor.firmware.version",
    "system_vendor.firmware.build_date",
    "boot.current_boot_mode",
    "boot.pxe_interface",
    "bmc_address",
    "bmc_v6address",
    "hostname",
];

/// A difference accepted with its reason, when `applies(ipa, ours, without_udev)` holds.
pub struct Exception {
    /// The field, as in [`FIELDS`].
    pub path: &'static str,
    /// Why the two agents differ there.
    pub reason: &'static str,
    /// Whether this difference is the one explained (anything else still fails).
    pub applies: fn(&Value, &Value, bool) -> bool,
}

/// IPA saw nothing because the machine runs no udev, and we computed a value.
fn ipa_blind_without_udev(ipa: &Value, ours: &Value, without_udev: bool) -> bool {
    ipa.is_null() && !ours.is_null() && without_udev
}

const WITHOUT_UDEV: &str = "IPA reads it from udev (pyudev's properties, lsblk's columns, \
     /dev/disk/by-path) and the machine runs no udevd, so IPA reports null; our agent computes \
     it from sysfs and the VPD pages as udev would, so that root device hints work on a \
     ramdisk without udev (issue 16, item 4)";

/// IPA shows a fixed-width sysfs field padded with spaces, ours is the same text trimmed.
fn padded_by_lsblk(ipa: &Value, ours: &Value, without_udev: bool) -> bool {
    match (ipa.as_str(), ours.as_str()) {
        (Some(i), Some(o)) => without_udev && i != o && i.trim_end() == o,
        _ => false,
    }
}

const PADDED: &str = "IPA passes lsblk's MODEL/SERIAL/VENDOR through, and without udev lsblk \
     reads sysfs's fixed-width attributes verbatim, padded with spaces (an ATA model to 16, an \
     NVMe serial to 20, its model to 40 characters); our agent reports them trimmed, as the \
     values udev records are on IPA's own ramdisks (and as Ironic's hint matching strips \
     them): equal up to trailing whitespace";

/// The justified differences (summarised in the README, "Differences from IPA's inventory").
pub const EXCEPTIONS: &[Exception] = &[
    Exception {
        path: "disks[].serial",
        reason: WITHOUT_UDEV,
        applies: ipa_blind_without_udev,
    },
    Exception {
        path: "disks[].wwn",
        reason: WITHOUT_UDEV,
        applies: ipa_blind_without_udev,
    },
    Exception {
        path: "disks[].wwn_with_extension",
        reason: WITHOUT_UDEV,
        applies: ipa_blind_without_udev,
    },
    Exception {
        path: "disks[].wwn_vendor_extension",
        reason: WITHOUT_UDEV,
        applies: ipa_blind_without_udev,
    },
    Exception {
        path: "disks[].by_path",
        reason: WITHOUT_UDEV,
        applies: ipa_blind_without_udev,
    },
    Exception {
        path: "disks[].model",
        reason: PADDED,
        applies: padded_by_lsblk,
    },
    Exception {
        path: "disks[].serial",
        reason: PADDED,
        applies: padded_by_lsblk,
    },
    Exception {
        path: "disks[].vendor",
        reason: PADDED,
        applies: padded_by_lsblk,
    },
];

/// One field that differs.
#[derive(Debug)]
pub struct Diff {
    /// Concrete path (`disks[/dev/vda].serial`).
    pub path: String,
    /// The path's pattern (`disks[].serial`), as in [`FIELDS`] and [`EXCEPTIONS`].
    pub pattern: String,
    /// IPA's value (`"<absent>"` when it has no such key).
    pub ipa: Value,
    /// Ours, likewise.
    pub ours: Value,
}

/// Lists keyed by an element field rather than compared by position.
fn list_key(pattern: &str) -> Option<&'static str> {
    match pattern {
        "disks" | "interfaces" => Some("name"),
        _ => None,
    }
}

/// Compares `ipa` with `ours` recursively (`seen` collects the patterns visited); absent keys compare as missing (not as null).
pub fn diff(
    path: &str,
    pattern: &str,
    ipa: &Value,
    ours: &Value,
    seen: &mut Vec<String>,
    out: &mut Vec<Diff>,
) {
    seen.push(pattern.to_string());
    let join = |p: &str, k: &str| {
        if p.is_empty() {
            k.to_string()
        } else {
            format!("{p}.{k}")
        }
    };
    match (ipa, ours, list_key(pattern)) {
        (Value::Object(a), Value::Object(b), _) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let missing = json!("<absent>");
                diff(
                    &join(path, k),
                    &join(pattern, k),
                    a.get(k).unwrap_or(&missing),
                    b.get(k).unwrap_or(&missing),
                    seen,
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b), Some(key)) => {
            let name = |v: &Value| v[key].as_str().unwrap_or("?").to_string();
            let names: std::collections::BTreeSet<String> = a.iter().chain(b).map(name).collect();
            for n in names {
                let missing = json!("<absent>");
                let find = |l: &[Value]| l.iter().find(|v| name(v) == n).cloned();
                diff(
                    &format!("{path}[{n}]"),
                    &format!("{pattern}[]"),
                    &find(a).unwrap_or(missing.clone()),
                    &find(b).unwrap_or(missing),
                    seen,
                    out,
                );
            }
        }
        _ if ipa != ours => out.push(Diff {
            path: path.to_string(),
            pattern: pattern.to_string(),
            ipa: ipa.clone(),
            ours: ours.clone(),
        }),
        _ => {}
    }
}

/// The differences between `ipa` and `ours` that [`EXCEPTIONS`] does not explain (those are
/// printed with their reason, prefixed by `name`). `without_udev`: the machine runs no udev.
///
/// # Panics
/// When a field of [`FIELDS`] was not compared (IPA's inventory lacks it).
pub fn unexplained(name: &str, ipa: &Value, ours: &Value, without_udev: bool) -> Vec<Diff> {
    let mut seen = Vec::new();
    let mut diffs = Vec::new();
    diff("", "", ipa, ours, &mut seen, &mut diffs);
    for field in FIELDS {
        assert!(
            seen.iter().any(|s| s == field),
            "{field} was not compared (IPA: {ipa:#})"
        );
    }
    let (explained, unexplained): (Vec<Diff>, Vec<Diff>) = diffs.into_iter().partition(|d| {
        EXCEPTIONS
            .iter()
            .any(|e| e.path == d.pattern && (e.applies)(&d.ipa, &d.ours, without_udev))
    });
    for d in &explained {
        let reason = EXCEPTIONS
            .iter()
            .find(|e| e.path == d.pattern && (e.applies)(&d.ipa, &d.ours, without_udev))
            .map_or("", |e| e.reason);
        eprintln!(
            "{name}: accepted difference {}: IPA {} / ours {} ({reason})",
            d.path, d.ipa, d.ours
        );
    }
    unexplained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_keyed_and_absent_fields() {
        let ipa = json!({"disks": [{"name": "/dev/a", "serial": null}, {"name": "/dev/b"}],
                     "cpu": {"flags": ["a", "b"]}, "hostname": "h"});
        let ours = json!({"disks": [{"name": "/dev/b"}, {"name": "/dev/a", "serial": "S"}],
                      "cpu": {"flags": ["b", "a"]}, "bmc_mac": null, "hostname": "h"});
        let (mut seen, mut out) = (Vec::new(), Vec::new());
        diff("", "", &ipa, &ours, &mut seen, &mut out);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|d| (d.path.as_str(), d.pattern.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bmc_mac", "bmc_mac"),
                ("cpu.flags", "cpu.flags"),
                ("disks[/dev/a].serial", "disks[].serial")
            ]
        );
        assert_eq!(out[0].ipa, "<absent>");
        assert!(seen.iter().any(|s| s == "disks[].name"));
    }
}
