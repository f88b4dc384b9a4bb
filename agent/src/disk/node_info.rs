//! What Ironic's node says about the disk layout of a deploy: boot mode, disk label,
//! capabilities.

use hardware_managers::Node;
use serde_json::Value;

use crate::disk::layout::BootMode;
use crate::disk::table::TableKind;

/// A capability (`instance_info.capabilities`, then `properties.capabilities`); capabilities
/// come as a dict or as Ironic's `"k1:v1,k2:v2"` string.
pub fn capability(node: &Node, key: &str) -> Option<String> {
    capabilities(node, key).into_iter().next()
}

/// Every value of capability `key`: `instance_info`'s, then `properties`'.
fn capabilities(node: &Node, key: &str) -> Vec<String> {
    [
        node.instance_info.get("capabilities"),
        node.properties.get("capabilities"),
    ]
    .into_iter()
    .flatten()
    .filter_map(|caps| match caps {
        Value::Object(m) => m.get(key).map(value_text),
        Value::String(s) => s.split(',').find_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        }),
        _ => None,
    })
    .collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The instance's boot mode: `instance_info.deploy_boot_mode` → capability `boot_mode` →
/// `driver_internal_info.deploy_boot_mode` → how this ramdisk booted; `secure_boot: true`
/// forces UEFI.
pub fn boot_mode(node: &Node, ramdisk_uefi: bool) -> BootMode {
    if capability(node, "secure_boot").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return BootMode::Uefi;
    }
    let declared = node
        .instance_info
        .get("deploy_boot_mode")
        .map(value_text)
        .or_else(|| capability(node, "boot_mode"))
        .or_else(|| {
            node.driver_internal_info
                .get("deploy_boot_mode")
                .map(value_text)
        });
    match declared.and_then(|m| m.parse::<BootMode>().ok()) {
        Some(m) => m,
        None if ramdisk_uefi => BootMode::Uefi,
        None => BootMode::Bios,
    }
}

/// The partition table asked for: capability `disk_label` (`instance_info`'s, then
/// `properties`'), else `image_info`'s `disk_label`, else msdos (UEFI forces GPT later).
///
/// Every value given must be exactly `msdos` or `gpt`, the values Ironic's capability check
/// knows (IPA itself would take any other value, `GPT` included, for msdos); an empty value
/// counts as absent. The error is the detail of an `InvalidCommandParamsError`.
pub fn disk_label(node: &Node, image_info_label: Option<&str>) -> Result<TableKind, String> {
    let given: Vec<String> = capabilities(node, "disk_label")
        .into_iter()
        .chain(image_info_label.map(String::from))
        .filter(|l| !l.is_empty())
        .collect();
    let parse = |label: &str| match label {
        "msdos" => Ok(TableKind::Msdos),
        "gpt" => Ok(TableKind::Gpt),
        other => Err(format!(
            "disk_label must be 'msdos' or 'gpt', not {:?}",
            other.chars().take(64).collect::<String>()
        )),
    };
    let kinds = given
        .iter()
        .map(|l| parse(l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(kinds.first().copied().unwrap_or(TableKind::Msdos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn capabilities_and_modes() {
        let n = node(json!({"properties": {"capabilities": "boot_mode:uefi,disk_label:gpt"}}));
        assert_eq!(capability(&n, "disk_label").as_deref(), Some("gpt"));
        assert_eq!(boot_mode(&n, false), BootMode::Uefi);
        assert_eq!(disk_label(&n, None), Ok(TableKind::Gpt));
        let n = node(
            json!({"instance_info": {"deploy_boot_mode": "bios", "capabilities": {"boot_mode": "uefi"}}}),
        );
        assert_eq!(boot_mode(&n, true), BootMode::Bios);
        let n = node(json!({"instance_info": {"capabilities": {"secure_boot": "true"}}}));
        assert_eq!(boot_mode(&n, false), BootMode::Uefi);
        let n = node(json!({}));
        assert_eq!(boot_mode(&n, true), BootMode::Uefi);
        assert_eq!(boot_mode(&n, false), BootMode::Bios);
        assert_eq!(disk_label(&n, None), Ok(TableKind::Msdos));
        assert_eq!(disk_label(&n, Some("gpt")), Ok(TableKind::Gpt));
    }

    #[test]
    fn disk_labels_are_exactly_msdos_or_gpt() {
        let caps = |c: Value| node(json!({"instance_info": {"capabilities": c}}));
        let n = caps(json!({"disk_label": "msdos"}));
        assert_eq!(disk_label(&n, Some("gpt")), Ok(TableKind::Msdos));
        assert_eq!(disk_label(&node(json!({})), Some("")), Ok(TableKind::Msdos));
        for bad in ["GPT", "dos", "mbr", "Msdos", " gpt"] {
            assert!(disk_label(&node(json!({})), Some(bad)).is_err(), "{bad}");
            let n = caps(json!({ "disk_label": bad }));
            assert!(disk_label(&n, None).is_err(), "{bad}");
        }
        // A bad value anywhere is refused, even when a good one takes precedence.
        let n = node(json!({"instance_info": {"capabilities": "disk_label:gpt"},
            "properties": {"capabilities": "disk_label:sun"}}));
        assert_eq!(
            disk_label(&n, None).err().as_deref(),
            Some("disk_label must be 'msdos' or 'gpt', not \"sun\"")
        );
    }
}
