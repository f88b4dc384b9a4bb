//! The erase settings Ironic puts in `node.driver_internal_info` before cleaning
//! (`agent_erase_devices_iterations`, `agent_erase_devices_zeroize`, …), parsed once into
//! [`EraseSettings`].

use hardware_managers::{HardwareError, HardwareResult, Node};
use serde_json::{Map, Value};

/// How the erase steps behave for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseSettings {
    /// `agent_erase_devices_iterations`: random passes of the overwrite (default 1).
    pub iterations: u32,
    /// `agent_erase_devices_zeroize`: a final pass of zeros (default true).
    pub zeroize: bool,
    /// `agent_continue_if_secure_erase_failed` (or the legacy
    /// `agent_continue_if_ata_erase_failed`): overwrite when a secure erase fails (default false).
    pub continue_if_secure_erase_failed: bool,
    /// `agent_enable_nvme_secure_erase` (default true).
    pub nvme_secure_erase: bool,
    /// `agent_enable_nvme_sanitize`: prefer the NVMe Sanitize command (crypto erase, else block
    /// erase) over Format when the controller supports it. Not an IPA setting (IPA only
    /// formats), so it is opt-in (default false).
    pub nvme_sanitize: bool,
    /// `agent_enable_ata_secure_erase` (default true).
    pub ata_secure_erase: bool,
    /// `disk_erasure_concurrency`: disks erased at once (default 1, at least 1).
    pub concurrency: usize,
    /// `agent_erase_skip_read_only`: skip read-only disks instead of failing (default false).
    pub skip_read_only: bool,
    /// `wipe_special_filesystems`: when false, the shared-disk filesystem guard is off
    /// (default true: the guard is on).
    pub wipe_special_filesystems: bool,
}

impl Default for EraseSettings {
    fn default() -> Self {
        EraseSettings {
            iterations: 1,
            zeroize: true,
            continue_if_secure_erase_failed: false,
            nvme_secure_erase: true,
            nvme_sanitize: false,
            ata_secure_erase: true,
            concurrency: 1,
            skip_read_only: false,
            wipe_special_filesystems: true,
        }
    }
}

impl EraseSettings {
    /// The settings of `node` (defaults for absent or `null` keys).
    ///
    /// # Errors
    /// [`HardwareError::InvalidArgs`] naming the key and what it should be.
    pub fn from_node(node: &Node) -> HardwareResult<EraseSettings> {
        Self::from_map(&node.driver_internal_info).map_err(HardwareError::InvalidArgs)
    }

    /// Parses `driver_internal_info`.
    ///
    /// # Errors
    /// What is wrong with which key.
    pub fn from_map(info: &Map<String, Value>) -> Result<EraseSettings, String> {
        let d = EraseSettings::default();
        let continue_if_failed = match get(info, "agent_continue_if_secure_erase_failed") {
            Some(v) => boolean("agent_continue_if_secure_erase_failed", v)?,
            None => flag(
                info,
                "agent_continue_if_ata_erase_failed",
                d.continue_if_secure_erase_failed,
            )?,
        };
        let concurrency = integer(info, "disk_erasure_concurrency", d.concurrency as u64)?;
        if concurrency == 0 {
            return Err(
                "driver_internal_info.disk_erasure_concurrency must be at least 1, got 0".into(),
            );
        }
        let iterations = integer(info, "agent_erase_devices_iterations", 1)?;
        Ok(EraseSettings {
            iterations: u32::try_from(iterations).map_err(|_| {
                format!(
                    "driver_internal_info.agent_erase_devices_iterations is too large: {iterations}"
                )
            })?,
            zeroize: flag(info, "agent_erase_devices_zeroize", d.zeroize)?,
            continue_if_secure_erase_failed: continue_if_failed,
            nvme_secure_erase: flag(info, "agent_enable_nvme_secure_erase", d.nvme_secure_erase)?,
            nvme_sanitize: flag(info, "agent_enable_nvme_sanitize", d.nvme_sanitize)?,
            ata_secure_erase: flag(info, "agent_enable_ata_secure_erase", d.ata_secure_erase)?,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
            skip_read_only: flag(info, "agent_erase_skip_read_only", d.skip_read_only)?,
            wipe_special_filesystems: flag(
                info,
                "wipe_special_filesystems",
                d.wipe_special_filesystems,
            )?,
        })
    }
}

/// The value of `key`, treating `null` as absent.
fn get<'a>(info: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    info.get(key).filter(|v| !v.is_null())
}

/// oslo's strict `bool_from_string` spellings, and JSON booleans.
fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    let text = match value {
        Value::Bool(b) => return Ok(*b),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match text.as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(format!(
            "driver_internal_info.{key} must be a boolean (true or false), got {value}"
        )),
    }
}

fn flag(info: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    get(info, key).map_or(Ok(default), |v| boolean(key, v))
}

/// A non-negative integer: a JSON integer or a string holding one.
fn integer(info: &Map<String, Value>, key: &str, default: u64) -> Result<u64, String> {
    let Some(value) = get(info, key) else {
        return Ok(default);
    };
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        format!("driver_internal_info.{key} must be a non-negative integer, got {value}")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<EraseSettings, String> {
        match v {
            Value::Object(m) => EraseSettings::from_map(&m),
            _ => Err("not an object".into()),
        }
    }

    #[test]
    fn defaults_as_ipa() {
        assert_eq!(parse(json!({})), Ok(EraseSettings::default()));
        let d = EraseSettings::default();
        assert_eq!(
            (d.iterations, d.zeroize, d.continue_if_secure_erase_failed),
            (1, true, false)
        );
        assert!(d.nvme_secure_erase && d.ata_secure_erase && d.wipe_special_filesystems);
        assert!(!d.nvme_sanitize && !d.skip_read_only);
        assert_eq!(d.concurrency, 1);
        // null counts as absent.
        assert_eq!(
            parse(json!({"agent_erase_devices_zeroize": null})),
            Ok(EraseSettings::default())
        );
    }

    #[test]
    fn values_from_ironic() -> Result<(), String> {
        let s = parse(json!({
            "agent_erase_devices_iterations": 3,
            "agent_erase_devices_zeroize": false,
            "agent_continue_if_secure_erase_failed": true,
            "agent_enable_nvme_secure_erase": false,
            "agent_enable_nvme_sanitize": "yes",
            "agent_enable_ata_secure_erase": "False",
            "disk_erasure_concurrency": 4,
            "agent_erase_skip_read_only": true,
            "wipe_special_filesystems": false,
        }))?;
        assert_eq!(
            s,
            EraseSettings {
                iterations: 3,
                zeroize: false,
                continue_if_secure_erase_failed: true,
                nvme_secure_erase: false,
                nvme_sanitize: true,
                ata_secure_erase: false,
                concurrency: 4,
                skip_read_only: true,
                wipe_special_filesystems: false,
            }
        );
        Ok(())
    }

    #[test]
    fn legacy_continue_key() -> Result<(), String> {
        let s = parse(json!({"agent_continue_if_ata_erase_failed": true}))?;
        assert!(s.continue_if_secure_erase_failed);
        // The new key wins when both are set.
        let s = parse(json!({
            "agent_continue_if_ata_erase_failed": true,
            "agent_continue_if_secure_erase_failed": false,
        }))?;
        assert!(!s.continue_if_secure_erase_failed);
        Ok(())
    }

    #[test]
    fn wrong_types_are_invalid_args() {
        let cases = [
            (
                json!({"agent_erase_devices_iterations": "many"}),
                "driver_internal_info.agent_erase_devices_iterations must be a non-negative \
                 integer, got \"many\"",
            ),
            (
                json!({"agent_erase_devices_iterations": -1}),
                "driver_internal_info.agent_erase_devices_iterations must be a non-negative \
                 integer, got -1",
            ),
            (
                json!({"agent_erase_devices_zeroize": "maybe"}),
                "driver_internal_info.agent_erase_devices_zeroize must be a boolean (true or \
                 false), got \"maybe\"",
            ),
            (
                json!({"disk_erasure_concurrency": 0}),
                "driver_internal_info.disk_erasure_concurrency must be at least 1, got 0",
            ),
            (
                json!({"disk_erasure_concurrency": 1.5}),
                "driver_internal_info.disk_erasure_concurrency must be a non-negative integer, \
                 got 1.5",
            ),
            (
                json!({"wipe_special_filesystems": []}),
                "driver_internal_info.wipe_special_filesystems must be a boolean (true or false), \
                 got []",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(parse(v.clone()), Err(want.to_string()), "{v}");
        }
        let node = Node {
            driver_internal_info: match json!({"agent_enable_ata_secure_erase": {"x": 1}}) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            ..Node::default()
        };
        let e = EraseSettings::from_node(&node).err();
        assert!(
            matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("agent_enable_ata_secure_erase")),
            "{e:?}"
        );
        assert_eq!(e.map(|e| e.code()), Some(400));
    }
}
