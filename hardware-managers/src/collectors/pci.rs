//! `pci-devices`: every device of `/sys/bus/pci/devices` as IPA 13's
//! `collect_pci_devices_info` lists it (what Ironic's `pci_devices` and `accelerators` hooks
//! match on: `vendor_id`, `product_id`, `class`).

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::pyfmt;

/// One entry of `pci_devices` (the fields in IPA's order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// `vendor` without its `0x` (`8086`).
    pub vendor_id: String,
    /// `device` without its `0x`.
    pub product_id: String,
    /// `class` without its `0x` (`020000`).
    pub class: String,
    /// `revision` without its `0x`; null when the file is absent or unreadable.
    pub revision: Option<String>,
    /// The directory name: the PCI address (`0000:00:1f.6`).
    pub bus: String,
    /// `numa_node` as written (`-1` without NUMA); null when absent.
    pub numa_node_id: Option<String>,
}

/// Why nothing could be listed: IPA's failure text, which goes to the inspection `error`.
#[derive(Debug, thiserror::Error)]
#[error("Failed to get list of PCI devices: {0}")]
pub struct PciListError(String);

/// The `pci_devices` list under `root`, in directory order (as Python's `os.listdir`).
/// A device whose `vendor`, `device` or `class` cannot be read, or lacks the `0x`, is
/// skipped with a warning, as IPA does.
///
/// # Errors
/// [`PciListError`] when `sys/bus/pci/devices` cannot be listed.
pub fn collect(root: &Path) -> Result<Vec<PciDevice>, PciListError> {
    let dir = root.join("sys/bus/pci/devices");
    let entries = fs::read_dir(&dir).map_err(|e| PciListError(pyfmt::os_error(&e, &dir)))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = dir.join(&name);
        if !path.is_dir() {
            continue;
        }
        let ids = (|| -> Result<[String; 3], Skip> {
            Ok([
                hex_field(&path, "vendor")?,
                hex_field(&path, "device")?,
                hex_field(&path, "class")?,
            ])
        })();
        let [vendor_id, product_id, class] = match ids {
            Ok(ids) => ids,
            Err(Skip::Io(e)) => {
                warn!(device = %name, error = %e, "failed to gather vendor id, product id or pci class from PCI device");
                continue;
            }
            Err(Skip::Format) => {
                warn!(device = %name, "wrong format of vendor id, product id or pci class in PCI device");
                continue;
            }
        };
        let revision_path = path.join("revision");
        let revision = if revision_path.is_file() {
            match hex_field(&path, "revision") {
                Ok(r) => Some(r),
                Err(e) => {
                    warn!(device = %name, error = ?e, "failed to gather the PCI revision");
                    None
                }
            }
        } else {
            None
        };
        let numa_path = path.join("numa_node");
        let numa_node_id = if numa_path.is_file() {
            match fs::read_to_string(&numa_path) {
                Ok(t) => Some(pyfmt::strip(&t).to_string()),
                Err(e) => {
                    warn!(device = %name, error = %e, "failed to gather the numa_node id");
                    None
                }
            }
        } else {
            None
        };
        debug!(%vendor_id, %product_id, %class, ?revision, "found a PCI device");
        out.push(PciDevice {
            vendor_id,
            product_id,
            class,
            revision,
            bus: name,
            numa_node_id,
        });
    }
    Ok(out)
}

/// Why one device is skipped.
#[derive(Debug)]
enum Skip {
    /// The file could not be read (IPA's `IOError`; here also text that is not UTF-8).
    Io(io::Error),
    /// No `x` in it (IPA's `IndexError`).
    Format,
}

/// `path/file` stripped, the part after its first `x` up to any next one (Python's
/// `.split('x')[1]`).
fn hex_field(path: &Path, file: &str) -> Result<String, Skip> {
    let text = fs::read_to_string(path.join(file)).map_err(Skip::Io)?;
    pyfmt::strip(&text)
        .split('x')
        .nth(1)
        .map(String::from)
        .ok_or(Skip::Format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(root: &Path, addr: &str, files: &[(&str, &str)]) {
        let d = root.join("sys/bus/pci/devices").join(addr);
        fs::create_dir_all(&d).unwrap();
        for (f, v) in files {
            fs::write(d.join(f), v).unwrap();
        }
    }

    #[test]
    fn lists_devices_as_ipa() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        device(
            r,
            "0000:00:1f.6",
            &[
                ("vendor", "0x8086\n"),
                ("device", "0x15bb\n"),
                ("class", "0x020000\n"),
                ("revision", "0x10\n"),
                ("numa_node", "-1\n"),
            ],
        );
        // No revision or numa_node files: nulls.
        device(
            r,
            "0000:00:02.0",
            &[
                ("vendor", "0x1af4"),
                ("device", "0x1000"),
                ("class", "0x020000"),
            ],
        );
        // Revision without 0x: null, device kept.
        device(
            r,
            "0000:00:03.0",
            &[
                ("vendor", "0x1b36"),
                ("device", "0x000d"),
                ("class", "0x0c0330"),
                ("revision", "01"),
            ],
        );
        // Skipped: class missing; vendor without 0x.
        device(
            r,
            "0000:00:04.0",
            &[("vendor", "0x1b36"), ("device", "0x1")],
        );
        device(
            r,
            "0000:00:05.0",
            &[("vendor", "8086"), ("device", "0x1"), ("class", "0x1")],
        );
        // Not a directory.
        fs::write(r.join("sys/bus/pci/devices/stray"), "").unwrap();
        let mut got = collect(r).unwrap();
        got.sort_by(|a, b| a.bus.cmp(&b.bus));
        let v = serde_json::to_value(&got).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"vendor_id": "1af4", "product_id": "1000", "class": "020000",
                 "revision": null, "bus": "0000:00:02.0", "numa_node_id": null},
                {"vendor_id": "1b36", "product_id": "000d", "class": "0c0330",
                 "revision": null, "bus": "0000:00:03.0", "numa_node_id": null},
                {"vendor_id": "8086", "product_id": "15bb", "class": "020000",
                 "revision": "10", "bus": "0000:00:1f.6", "numa_node_id": "-1"},
            ])
        );
    }

    #[test]
    fn missing_directory_is_ipas_failure() {
        let root = tempfile::tempdir().unwrap();
        let err = collect(root.path()).unwrap_err().to_string();
        let want = format!(
            "Failed to get list of PCI devices: [Errno 2] No such file or directory: '{}'",
            root.path().join("sys/bus/pci/devices").display()
        );
        assert_eq!(err, want);
    }
}
