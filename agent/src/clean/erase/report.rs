//! The errors erase steps return: one aggregated `BlockDeviceEraseError` naming every device
//! that failed and why, or a `ProtectedDeviceError`.

use hardware_managers::{HardwareError, IpaClass};

use super::protect::Protected;

/// One device that could not be erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The device path.
    pub device: String,
    /// Why, in words an operator can act on.
    pub reason: String,
}

impl Failure {
    /// A failure of `device`.
    pub fn new(device: &str, reason: impl Into<String>) -> Self {
        Failure {
            device: device.to_string(),
            reason: reason.into(),
        }
    }
}

/// `Ok` without failures; else a `BlockDeviceEraseError` whose message starts with `summary`
/// and lists `"<device>": <reason>` for each failure, separated by `; `.
pub fn aggregate(summary: &str, failures: &[Failure]) -> Result<(), HardwareError> {
    if failures.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = failures
        .iter()
        .map(|f| format!("\"{}\": {}", f.device, f.reason))
        .collect();
    Err(HardwareError::ipa(
        IpaClass::BlockDeviceEraseError,
        format!("{summary}: {}", list.join("; ")),
    ))
}

/// A `ProtectedDeviceError` for every protected device found (nothing was erased).
pub fn protected(found: &[Protected]) -> HardwareError {
    HardwareError::ipa(
        IpaClass::ProtectedDeviceError,
        found
            .iter()
            .map(Protected::message)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_every_device() {
        assert!(aggregate("Failed", &[]).is_ok());
        let e = aggregate(
            "Failed to erase the device(s)",
            &[
                Failure::new("/dev/sda", "frozen"),
                Failure::new("/dev/nvme0n1", "`nvme format` failed"),
            ],
        )
        .err();
        assert_eq!(
            e.as_ref().map(HardwareError::ipa_type),
            Some("BlockDeviceEraseError")
        );
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "Failed to erase the device(s): \"/dev/sda\": frozen; \"/dev/nvme0n1\": `nvme \
                 format` failed"
            )
        );
        let p = protected(&[Protected {
            device: "/dev/sdb".into(),
            what: "IBM GPFS Partition".into(),
        }]);
        assert_eq!(p.ipa_type(), "ProtectedDeviceError");
        assert!(
            p.to_string()
                .starts_with("Protected IBM GPFS Partition located on device /dev/sdb.")
        );
    }
}
