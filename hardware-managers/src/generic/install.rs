//! Choosing the install disk without root-device hints (wire spec §15.2).

use serde_json::{Map, Value};

use crate::error::{HardwareError, HardwareResult};
use crate::inventory::BlockDevice;
use crate::node::Node;

/// The smallest disk IPA considers for the root device: 4 GiB.
pub(crate) const MIN_INSTALL_DEVICE_SIZE: u64 = 4 << 30;

/// Refuses nodes that carry root-device hints or a disk skip-list: both need the hint matcher,
/// which is not implemented yet, and ignoring them could install onto the wrong disk.
pub(crate) fn reject_unsupported_hints(node: Option<&Node>) -> HardwareResult<()> {
    let Some(node) = node else { return Ok(()) };
    for (source, props) in [
        ("instance_info", &node.instance_info),
        ("properties", &node.properties),
    ] {
        if let Some(hints) = non_empty(props, "root_device") {
            return Err(HardwareError::InvalidArgs(format!(
                "root device hints are not supported yet: {source}.root_device = {hints}"
            )));
        }
    }
    if let Some(skip) = non_empty(&node.properties, "skip_block_devices") {
        return Err(HardwareError::InvalidArgs(format!(
            "skip_block_devices is not supported yet: properties.skip_block_devices = {skip}"
        )));
    }
    Ok(())
}

/// `map[key]` unless it is absent, null, or an empty object, list or string.
fn non_empty<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| match v {
        Value::Null => false,
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    })
}

/// The smallest device of at least 4 GiB, ties broken by name.
pub(crate) fn smallest_eligible(devices: &[BlockDevice]) -> HardwareResult<String> {
    devices
        .iter()
        .filter(|d| d.size >= MIN_INSTALL_DEVICE_SIZE)
        .min_by(|a, b| (a.size, &a.name).cmp(&(b.size, &b.name)))
        .map(|d| d.name.clone())
        .ok_or_else(|| {
            HardwareError::DeviceNotFound(format!(
                "no suitable device was found for deployment: none of {} disk(s) is at least \
                 4 GiB",
                devices.len()
            ))
        })
}
