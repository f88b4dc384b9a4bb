//! The `pci-devices`, `numa-topology`, `dmi-decode` and `usb-devices` collectors: IPA 13's
//! keys, values and failure behaviour, from [`hardware_managers::collectors`].

use std::path::Path;

use hardware_managers::collectors::dmi::{self, DmiTables};
use hardware_managers::collectors::numa::{self, NumaError, NumaTopology};
use hardware_managers::collectors::pci::{self, PciDevice};
use hardware_managers::collectors::usb::{self, UsbDevice};
use serde::Serialize;
use tracing::{error, warn};

/// What these collectors add to the inspection data (each key only when its collector ran
/// and, for `numa_topology` and `dmi`, produced it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HardwareData {
    /// `pci-devices`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_devices: Option<Vec<PciDevice>>,
    /// `numa-topology`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numa_topology: Option<NumaTopology>,
    /// `dmi-decode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dmi: Option<DmiTables>,
    /// `usb-devices`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usb_devices: Option<Vec<UsbDevice>>,
}

/// `pci-devices`: the list, or (no key) IPA's failure when the bus cannot be listed.
pub fn pci_devices(root: &Path, data: &mut HardwareData, failures: &mut Vec<String>) {
    match pci::collect(root) {
        Ok(list) => data.pci_devices = Some(list),
        Err(e) => {
            error!(error = %e, "pci-devices collector failed");
            failures.push(e.to_string());
        }
    }
}

/// `numa-topology`: a malformed or missing node tree is only a warning (no key), as IPA.
pub fn numa_topology(root: &Path, data: &mut HardwareData, failures: &mut Vec<String>) {
    match numa::collect(root) {
        Ok(t) => data.numa_topology = Some(t),
        Err(NumaError::Skipped(why)) => warn!(%why, "failed to get some NUMA information"),
        Err(NumaError::Failed(why)) => {
            failures.push(format!("collector numa-topology failed: {why}"))
        }
    }
}

/// `dmi-decode`: runs `program` (`dmidecode`); its absence or failure is a collector failure.
pub fn dmi_decode(program: &str, data: &mut HardwareData, failures: &mut Vec<String>) {
    let got = dmi::collect(program);
    data.dmi = got.dmi;
    if let Some(f) = got.failure {
        error!(failure = %f, "dmi-decode collector failed");
        failures.push(f);
    }
}

/// `usb-devices`: the devices lshw would report as generic USB devices (see
/// [`hardware_managers::collectors::usb`]).
pub fn usb_devices(root: &Path, data: &mut HardwareData) {
    data.usb_devices = Some(usb::collect(root));
}

/// Runs collector `name` (one of the four above; others are ignored).
pub fn collect(name: &str, root: &Path, data: &mut HardwareData, failures: &mut Vec<String>) {
    match name {
        "pci-devices" => pci_devices(root, data, failures),
        "numa-topology" => numa_topology(root, data, failures),
        "dmi-decode" => dmi_decode("dmidecode", data, failures),
        "usb-devices" => usb_devices(root, data),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_and_failures_as_ipa() {
        let empty = tempfile::tempdir().unwrap();
        let mut data = HardwareData::default();
        let mut failures = Vec::new();
        assert_eq!(serde_json::to_value(&data).unwrap(), json!({}));
        // No PCI bus: IPA's failure, no key. No NUMA tree: a warning only. No USB: [].
        for name in ["pci-devices", "numa-topology", "usb-devices"] {
            collect(name, empty.path(), &mut data, &mut failures);
        }
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].starts_with("Failed to get list of PCI devices: [Errno 2] No such file"),
            "{failures:?}"
        );
        dmi_decode("dmidecode-not-installed", &mut data, &mut failures);
        assert_eq!(
            failures[1],
            "failed to run dmidecode: [Errno 2] No such file or directory: 'dmidecode-not-installed'"
        );
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            json!({"usb_devices": []})
        );
        data.dmi = Some(dmi::DmiTables::Unparsed(dmi::Empty {}));
        assert_eq!(serde_json::to_value(&data).unwrap()["dmi"], json!({}));
    }
}
