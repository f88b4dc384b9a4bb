//! The arguments of the in-band `write_image` deploy step, built from the node the way
//! Ironic's `AgentDeploy.write_image` builds them, and the node's boot mode and
//! disk label as Ironic resolves them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::request::image_id;
use crate::model::{JsonMap, Node};

/// Ironic's `[agent]stream_raw_images` default.
pub const STREAM_RAW_IMAGES: bool = true;

/// Ironic's `[deploy]default_boot_mode`.
pub const DEFAULT_BOOT_MODE: &str = "uefi";

/// The node's deploy request cannot be turned into `write_image` arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid deploy request in instance_info of node {node}: {detail}")]
pub struct ImageInfoError {
    /// Node UUID.
    pub node: Uuid,
    /// What is wrong.
    pub detail: String,
}

/// `step.args` of the `write_image` step: `{"image_info": {...}, "configdrive": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteImageArgs {
    /// What to write and how to verify it.
    pub image_info: ImageInfo,
    /// The config drive (gzip + base64), or null.
    pub configdrive: Option<String>,
}

/// `image_info`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageInfo {
    /// Last path component of `image_source`.
    pub id: String,
    /// `[instance_info.image_url]`.
    pub urls: Vec<String>,
    /// `image_disk_format`, or null.
    pub disk_format: Option<String>,
    /// `image_container_format`, or null.
    pub container_format: Option<String>,
    /// `[agent]stream_raw_images`.
    pub stream_raw_images: bool,
    /// Legacy `image_checksum` (an MD5 digest or a checksum file URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// `image_os_hash_algo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_hash_algo: Option<String>,
    /// `image_os_hash_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_hash_value: Option<String>,
    /// Proxies from `driver_info.image_http_proxy` / `image_https_proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxies: Option<BTreeMap<String, String>>,
    /// `driver_info.image_no_proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    /// The node, for the agent's logs.
    pub node_uuid: Uuid,
    /// The keys of partition images.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionInfo>,
}

/// The keys Ironic adds for partition images: the `instance_info` values as stored (null when
/// absent), plus the resolved boot mode, `boot_option` and the disk label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionInfo {
    /// `instance_info.kernel`.
    pub kernel: Value,
    /// `instance_info.ramdisk`.
    pub ramdisk: Value,
    /// `instance_info.root_gb`.
    pub root_gb: Value,
    /// `instance_info.root_mb`.
    pub root_mb: Value,
    /// `instance_info.swap_mb`.
    pub swap_mb: Value,
    /// `instance_info.ephemeral_mb`.
    pub ephemeral_mb: Value,
    /// `instance_info.ephemeral_format`.
    pub ephemeral_format: Value,
    /// `instance_info.configdrive`.
    pub configdrive: Value,
    /// `instance_info.preserve_ephemeral`.
    pub preserve_ephemeral: Value,
    /// Always `partition`.
    pub image_type: &'static str,
    /// `uefi` or `bios`.
    pub deploy_boot_mode: String,
    /// Always `local`.
    pub boot_option: &'static str,
    /// `gpt` / `msdos` when a capability sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_label: Option<String>,
}

/// Whether the node's image is a partition image (`instance_info.image_type`).
pub fn is_partition_image(node: &Node) -> bool {
    node.instance_info
        .get("image_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "partition")
}

/// Whether `target_raid_config` holds a logical disk with `controller: software` (Ironic
/// then installs the bootloader on every deploy).
pub fn software_raid(node: &Node) -> bool {
    node.target_raid_config
        .get("logical_disks")
        .and_then(Value::as_array)
        .is_some_and(|disks| {
            disks
                .iter()
                .any(|d| d.get("controller").and_then(Value::as_str) == Some("software"))
        })
}

/// The boot mode: `instance_info.deploy_boot_mode`, the `boot_mode` capability of
/// `instance_info` then `properties`, `driver_internal_info.deploy_boot_mode`, else UEFI.
/// A `secure_boot` capability forces UEFI.
pub fn boot_mode(node: &Node) -> String {
    let secure = capability(node, "secure_boot").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if secure {
        return "uefi".to_string();
    }
    let explicit = node
        .instance_info
        .get("deploy_boot_mode")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| capability(node, "boot_mode"))
        .or_else(|| {
            node.driver_internal_info
                .extra
                .get("deploy_boot_mode")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    match explicit.map(|m| m.to_ascii_lowercase()) {
        Some(m) if m == "bios" || m == "uefi" => m,
        _ => DEFAULT_BOOT_MODE.to_string(),
    }
}

/// The `disk_label` capability (`instance_info` then `properties`), if any.
pub fn disk_label(node: &Node) -> Option<String> {
    capability(node, "disk_label")
}

/// A capability from `instance_info.capabilities`, else `properties.capabilities`; each may be
/// a JSON object or Ironic's `key:value,key:value` string.
fn capability(node: &Node, key: &str) -> Option<String> {
    [&node.instance_info, &node.properties]
        .into_iter()
        .find_map(|map| capability_in(map, key))
}

fn capability_in(map: &JsonMap, key: &str) -> Option<String> {
    match map.get("capabilities")? {
        Value::Object(caps) => caps.get(key).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }),
        Value::String(text) => text.split(',').find_map(|pair| {
            let (k, v) = pair.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        }),
        _ => None,
    }
}

/// Builds the `write_image` arguments of `node`.
pub fn write_image_args(node: &Node) -> Result<WriteImageArgs, ImageInfoError> {
    let info = &node.instance_info;
    let invalid = |detail: String| ImageInfoError {
        node: node.uuid,
        detail,
    };
    let text = |key: &str| -> Result<Option<String>, ImageInfoError> {
        match info.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(format!("{key} must be a string, not {other}"))),
        }
    };
    let image_source =
        text("image_source")?.ok_or_else(|| invalid("image_source is missing".to_string()))?;
    let image_url = text("image_url")?.unwrap_or_else(|| image_source.clone());
    let configdrive = text("configdrive")
        .map_err(|_| invalid("configdrive must be a gzip+base64 string or a URL".to_string()))?;
    let (os_hash_algo, os_hash_value) = match (
        text("image_os_hash_algo")?.filter(|s| !s.is_empty()),
        text("image_os_hash_value")?.filter(|s| !s.is_empty()),
    ) {
        (Some(algo), Some(value)) => (Some(algo), Some(value)),
        _ => (None, None),
    };
    let mut proxies = BTreeMap::new();
    for (scheme, key) in [("http", "image_http_proxy"), ("https", "image_https_proxy")] {
        if let Some(url) = node.driver_info.get(key).and_then(Value::as_str) {
            proxies.insert(scheme.to_string(), url.to_string());
        }
    }
    let partition = is_partition_image(node).then(|| {
        let get = |key: &str| info.get(key).cloned().unwrap_or(Value::Null);
        PartitionInfo {
            kernel: get("kernel"),
            ramdisk: get("ramdisk"),
            root_gb: get("root_gb"),
            root_mb: get("root_mb"),
            swap_mb: get("swap_mb"),
            ephemeral_mb: get("ephemeral_mb"),
            ephemeral_format: get("ephemeral_format"),
            configdrive: get("configdrive"),
            preserve_ephemeral: get("preserve_ephemeral"),
            image_type: "partition",
            deploy_boot_mode: boot_mode(node),
            boot_option: "local",
            disk_label: disk_label(node),
        }
    });
    let image_info = ImageInfo {
        id: image_id(&image_source).to_string(),
        urls: vec![image_url],
        disk_format: text("image_disk_format")?,
        container_format: text("image_container_format")?,
        stream_raw_images: STREAM_RAW_IMAGES,
        checksum: text("image_checksum")?.filter(|s| !s.is_empty()),
        os_hash_algo,
        os_hash_value,
        proxies: (!proxies.is_empty()).then_some(proxies),
        no_proxy: node
            .driver_info
            .get("image_no_proxy")
            .and_then(Value::as_str)
            .map(str::to_string),
        node_uuid: node.uuid,
        partition,
    };
    Ok(WriteImageArgs {
        image_info,
        configdrive,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::NewNode;
    use crate::store::Store;

    fn node(instance_info: Value) -> Node {
        let mut store = Store::open_in_memory().unwrap();
        store
            .create_node(NewNode {
                instance_info: instance_info.as_object().unwrap().clone(),
                ..Default::default()
            })
            .unwrap()
    }

    #[test]
    fn whole_disk_image_info_has_ironics_keys() {
        let n = node(json!({
            "image_source": "http://127.0.0.1:46380/img.raw",
            "image_url": "http://127.0.0.1:46380/img.raw",
            "image_disk_format": "raw",
            "image_os_hash_algo": "sha256",
            "image_os_hash_value": "2e25",
            "image_type": "whole-disk",
        }));
        let v = serde_json::to_value(write_image_args(&n).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({
                "image_info": {
                    "container_format": null, "disk_format": "raw", "id": "img.raw",
                    "node_uuid": n.uuid.to_string(), "os_hash_algo": "sha256",
                    "os_hash_value": "2e25", "stream_raw_images": true,
                    "urls": ["http://127.0.0.1:46380/img.raw"]
                },
                "configdrive": null
            })
        );
    }

    #[test]
    fn partition_image_info() {
        let mut n = node(json!({
            "image_source": "http://h/root.qcow2",
            "image_checksum": "http://h/SHA256SUMS",
            "image_type": "partition",
            "root_mb": 2048, "root_gb": 2, "swap_mb": 0, "ephemeral_mb": 0,
            "preserve_ephemeral": false,
            "configdrive": "H4sI",
            "capabilities": {"boot_mode": "bios", "disk_label": "gpt"},
        }));
        n.driver_info = json!({"image_https_proxy": "http://proxy:3128", "image_no_proxy": "h"})
            .as_object()
            .unwrap()
            .clone();
        let v = serde_json::to_value(write_image_args(&n).unwrap()).unwrap();
        let info = &v["image_info"];
        assert_eq!(info["id"], "root.qcow2");
        assert_eq!(info["urls"], json!(["http://h/root.qcow2"]));
        assert_eq!(info["disk_format"], Value::Null);
        assert_eq!(info["checksum"], "http://h/SHA256SUMS");
        assert!(info.get("os_hash_algo").is_none());
        assert_eq!(info["image_type"], "partition");
        assert_eq!(info["root_mb"], 2048);
        assert_eq!(info["kernel"], Value::Null);
        assert_eq!(info["ephemeral_format"], Value::Null);
        assert_eq!(info["configdrive"], "H4sI");
        assert_eq!(info["deploy_boot_mode"], "bios");
        assert_eq!(info["boot_option"], "local");
        assert_eq!(info["disk_label"], "gpt");
        assert_eq!(info["proxies"], json!({"https": "http://proxy:3128"}));
        assert_eq!(info["no_proxy"], "h");
        assert_eq!(v["configdrive"], "H4sI");
    }

    #[test]
    fn boot_mode_resolution() {
        assert_eq!(boot_mode(&node(json!({}))), "uefi");
        assert_eq!(
            boot_mode(&node(json!({"capabilities": {"boot_mode": "bios"}}))),
            "bios"
        );
        assert_eq!(
            boot_mode(&node(
                json!({"capabilities": "disk_label:msdos,boot_mode:bios"})
            )),
            "bios"
        );
        assert_eq!(
            boot_mode(&node(
                json!({"capabilities": {"boot_mode": "bios", "secure_boot": "true"}})
            )),
            "uefi"
        );
        let mut n = node(json!({}));
        n.properties = json!({"capabilities": "boot_mode:bios"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(boot_mode(&n), "bios");
        assert_eq!(
            disk_label(&node(json!({"capabilities": {"disk_label": "msdos"}}))),
            Some("msdos".into())
        );
    }

    #[test]
    fn missing_image_source_is_an_error() {
        let err = write_image_args(&node(json!({"image_url": "http://h/x"}))).unwrap_err();
        assert!(err.to_string().contains("image_source"), "{err}");
        let err = write_image_args(&node(json!({"image_source": 5}))).unwrap_err();
        assert!(err.to_string().contains("must be a string"), "{err}");
    }
}
