//! `image_info` as Ironic sends it, and IPA's validator for it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `image_info.proxies`: proxy URL per scheme of the image URL.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxies {
    /// Proxy for `http://` image URLs.
    #[serde(default, deserialize_with = "lenient_string")]
    pub http: Option<String>,
    /// Proxy for `https://` image URLs.
    #[serde(default, deserialize_with = "lenient_string")]
    pub https: Option<String>,
}

impl fmt::Debug for Proxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Proxy URLs may carry credentials (`http://user:pass@proxy`).
        f.debug_struct("Proxies")
            .field("http", &self.http.as_deref().map(redact_url))
            .field("https", &self.https.as_deref().map(redact_url))
            .finish()
    }
}

/// The image to deploy and how to fetch it. Unknown keys are ignored; numbers may arrive as
/// strings. `Debug` never shows passwords or the authorization token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Image id (last path component of `image_source`).
    #[serde(default, deserialize_with = "lenient_string_or_empty")]
    pub id: String,
    /// Where to download it, tried in order.
    pub urls: Vec<String>,
    /// Declared disk format (`raw`, `qcow2`, `gpt`, …).
    #[serde(default, deserialize_with = "lenient_string")]
    pub disk_format: Option<String>,
    /// Declared container format (unused by the agent).
    #[serde(default, deserialize_with = "lenient_string")]
    pub container_format: Option<String>,
    /// Stream raw images straight to the disk.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub stream_raw_images: bool,
    /// Legacy checksum: a hex digest or the URL of a checksum file.
    #[serde(default, deserialize_with = "lenient_string")]
    pub checksum: Option<String>,
    /// Hash algorithm of `os_hash_value` (`sha256`, `sha512`, …).
    #[serde(default, deserialize_with = "lenient_string")]
    pub os_hash_algo: Option<String>,
    /// Hex digest for `os_hash_algo`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub os_hash_value: Option<String>,
    /// Base64 of an `Authorization` header value sent verbatim (OCI registries).
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_request_authorization: Option<String>,
    /// `noauth` or `http_basic`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_server_auth_strategy: Option<String>,
    /// User for `http_basic`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_server_user: Option<String>,
    /// Password for `http_basic`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_server_password: Option<String>,
    /// Proxies per URL scheme.
    #[serde(default)]
    pub proxies: Option<Proxies>,
    /// Comma-separated hosts that bypass the proxies.
    #[serde(default, deserialize_with = "lenient_string")]
    pub no_proxy: Option<String>,
    /// The node, for logging.
    #[serde(default, deserialize_with = "lenient_string")]
    pub node_uuid: Option<String>,
    /// Partition images: kernel image reference.
    #[serde(default, deserialize_with = "lenient_string")]
    pub kernel: Option<String>,
    /// Partition images: ramdisk image reference.
    #[serde(default, deserialize_with = "lenient_string")]
    pub ramdisk: Option<String>,
    /// Partition images: root size, GiB.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub root_gb: Option<u64>,
    /// Partition images: root size, MiB (= 1024 × `root_gb`).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub root_mb: Option<u64>,
    /// Partition images: swap size, MiB.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub swap_mb: Option<u64>,
    /// Partition images: ephemeral size, MiB.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub ephemeral_mb: Option<u64>,
    /// Partition images: filesystem of the ephemeral partition.
    #[serde(default, deserialize_with = "lenient_string")]
    pub ephemeral_format: Option<String>,
    /// Config drive: gzip+base64 ISO or a URL.
    #[serde(default, deserialize_with = "lenient_string")]
    pub configdrive: Option<String>,
    /// Partition images: keep the ephemeral partition.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub preserve_ephemeral: bool,
    /// `partition` for partition images; anything else is a whole-disk image.
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_type: Option<String>,
    /// `uefi` or `bios` (informational).
    #[serde(default, deserialize_with = "lenient_string")]
    pub deploy_boot_mode: Option<String>,
    /// `local` or `netboot` (informational).
    #[serde(default, deserialize_with = "lenient_string")]
    pub boot_option: Option<String>,
    /// `gpt` or `msdos` (informational).
    #[serde(default, deserialize_with = "lenient_string")]
    pub disk_label: Option<String>,
}

impl ImageInfo {
    /// Whether this is a partition image (`image_type == "partition"`).
    pub fn is_partition_image(&self) -> bool {
        self.image_type.as_deref() == Some("partition")
    }

    /// Whether the streaming path applies (`stream_raw_images` and `disk_format == raw`).
    pub fn streams_raw(&self) -> bool {
        self.stream_raw_images && self.disk_format.as_deref() == Some("raw")
    }
}

const REDACTED: &str = "***";

fn redact<T>(v: &Option<T>) -> Option<&'static str> {
    v.as_ref().map(|_| REDACTED)
}

/// `scheme://user:pass@host/…` → `scheme://***@host/…`.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 && !url[s + 3..at].contains('/') => {
            format!("{}{REDACTED}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for ImageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("ImageInfo")
            .field("id", &self.id)
            .field("urls", &urls)
            .field("disk_format", &self.disk_format)
            .field("container_format", &self.container_format)
            .field("stream_raw_images", &self.stream_raw_images)
            .field("checksum", &self.checksum.as_deref().map(redact_url))
            .field("os_hash_algo", &self.os_hash_algo)
            .field("os_hash_value", &self.os_hash_value)
            .field(
                "image_request_authorization",
                &redact(&self.image_request_authorization),
            )
            .field(
                "image_server_auth_strategy",
                &self.image_server_auth_strategy,
            )
            .field("image_server_user", &self.image_server_user)
            .field(
                "image_server_password",
                &redact(&self.image_server_password),
            )
            .field("proxies", &self.proxies)
            .field("no_proxy", &self.no_proxy)
            .field("node_uuid", &self.node_uuid)
            .field("image_type", &self.image_type)
            .field("root_mb", &self.root_mb)
            .field("swap_mb", &self.swap_mb)
            .field("ephemeral_mb", &self.ephemeral_mb)
            .field("configdrive", &self.configdrive.as_ref().map(|c| c.len()))
            .finish_non_exhaustive()
    }
}

/// Validates `image_info` as IPA's `_validate_image_info` does and parses it.
///
/// The error text is what follows `"Invalid command parameters: "` in the 400 answer.
pub fn validate_image_info(v: &Value, md5_enabled: bool) -> Result<ImageInfo, String> {
    let Some(obj) = v.as_object() else {
        return Err("image_info must be a JSON object".into());
    };
    for field in ["id", "urls"] {
        if !obj.contains_key(field) {
            return Err(format!("Image is missing '{field}' field."));
        }
    }
    match obj.get("urls") {
        Some(Value::Array(a)) if !a.is_empty() => {
            if !a.iter().all(Value::is_string) {
                return Err("Image 'urls' must be a list of strings.".into());
            }
        }
        _ => return Err("Image 'urls' must be a list with at least one element.".into()),
    }
    let mut usable = false;
    match obj.get("checksum") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if !c.is_empty() => {
            let is_url = c.starts_with("http://") || c.starts_with("https://");
            if is_url || c.len() > 32 || (c.len() == 32 && md5_enabled) {
                usable = true;
            }
        }
        Some(_) => return Err("Image 'checksum' must be a non-empty string.".into()),
    }
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null() && v != "");
    if present("os_hash_algo") || present("os_hash_value") {
        for k in ["os_hash_value", "os_hash_algo"] {
            match obj.get(k) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => return Err(format!("Image '{k}' must be a non-empty string.")),
            }
        }
        usable = true;
    }
    if !usable {
        return Err("Image checksum is not available: set 'os_hash_algo' and \
                    'os_hash_value', or a 'checksum' (a digest longer than 32 hex characters, \
                    a checksum file URL, or an MD5 digest when MD5 is enabled)."
            .into());
    }
    serde_json::from_value(v.clone()).map_err(|e| format!("Image info is malformed: {e}"))
}

// ---- lenient field parsers -------------------------------------------------------------

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, got {other}"
            )));
        }
    })
}

fn lenient_string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient_string(d)?.unwrap_or_default())
}

/// oslo's `bool_from_string`: true for `1`, `t`, `true`, `on`, `y`, `yes` (any case).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Null => false,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        ),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a boolean, got {other}"
            )));
        }
    })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let bad = |what: &dyn fmt::Display| {
        serde::de::Error::custom(format!("expected a non-negative integer, got {what}"))
    };
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else {
                match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                    _ => Err(bad(&n)),
                }
            }
        }
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            if let Ok(u) = t.parse::<u64>() {
                return Ok(Some(u));
            }
            match t.parse::<f64>() {
                Ok(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                _ => Err(bad(&s)),
            }
        }
        other => Err(bad(&other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn parses_every_key_and_tolerates_strings_and_unknowns() -> Result<(), String> {
        let v = json!({
            "id": "img-1", "urls": ["http://a/img.raw", "http://b/img.raw"],
            "disk_format": "raw", "container_format": "bare", "stream_raw_images": true,
            "checksum": SHA256, "os_hash_algo": "sha256", "os_hash_value": SHA256,
            "image_request_authorization": "QmVhcmVyIHh5eg==",
            "image_server_auth_strategy": "http_basic", "image_server_user": "u",
            "image_server_password": "secret-pw",
            "proxies": {"http": "http://p:3128", "https": "http://p:3129", "ftp": "x"},
            "no_proxy": "10.0.0.1", "node_uuid": "n-1", "kernel": "k", "ramdisk": "r",
            "root_gb": "10", "root_mb": 10240, "swap_mb": "512", "ephemeral_mb": 0.0,
            "ephemeral_format": "ext4", "configdrive": "H4sI", "preserve_ephemeral": "False",
            "image_type": "partition", "deploy_boot_mode": "uefi", "boot_option": "local",
            "disk_label": "gpt", "something_new": {"x": 1}
        });
        let i = validate_image_info(&v, false)?;
        assert_eq!(i.id, "img-1");
        assert_eq!(i.urls.len(), 2);
        assert!(i.streams_raw());
        assert!(i.is_partition_image());
        assert_eq!(i.root_gb, Some(10));
        assert_eq!(i.root_mb, Some(10240));
        assert_eq!(i.swap_mb, Some(512));
        assert_eq!(i.ephemeral_mb, Some(0));
        assert!(!i.preserve_ephemeral);
        assert_eq!(
            i.proxies.as_ref().and_then(|p| p.https.as_deref()),
            Some("http://p:3129")
        );
        assert_eq!(i.disk_label.as_deref(), Some("gpt"));
        let dbg = format!("{i:?}");
        assert!(!dbg.contains("secret-pw"), "{dbg}");
        assert!(!dbg.contains("QmVhcmVyIHh5eg=="), "{dbg}");
        Ok(())
    }

    #[test]
    fn validator_rules() {
        let base = |extra: Value| {
            let mut v = json!({"id": "x", "urls": ["http://a/x"]});
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                for (k, val) in e {
                    o.insert(k.clone(), val.clone());
                }
            }
            v
        };
        let err = |v: Value, md5: bool| validate_image_info(&v, md5).err().unwrap_or_default();
        assert!(err(json!({"urls": ["u"], "checksum": SHA256}), true).contains("'id'"));
        assert!(err(json!({"id": "x", "checksum": SHA256}), true).contains("'urls'"));
        assert!(err(json!({"id": "x", "urls": [], "checksum": SHA256}), true).contains("list"));
        assert!(err(json!({"id": "x", "urls": "u", "checksum": SHA256}), true).contains("list"));
        assert!(err(base(json!({"checksum": ""})), true).contains("non-empty"));
        assert!(err(base(json!({"checksum": 5})), true).contains("non-empty"));
        assert!(err(base(json!({})), true).contains("checksum is not available"));
        // MD5 digests count only when MD5 is enabled.
        assert!(validate_image_info(&base(json!({"checksum": MD5})), true).is_ok());
        assert!(err(base(json!({"checksum": MD5})), false).contains("not available"));
        // Longer digests and URLs always count.
        assert!(validate_image_info(&base(json!({"checksum": SHA256})), false).is_ok());
        assert!(validate_image_info(&base(json!({"checksum": "http://a/SHA"})), false).is_ok());
        assert!(err(base(json!({"checksum": "abc"})), true).contains("not available"));
        // The os_hash pair: both or neither.
        assert!(err(base(json!({"os_hash_algo": "sha256"})), true).contains("os_hash_value"));
        assert!(err(base(json!({"os_hash_value": SHA256})), true).contains("os_hash_algo"));
        assert!(
            validate_image_info(
                &base(json!({"os_hash_algo": "sha512", "os_hash_value": "ab"})),
                false
            )
            .is_ok()
        );
        // A 32-char checksum with MD5 disabled is fine when the pair is there.
        assert!(
            validate_image_info(
                &base(json!({"checksum": MD5, "os_hash_algo": "sha256", "os_hash_value": SHA256})),
                false
            )
            .is_ok()
        );
        assert!(validate_image_info(&json!([1]), true).is_err());
    }

    #[test]
    fn redacts_credentials_in_urls() {
        assert_eq!(
            redact_url("http://user:pw@proxy:3128/x"),
            "http://***@proxy:3128/x"
        );
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
        assert_eq!(redact_url("plain"), "plain");
    }
}
