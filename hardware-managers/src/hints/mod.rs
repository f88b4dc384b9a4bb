//! Root-device hints and the disk skip list.
//!
//! * [`root_device_hints`] reads a node's hints (`instance_info.root_device`, falling back to
//!   `properties.root_device`; either a JSON object or a string holding one) into a validated
//!   [`RootDeviceHints`].
//! * [`RootDeviceHints::first_match`] picks the first device, in listing order, that
//!   satisfies every hint; [`RootDeviceHints::explain`] says why each device did not.
//! * [`SkipList`] is `properties.skip_block_devices`: hint dictionaries naming disks that
//!   erase, RAID and install-device selection must leave alone, plus software-RAID volume
//!   names (`{"volume_name": ...}`) kept for the RAID code.
//!
//! # Expression language
//!
//! Values are matched with oslo.utils' `specs_matcher` operators, written before the value:
//!
//! | operator | meaning |
//! |---|---|
//! | `==` `!=` `>=` `<=` `>` `<` | numeric comparison; `=` is the legacy spelling of `>=` |
//! | `s==` `s!=` `s>=` `s>` `s<=` `s<` | string comparison (`s==` is the default for strings) |
//! | `<in> x` | the value contains `x` |
//! | `<all-in> x y` | the value contains `x` and `y` |
//! | `<or> a <or> b` | the value equals `a` or `b` (numerically for `size`) |
//! | `<range-in> [ 10 20 )` | numeric range, `[`/`]` inclusive, `(`/`)` exclusive |
//!
//! A bare integer for `size` means `==`; `size` is compared with the device size / 2^30 as a
//! float. Strings are trimmed, lower-cased and URL-quoted on both sides before comparison;
//! `name` accepts `sda` for `/dev/sda`, but `by_path` is compared whole, as IPA does: the hint
//! must spell the link with its `/dev/disk/by-path/` prefix (or use `<in>`). A device without the attribute satisfies only the
//! negations (`s!=`, `!=`). Serials and WWNs may have several values on a device (and the hint
//! may be a list of expressions): any value matching suffices.
//!
//! Deliberate differences from IPA, which accepts some hints it then cannot evaluate (and
//! fails the deployment with a Python exception): operators that make no sense for `size`
//! (`s==`, `<in>`, `<all-in>`) are rejected when parsing; `<or>` and `<range-in>` work for
//! `size`; numeric operators on string attributes compare the value read as a number (a
//! non-numeric value does not match); `<all-in>` tests containment of each word.

mod error;
mod key;
mod matcher;
mod parse;

use serde_json::Value;

pub use error::{ExpressionError, HintError, InvalidHint, SkipListError};
pub use key::{HintKey, HintType};
pub use matcher::{HintTarget, Mismatch};
pub use parse::{
    Condition, Hint, NumOp, RangeBound, RootDeviceHints, StrOp, bool_from_value,
    normalise_device_value, quote,
};

use crate::error::{HardwareError, HardwareResult};
use crate::node::Node;

/// The root-device hints of `node`: `instance_info.root_device`, or `properties.root_device`
/// when the former is absent or empty. `Ok(None)` without hints.
///
/// # Errors
/// [`HardwareError::InvalidArgs`] naming the field and everything wrong with the hints.
pub fn root_device_hints(node: &Node) -> HardwareResult<Option<RootDeviceHints>> {
    for (source, map) in [
        ("instance_info", &node.instance_info),
        ("properties", &node.properties),
    ] {
        let Some(value) = map.get("root_device") else {
            continue;
        };
        match RootDeviceHints::from_value(value) {
            Ok(Some(hints)) => return Ok(Some(hints)),
            Ok(None) => continue,
            Err(e) => {
                return Err(HardwareError::InvalidArgs(format!(
                    "invalid root device hints in {source}.root_device: {e}"
                )));
            }
        }
    }
    Ok(None)
}

/// `properties.skip_block_devices`: disks to leave alone, and RAID volumes to keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkipList {
    disks: Vec<RootDeviceHints>,
    raid_volumes: Vec<String>,
}

impl SkipList {
    /// The skip list of `node` (empty when it has none).
    ///
    /// # Errors
    /// [`HardwareError::InvalidArgs`] naming the entry that is wrong.
    pub fn from_node(node: &Node) -> HardwareResult<SkipList> {
        match node.properties.get("skip_block_devices") {
            None => Ok(SkipList::default()),
            Some(value) => SkipList::from_value(value).map_err(|e| {
                HardwareError::InvalidArgs(format!("invalid properties.skip_block_devices: {e}"))
            }),
        }
    }

    /// Parses a skip list: a JSON list (or a string holding one) of hint dictionaries, or of
    /// `{"volume_name": "<name>"}` for software RAID volumes. `null` and `[]` are empty.
    ///
    /// # Errors
    /// What is wrong, with the index of the entry.
    pub fn from_value(value: &Value) -> Result<SkipList, SkipListError> {
        let parsed;
        let value = match value {
            Value::String(text) if text.trim().is_empty() => return Ok(SkipList::default()),
            Value::String(text) => {
                parsed =
                    serde_json::from_str::<Value>(text).map_err(|e| SkipListError::BadJson {
                        text: text.clone(),
                        reason: e.to_string(),
                    })?;
                &parsed
            }
            other => other,
        };
        let entries = match value {
            Value::Null => return Ok(SkipList::default()),
            Value::Array(entries) => entries,
            other => return Err(SkipListError::NotAList(other.to_string())),
        };
        let mut list = SkipList::default();
        for (i, entry) in entries.iter().enumerate() {
            let Value::Object(map) = entry else {
                return Err(SkipListError::NotAnObject {
                    index: i,
                    entry: entry.to_string(),
                });
            };
            if let Some(volume) = map.get("volume_name") {
                let name = volume.as_str().map(str::trim).unwrap_or_default();
                if name.is_empty() {
                    return Err(SkipListError::VolumeName {
                        index: i,
                        entry: entry.to_string(),
                    });
                }
                if map.len() > 1 {
                    return Err(SkipListError::VolumeNameAlone {
                        index: i,
                        entry: entry.to_string(),
                    });
                }
                list.raid_volumes.push(name.to_string());
                continue;
            }
            match RootDeviceHints::from_object(map) {
                Ok(Some(hints)) => list.disks.push(hints),
                Ok(None) => {
                    return Err(SkipListError::EmptyEntry(i));
                }
                Err(reason) => {
                    return Err(SkipListError::Hints {
                        index: i,
                        entry: entry.to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(list)
    }

    /// Whether there is nothing to skip.
    pub fn is_empty(&self) -> bool {
        self.disks.is_empty() && self.raid_volumes.is_empty()
    }

    /// The hint sets naming disks to skip.
    pub fn disk_hints(&self) -> &[RootDeviceHints] {
        &self.disks
    }

    /// The software-RAID volume names to keep (for the RAID code).
    pub fn raid_volume_names(&self) -> &[String] {
        &self.raid_volumes
    }

    /// The first disk entry that `device` matches, i.e. why it is skipped.
    pub fn matching_entry(&self, device: &HintTarget) -> Option<&RootDeviceHints> {
        self.disks.iter().find(|hints| hints.matches(device))
    }
}

#[cfg(test)]
mod tests;
