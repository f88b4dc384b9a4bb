//! Choosing the install disk: the skip list removes disks first; then the
//! first disk matching the root-device hints, or without hints the smallest disk of at
//! least 4 GiB.

use tracing::{debug, info};

use crate::error::{HardwareError, HardwareResult};
use crate::hints::{HintTarget, RootDeviceHints, SkipList};

/// The smallest disk IPA considers for the root device: 4 GiB.
pub(crate) const MIN_INSTALL_DEVICE_SIZE: u64 = 4 << 30;

/// Picks the install device among `devices` (in listing order).
///
/// # Errors
/// [`HardwareError::DeviceNotFound`] when no disk qualifies, saying why for each disk.
pub(crate) fn choose(
    devices: &[HintTarget],
    hints: Option<&RootDeviceHints>,
    skip: &SkipList,
) -> HardwareResult<String> {
    let mut candidates = Vec::with_capacity(devices.len());
    let mut skipped = Vec::new();
    for device in devices {
        match skip.matching_entry(device) {
            Some(entry) => {
                info!(device = %device.name, entry = %entry, "skipping device listed in properties.skip_block_devices");
                skipped.push(format!("{} (entry {entry})", device.name));
            }
            None => candidates.push(device.clone()),
        }
    }
    let skipped_note = if skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; skipped by properties.skip_block_devices: {}",
            skipped.join(", ")
        )
    };
    let Some(hints) = hints else {
        return smallest_eligible(&candidates, &skipped_note);
    };
    debug!(%hints, devices = candidates.len(), "matching root device hints");
    if let Some(device) = hints.first_match(&candidates) {
        info!(device = %device.name, %hints, "picked the root device matching the root device hints");
        return Ok(device.name.clone());
    }
    let considered = if candidates.is_empty() {
        "no disk to consider".to_string()
    } else {
        format!("disks considered: {}", hints.explain(&candidates))
    };
    Err(HardwareError::DeviceNotFound(format!(
        "no suitable device was found for deployment using the root device hints {hints}; \
         {considered}{skipped_note}"
    )))
}

/// The smallest device of at least 4 GiB, ties broken by name.
fn smallest_eligible(devices: &[HintTarget], skipped_note: &str) -> HardwareResult<String> {
    let chosen = devices
        .iter()
        .filter(|d| d.size >= MIN_INSTALL_DEVICE_SIZE)
        .min_by(|a, b| (a.size, &a.name).cmp(&(b.size, &b.name)));
    if let Some(device) = chosen {
        info!(device = %device.name, size = device.size, "picked the smallest disk of at least 4 GiB as root device");
        return Ok(device.name.clone());
    }
    let sizes: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({} bytes)", d.name, d.size))
        .collect();
    let listed = if sizes.is_empty() {
        String::new()
    } else {
        format!(" ({})", sizes.join(", "))
    };
    Err(HardwareError::DeviceNotFound(format!(
        "no suitable device was found for deployment: none of {} disk(s){listed} is at least \
         4 GiB{skipped_note}",
        devices.len()
    )))
}
