//! The node's RAID configurations, as Ironic keeps them (`ironic/common/raid.py` and the
//! `agent` RAID interface):
//!
//! * `target_raid_config` (set with `conductor-shim node set --target-raid-config`) is checked
//!   like Ironic's RAID schema requires: `logical_disks`, each with `size_gb` (a number or
//!   `"MAX"`) and `raid_level`;
//! * before `raid.create_configuration` the conductor filters it by the step's
//!   `create_root_volume` / `create_nonroot_volumes` args and hands the result to the agent
//!   in `driver_internal_info.target_raid_config` (the node's own is in the node dict too);
//! * after it succeeded, the agent's `clean_result` becomes `raid_config` (plus
//!   `last_updated`), and a root volume updates `properties` (`local_gb`, `root_device`, the
//!   `raid_level` capability);
//! * after `raid.delete_configuration`, `raid_config` is emptied and `root_device` dropped.

use serde_json::Value;

use crate::model::{JsonMap, Node};
use crate::timefmt;

/// RAID levels Ironic's schema accepts.
pub const RAID_LEVELS: &[&str] = &["0", "1", "2", "5", "6", "1+0", "5+0", "6+0"];

/// Checks a target RAID configuration; `{}` (no configuration) is valid.
pub fn validate_target_raid_config(value: &Value) -> Result<JsonMap, String> {
    let Value::Object(config) = value else {
        return Err(format!(
            "target_raid_config must be a JSON object, got {value}"
        ));
    };
    if config.is_empty() {
        return Ok(JsonMap::new());
    }
    let Some(Value::Array(disks)) = config.get("logical_disks") else {
        return Err("target_raid_config needs a \"logical_disks\" list".to_string());
    };
    if disks.is_empty() {
        return Err("target_raid_config: \"logical_disks\" is empty".to_string());
    }
    for (i, disk) in disks.iter().enumerate() {
        let Value::Object(disk) = disk else {
            return Err(format!("logical disk {i} is not an object: {disk}"));
        };
        match disk.get("size_gb") {
            Some(Value::Number(n)) if n.as_u64().is_some() => {}
            Some(Value::String(s)) if s == "MAX" => {}
            other => {
                return Err(format!(
                    "logical disk {i}: size_gb must be a whole number of GiB or \"MAX\", got {}",
                    other.map_or_else(|| "nothing".to_string(), Value::to_string)
                ));
            }
        }
        match disk.get("raid_level") {
            Some(Value::String(level)) if RAID_LEVELS.contains(&level.as_str()) => {}
            other => {
                return Err(format!(
                    "logical disk {i}: raid_level must be one of \"{}\" (a string), got {}",
                    RAID_LEVELS.join("\", \""),
                    other.map_or_else(|| "nothing".to_string(), Value::to_string)
                ));
            }
        }
    }
    Ok(config.clone())
}

/// The target RAID configuration for `create_configuration` with `args`
/// (`create_root_volume`, `create_nonroot_volumes`, both true by default).
pub fn filter_target_raid_config(node: &Node, args: Option<&JsonMap>) -> Result<JsonMap, String> {
    if node.target_raid_config.is_empty() {
        return Err(format!(
            "Node {} has no target RAID configuration.",
            node.uuid
        ));
    }
    let flag = |name: &str| {
        args.and_then(|a| a.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    };
    let (root, nonroot) = (flag("create_root_volume"), flag("create_nonroot_volumes"));
    let mut config = node.target_raid_config.clone();
    let disks: Vec<Value> = config
        .get("logical_disks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            let is_root = d.get("is_root_volume").and_then(Value::as_bool) == Some(true);
            if is_root { root } else { nonroot }
        })
        .collect();
    if disks.is_empty() {
        let mut skipped = Vec::new();
        if !root {
            skipped.push("skipping root volume");
        }
        if !nonroot {
            skipped.push("skipping non-root volumes");
        }
        return Err(format!(
            "Node {} has empty target RAID configuration after {}.",
            node.uuid,
            skipped.join(" and ")
        ));
    }
    config.insert("logical_disks".into(), Value::Array(disks));
    Ok(config)
}

/// `capabilities` with `key` set to `value`: Ironic's `k1:v1,k2:v2` string (a JSON object is
/// updated as an object).
fn updated_capabilities(current: Option<&Value>, key: &str, value: &str) -> Value {
    match current {
        Some(Value::Object(map)) => {
            let mut map = map.clone();
            map.insert(key.to_string(), Value::String(value.to_string()));
            Value::Object(map)
        }
        other => {
            let text = other.and_then(Value::as_str).unwrap_or("");
            let mut pairs: Vec<(String, String)> = text
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| match p.split_once(':') {
                    Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                    None => (p.trim().to_string(), String::new()),
                })
                .collect();
            match pairs.iter_mut().find(|(k, _)| k == key) {
                Some(pair) => pair.1 = value.to_string(),
                None => pairs.push((key.to_string(), value.to_string())),
            }
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            Value::String(joined.join(","))
        }
    }
}

/// Stores the RAID configuration the agent built (Ironic's `update_raid_info`).
pub fn update_raid_info(node: &mut Node, built: &JsonMap) -> Result<(), String> {
    let disks = built
        .get("logical_disks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let roots: Vec<&Value> = disks
        .iter()
        .filter(|d| d.get("is_root_volume").and_then(Value::as_bool) == Some(true))
        .collect();
    if roots.len() > 1 {
        return Err(format!(
            "Raid config cannot have more than one root volume. {} root volumes were specified",
            roots.len()
        ));
    }
    let mut current = built.clone();
    current.insert(
        "last_updated".into(),
        Value::String(timefmt::format(timefmt::now())),
    );
    node.raid_config = current;
    if let Some(root) = roots.first() {
        if let Some(size) = root.get("size_gb").and_then(Value::as_u64) {
            node.properties.insert("local_gb".into(), Value::from(size));
        }
        if let Some(hint) = root.get("root_device_hint") {
            node.properties.insert("root_device".into(), hint.clone());
        }
        if let Some(level) = root.get("raid_level").and_then(Value::as_str) {
            let caps =
                updated_capabilities(node.properties.get("capabilities"), "raid_level", level);
            node.properties.insert("capabilities".into(), caps);
        }
    }
    Ok(())
}

/// Forgets the RAID configuration (after `delete_configuration`).
pub fn clear_raid_info(node: &mut Node) {
    node.properties.remove("root_device");
    node.raid_config = JsonMap::new();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::NewNode;
    use crate::store::Store;

    fn node() -> Node {
        Store::open_in_memory()
            .unwrap()
            .create_node(NewNode::default())
            .unwrap()
    }

    #[test]
    fn validates_target_configs() {
        let good = json!({"logical_disks": [
            {"size_gb": 10, "raid_level": "1", "is_root_volume": true, "controller": "software"},
            {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]});
        assert_eq!(
            validate_target_raid_config(&good).unwrap()["logical_disks"][1]["size_gb"],
            "MAX"
        );
        assert!(validate_target_raid_config(&json!({})).unwrap().is_empty());
        for bad in [
            json!([]),
            json!({"logical_disks": []}),
            json!({"logical": 1}),
            json!({"logical_disks": [{"size_gb": 10}]}),
            json!({"logical_disks": [{"size_gb": 10, "raid_level": 1}]}),
            json!({"logical_disks": [{"size_gb": "10", "raid_level": "1"}]}),
            json!({"logical_disks": [{"size_gb": 10, "raid_level": "3"}]}),
        ] {
            assert!(validate_target_raid_config(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_for_create_configuration() {
        let mut n = node();
        let err = filter_target_raid_config(&n, None).unwrap_err();
        assert!(err.contains("has no target RAID configuration"), "{err}");
        n.target_raid_config = json!({"logical_disks": [
            {"size_gb": 10, "raid_level": "1", "is_root_volume": true},
            {"size_gb": "MAX", "raid_level": "0"}]})
        .as_object()
        .unwrap()
        .clone();
        assert_eq!(
            filter_target_raid_config(&n, None).unwrap()["logical_disks"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let args = json!({"create_root_volume": false})
            .as_object()
            .unwrap()
            .clone();
        let only = filter_target_raid_config(&n, Some(&args)).unwrap();
        assert_eq!(
            only["logical_disks"],
            json!([{"size_gb": "MAX", "raid_level": "0"}])
        );
        let none = json!({"create_root_volume": false, "create_nonroot_volumes": false})
            .as_object()
            .unwrap()
            .clone();
        let err = filter_target_raid_config(&n, Some(&none)).unwrap_err();
        assert!(
            err.ends_with("after skipping root volume and skipping non-root volumes."),
            "{err}"
        );
    }

    #[test]
    fn stores_the_built_configuration() {
        let mut n = node();
        n.properties
            .insert("capabilities".into(), json!("boot_mode:uefi,raid_level:0"));
        let built = json!({"logical_disks": [
            {"size_gb": 10, "raid_level": "1", "is_root_volume": true,
             "root_device_hint": {"name": "/dev/md0"}},
            {"size_gb": "MAX", "raid_level": "0"}]});
        update_raid_info(&mut n, built.as_object().unwrap()).unwrap();
        assert!(n.raid_config.contains_key("last_updated"));
        assert_eq!(n.raid_config["logical_disks"], built["logical_disks"]);
        assert_eq!(n.properties["local_gb"], json!(10));
        assert_eq!(n.properties["root_device"], json!({"name": "/dev/md0"}));
        assert_eq!(
            n.properties["capabilities"],
            json!("boot_mode:uefi,raid_level:1")
        );
        let two_roots = json!({"logical_disks": [
            {"size_gb": 1, "raid_level": "1", "is_root_volume": true},
            {"size_gb": 1, "raid_level": "1", "is_root_volume": true}]});
        assert!(update_raid_info(&mut n, two_roots.as_object().unwrap()).is_err());
        clear_raid_info(&mut n);
        assert!(n.raid_config.is_empty() && !n.properties.contains_key("root_device"));
        assert_eq!(
            updated_capabilities(None, "raid_level", "1"),
            json!("raid_level:1")
        );
        assert_eq!(
            updated_capabilities(Some(&json!({"a": "b"})), "raid_level", "1"),
            json!({"a": "b", "raid_level": "1"})
        );
    }
}
