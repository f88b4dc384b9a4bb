//! A deploy request (what `conductor-shim deploy` is given) and how it is stored in the node:
//! the `instance_info` keys Ironic uses (`image_source`, `image_url`, `image_os_hash_*` or
//! `image_checksum`, `image_disk_format`, `image_type`, partition sizes, `configdrive`,
//! `root_device`, `capabilities`), `provision_state` `wait call-back` and
//! `driver_internal_info.deploy_phase` `requested`.

use std::io::Write;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{DeployPhase, JsonMap, Node};
use crate::state::ProvisionState;
use crate::store::{Store, StoreError};

/// The `instance_info` keys a deploy request owns; they are replaced as a whole.
pub const INSTANCE_INFO_KEYS: &[&str] = &[
    "image_source",
    "image_url",
    "image_checksum",
    "image_os_hash_algo",
    "image_os_hash_value",
    "image_disk_format",
    "image_container_format",
    "image_type",
    "root_gb",
    "root_mb",
    "swap_mb",
    "ephemeral_gb",
    "ephemeral_mb",
    "ephemeral_format",
    "preserve_ephemeral",
    "configdrive",
    "root_device",
    "capabilities",
    "deploy_boot_mode",
];

/// Root device hint names Ironic accepts.
pub const ROOT_HINT_NAMES: &[&str] = &[
    "model",
    "vendor",
    "serial",
    "size",
    "wwn",
    "wwn_with_extension",
    "wwn_vendor_extension",
    "name",
    "rotational",
    "hctl",
    "by_path",
];

/// A deploy request that cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The node is in a state that does not allow a deploy.
    #[error(
        "node {node} is {state}; a deploy can start from enroll, manageable, available, active, \
         deploy failed or an idle wait call-back (use `node set-state` to reset it)"
    )]
    WrongState {
        /// Node UUID.
        node: String,
        /// Its state.
        state: ProvisionState,
    },
    /// A deploy is already running on the node.
    #[error("a deploy is already in progress on node {node} (phase {phase})")]
    InProgress {
        /// Node UUID.
        node: String,
        /// The current phase.
        phase: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whole-disk or partition image (`instance_info.image_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageType {
    /// A disk image with its own partition table (the default).
    #[default]
    WholeDisk,
    /// A root filesystem image; the agent partitions the disk.
    Partition,
}

impl ImageType {
    /// `whole-disk` or `partition`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageType::WholeDisk => "whole-disk",
            ImageType::Partition => "partition",
        }
    }
}

/// Boot mode capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// Legacy BIOS.
    Bios,
    /// UEFI (Ironic's default).
    Uefi,
}

impl BootMode {
    /// `bios` or `uefi`.
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Bios => "bios",
            BootMode::Uefi => "uefi",
        }
    }
}

/// Partition table type capability for partition images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiskLabel {
    /// GPT.
    Gpt,
    /// MBR.
    Msdos,
}

impl DiskLabel {
    /// `gpt` or `msdos`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskLabel::Gpt => "gpt",
            DiskLabel::Msdos => "msdos",
        }
    }
}

/// The image checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// `os_hash_algo` / `os_hash_value` (sha256, sha512, ...).
    OsHash {
        /// Algorithm name as hashlib spells it.
        algo: String,
        /// Lower-case hex digest.
        value: String,
    },
    /// Legacy `image_checksum`: an MD5 hex digest or the URL of a checksum file.
    Legacy(String),
}

/// Algorithms accepted by `--checksum ALGO:HEX`, with their hex digest lengths.
const ALGORITHMS: &[(&str, usize)] = &[
    ("md5", 32),
    ("sha1", 40),
    ("sha224", 56),
    ("sha256", 64),
    ("sha384", 96),
    ("sha512", 128),
];

impl FromStr for Checksum {
    type Err = String;

    /// `ALGO:HEX` (md5 becomes the legacy `image_checksum`, the others `os_hash_*`), or a
    /// bare hex digest whose algorithm the agent infers from its length (legacy field).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (algo, hex) = match s.split_once(':') {
            Some((algo, hex)) => (Some(algo.to_ascii_lowercase()), hex),
            None => (None, s),
        };
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "checksum {s:?}: expected ALGO:HEX with a hex digest"
            ));
        }
        let hex = hex.to_ascii_lowercase();
        let Some(algo) = algo else {
            return if [32, 64, 128].contains(&hex.len()) {
                Ok(Checksum::Legacy(hex))
            } else {
                Err(format!(
                    "checksum {s:?}: a bare digest must have 32, 64 or 128 hex digits; \
                     use ALGO:HEX"
                ))
            };
        };
        let Some((_, len)) = ALGORITHMS.iter().find(|(name, _)| *name == algo) else {
            let known: Vec<&str> = ALGORITHMS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "checksum algorithm {algo:?} is not supported (use one of {})",
                known.join(", ")
            ));
        };
        if hex.len() != *len {
            return Err(format!(
                "a {algo} digest has {len} hex digits, got {}",
                hex.len()
            ));
        }
        Ok(if algo == "md5" {
            Checksum::Legacy(hex)
        } else {
            Checksum::OsHash { algo, value: hex }
        })
    }
}

/// Everything `conductor-shim deploy` stores.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeployRequest {
    /// `http(s)://` URL of the image (`image_source` and `image_url`).
    pub image_url: String,
    /// The checksum (required, as Ironic requires one for HTTP images).
    pub checksum: Option<Checksum>,
    /// `image_disk_format` (`raw`, `qcow2`, ...); guessed from the URL when absent.
    pub disk_format: Option<String>,
    /// Whole-disk or partition image.
    pub image_type: ImageType,
    /// Root partition size in MiB (partition images, required there).
    pub root_mb: Option<u64>,
    /// Swap partition size in MiB (partition images).
    pub swap_mb: Option<u64>,
    /// Ephemeral partition size in MiB (partition images).
    pub ephemeral_mb: Option<u64>,
    /// Boot mode capability.
    pub boot_mode: Option<BootMode>,
    /// Partition table capability.
    pub disk_label: Option<DiskLabel>,
    /// The config drive (an ISO 9660 image, or any bytes) as read from a file.
    pub configdrive: Option<Vec<u8>>,
    /// Root device hints.
    pub root_device: JsonMap,
}

impl DeployRequest {
    /// Checks the request without touching any node.
    pub fn validate(&self) -> Result<(), RequestError> {
        let invalid = |m: String| Err(RequestError::Invalid(m));
        if !is_http_url(&self.image_url) {
            return invalid(format!(
                "--image {:?}: an http:// or https:// URL is required",
                self.image_url
            ));
        }
        if image_id(&self.image_url).is_empty() {
            return invalid(format!(
                "--image {:?}: the URL must end with the image's file name",
                self.image_url
            ));
        }
        match &self.checksum {
            None => {
                return invalid(
                    "a checksum is required for an HTTP image: --checksum ALGO:HEX or \
                     --checksum-url URL"
                        .to_string(),
                );
            }
            Some(Checksum::Legacy(value)) if value.contains("://") && !is_http_url(value) => {
                return invalid(format!(
                    "--checksum-url {value:?}: an http:// or https:// URL is required"
                ));
            }
            Some(_) => {}
        }
        if let Some(format) = &self.disk_format
            && (format.is_empty() || !format.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return invalid(format!("--disk-format {format:?} is not a format name"));
        }
        match self.image_type {
            ImageType::Partition => match self.root_mb {
                Some(mb) if mb > 0 => {}
                _ => {
                    return invalid(
                        "a partition image needs --root-mb N (the root partition size)".to_string(),
                    );
                }
            },
            ImageType::WholeDisk => {
                if self.root_mb.is_some() || self.swap_mb.is_some() || self.ephemeral_mb.is_some() {
                    return invalid(
                        "--root-mb, --swap-mb and --ephemeral-mb only apply to \
                         --image-type partition"
                            .to_string(),
                    );
                }
            }
        }
        for (key, value) in &self.root_device {
            check_root_hint(key, value).map_err(RequestError::Invalid)?;
        }
        Ok(())
    }

    /// The `instance_info` keys of this request (see [`INSTANCE_INFO_KEYS`]).
    pub fn instance_info(&self) -> Result<JsonMap, RequestError> {
        self.validate()?;
        let mut info = JsonMap::new();
        let mut put = |k: &str, v: Value| {
            info.insert(k.to_string(), v);
        };
        put("image_source", json!(self.image_url));
        put("image_url", json!(self.image_url));
        match &self.checksum {
            Some(Checksum::OsHash { algo, value }) => {
                put("image_os_hash_algo", json!(algo));
                put("image_os_hash_value", json!(value));
            }
            Some(Checksum::Legacy(value)) => put("image_checksum", json!(value)),
            None => {}
        }
        let format = self
            .disk_format
            .clone()
            .or_else(|| guess_disk_format(&self.image_url).map(str::to_string));
        if let Some(format) = format {
            put("image_disk_format", json!(format));
        }
        put("image_type", json!(self.image_type.as_str()));
        if self.image_type == ImageType::Partition {
            let root_mb = self.root_mb.unwrap_or(0);
            put("root_mb", json!(root_mb));
            put("root_gb", json!(root_mb.div_ceil(1024)));
            put("swap_mb", json!(self.swap_mb.unwrap_or(0)));
            let ephemeral_mb = self.ephemeral_mb.unwrap_or(0);
            put("ephemeral_mb", json!(ephemeral_mb));
            if ephemeral_mb > 0 {
                put("ephemeral_format", json!("ext4"));
            }
            put("preserve_ephemeral", json!(false));
        }
        if let Some(bytes) = &self.configdrive {
            put("configdrive", json!(encode_configdrive(bytes)?));
        }
        if !self.root_device.is_empty() {
            put("root_device", Value::Object(self.root_device.clone()));
        }
        let mut capabilities = JsonMap::new();
        if let Some(mode) = self.boot_mode {
            capabilities.insert("boot_mode".into(), json!(mode.as_str()));
        }
        if let Some(label) = self.disk_label {
            capabilities.insert("disk_label".into(), json!(label.as_str()));
        }
        if !capabilities.is_empty() {
            put("capabilities", Value::Object(capabilities));
        }
        Ok(info)
    }
}

/// Stores `request` in the node `ident` and moves it to `wait call-back` with deploy phase
/// `requested`, forgetting any previous deploy (one immediate transaction). The agent
/// session is kept (fast track): the running agent's next heartbeat starts the deploy.
pub fn request_deploy(
    store: &mut Store,
    ident: &str,
    request: &DeployRequest,
) -> Result<Node, RequestError> {
    let new_info = request.instance_info()?;
    let uuid = store.get_node(ident)?.uuid;
    store.update_node(uuid, |n| {
        let phase = n.driver_internal_info.deploy_phase;
        let busy = matches!(
            n.provision_state,
            ProvisionState::Deploying | ProvisionState::DeployWait
        ) && phase.is_some_and(DeployPhase::in_progress);
        if busy {
            return Err(RequestError::InProgress {
                node: n.uuid.to_string(),
                phase: phase.map_or("-", DeployPhase::as_str),
            });
        }
        if !matches!(
            n.provision_state,
            ProvisionState::Enroll
                | ProvisionState::Manageable
                | ProvisionState::Available
                | ProvisionState::Active
                | ProvisionState::DeployFailed
                | ProvisionState::DeployWait
        ) {
            return Err(RequestError::WrongState {
                node: n.uuid.to_string(),
                state: n.provision_state,
            });
        }
        for key in INSTANCE_INFO_KEYS {
            n.instance_info.remove(*key);
        }
        n.instance_info.extend(new_info);
        let dii = &mut n.driver_internal_info;
        dii.wipe_deploy_info();
        dii.is_whole_disk_image = Some(request.image_type == ImageType::WholeDisk);
        dii.deploy_phase = Some(DeployPhase::Requested);
        n.provision_state = ProvisionState::DeployWait;
        n.last_error = None;
        Ok(n.clone())
    })
}

/// The image id Ironic derives from `image_source`: its last `/`-separated component.
pub fn image_id(image_source: &str) -> &str {
    image_source.rsplit('/').next().unwrap_or(image_source)
}

/// The disk format implied by the URL's file name (after a `.gz`, `.zst` or `.xz` suffix),
/// or `None` when the name says nothing.
pub fn guess_disk_format(url: &str) -> Option<&'static str> {
    let name = image_id(url.split(['?', '#']).next().unwrap_or(url)).to_ascii_lowercase();
    let name = ["gz", "zst", "xz"]
        .iter()
        .find_map(|ext| name.strip_suffix(&format!(".{ext}")))
        .unwrap_or(&name);
    let ext = name.rsplit_once('.').map(|(_, ext)| ext)?;
    Some(match ext {
        "raw" => "raw",
        "qcow2" | "qcow" => "qcow2",
        "iso" => "iso",
        "vmdk" => "vmdk",
        "vdi" => "vdi",
        "vhd" => "vhd",
        "vhdx" => "vhdx",
        "gpt" => "gpt",
        _ => return None,
    })
}

/// The config drive as Ironic sends it: the bytes gzip-compressed, then base64-encoded.
pub fn encode_configdrive(bytes: &[u8]) -> Result<String, RequestError> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map(|gz| base64::engine::general_purpose::STANDARD.encode(gz))
        .map_err(|e| RequestError::Invalid(format!("compressing the config drive: {e}")))
}

/// Parses `--root-hint KEY=VALUE`: `size` becomes an integer (unless it has an operator,
/// e.g. `>= 10`), `rotational` a boolean, everything else stays a string.
pub fn parse_root_hint(s: &str) -> Result<(String, Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("root device hint {s:?}: expected KEY=VALUE"))?;
    let key = key.trim().to_string();
    let value = value.trim();
    let value = match key.as_str() {
        "size" => value
            .parse::<u64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        "rotational" => match value.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => json!(true),
            "0" | "f" | "false" | "off" | "n" | "no" => json!(false),
            _ => {
                return Err(format!(
                    "root device hint rotational={value:?}: not a boolean"
                ));
            }
        },
        _ => json!(value),
    };
    check_root_hint(&key, &value)?;
    Ok((key, value))
}

fn check_root_hint(key: &str, value: &Value) -> Result<(), String> {
    if !ROOT_HINT_NAMES.contains(&key) {
        return Err(format!(
            "unknown root device hint {key:?} (known: {})",
            ROOT_HINT_NAMES.join(", ")
        ));
    }
    let empty = match value {
        Value::String(s) => s.trim().is_empty(),
        Value::Null => true,
        _ => false,
    };
    if empty {
        return Err(format!("root device hint {key:?} has an empty value"));
    }
    Ok(())
}

fn is_http_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && reqwest::Url::parse(s).is_ok_and(|u| u.host_str().is_some())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn request() -> DeployRequest {
        DeployRequest {
            image_url: "http://127.0.0.1:8080/images/img.raw".into(),
            checksum: Some(format!("sha256:{}", "ab".repeat(32)).parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn checksums() {
        let sha = "a".repeat(64);
        assert_eq!(
            format!("SHA256:{sha}").parse::<Checksum>().unwrap(),
            Checksum::OsHash {
                algo: "sha256".into(),
                value: sha.clone()
            }
        );
        let md5 = "B".repeat(32);
        assert_eq!(
            format!("md5:{md5}").parse::<Checksum>().unwrap(),
            Checksum::Legacy("b".repeat(32))
        );
        assert_eq!(
            sha.parse::<Checksum>().unwrap(),
            Checksum::Legacy(sha.clone())
        );
        assert!("sha256:abc".parse::<Checksum>().is_err());
        assert!("crc32:abcd".parse::<Checksum>().is_err());
        assert!(
            format!("sha256:{}", "z".repeat(64))
                .parse::<Checksum>()
                .is_err()
        );
        assert!("abcd".parse::<Checksum>().is_err());
    }

    #[test]
    fn whole_disk_instance_info() {
        let mut req = request();
        req.boot_mode = Some(BootMode::Uefi);
        req.root_device.insert("name".into(), json!("/dev/vda"));
        let info = req.instance_info().unwrap();
        assert_eq!(
            Value::Object(info),
            json!({
                "image_source": "http://127.0.0.1:8080/images/img.raw",
                "image_url": "http://127.0.0.1:8080/images/img.raw",
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": "ab".repeat(32),
                "image_disk_format": "raw",
                "image_type": "whole-disk",
                "root_device": {"name": "/dev/vda"},
                "capabilities": {"boot_mode": "uefi"},
            })
        );
    }

    #[test]
    fn partition_instance_info_and_configdrive() {
        let mut req = request();
        req.image_type = ImageType::Partition;
        req.root_mb = Some(1500);
        req.swap_mb = Some(64);
        req.disk_label = Some(DiskLabel::Msdos);
        req.configdrive = Some(b"config-2 iso bytes".to_vec());
        req.checksum = Some(Checksum::Legacy("http://h/SHA256SUMS".into()));
        let info = req.instance_info().unwrap();
        assert_eq!(info["root_mb"], 1500);
        assert_eq!(info["root_gb"], 2);
        assert_eq!(info["swap_mb"], 64);
        assert_eq!(info["ephemeral_mb"], 0);
        assert_eq!(info["image_checksum"], "http://h/SHA256SUMS");
        assert_eq!(info["capabilities"], json!({"disk_label": "msdos"}));
        let b64 = info["configdrive"].as_str().unwrap();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"config-2 iso bytes");
    }

    #[test]
    fn invalid_requests() {
        let mut req = request();
        req.checksum = None;
        assert!(req.validate().is_err());
        let mut req = request();
        req.image_url = "ftp://x/img.raw".into();
        assert!(req.validate().is_err());
        let mut req = request();
        req.image_url = "http://x/dir/".into();
        assert!(req.validate().is_err());
        let mut req = request();
        req.image_type = ImageType::Partition;
        assert!(req.validate().is_err(), "partition images need root_mb");
        let mut req = request();
        req.swap_mb = Some(1);
        assert!(req.validate().is_err(), "whole-disk images take no sizes");
        let mut req = request();
        req.root_device.insert("colour".into(), json!("red"));
        assert!(req.validate().is_err());
    }

    #[test]
    fn root_hints() {
        assert_eq!(
            parse_root_hint("size=10").unwrap(),
            ("size".into(), json!(10))
        );
        assert_eq!(
            parse_root_hint("size=>= 10").unwrap(),
            ("size".into(), json!(">= 10"))
        );
        assert_eq!(
            parse_root_hint("serial=0123").unwrap(),
            ("serial".into(), json!("0123"))
        );
        assert_eq!(
            parse_root_hint("rotational=no").unwrap(),
            ("rotational".into(), json!(false))
        );
        assert!(parse_root_hint("rotational=maybe").is_err());
        assert!(parse_root_hint("bogus=1").is_err());
        assert!(parse_root_hint("name=").is_err());
        assert!(parse_root_hint("name").is_err());
    }

    #[test]
    fn disk_formats_from_names() {
        assert_eq!(guess_disk_format("http://h/a/img.raw"), Some("raw"));
        assert_eq!(guess_disk_format("http://h/a/img.qcow2"), Some("qcow2"));
        assert_eq!(guess_disk_format("http://h/a/img.raw.zst"), Some("raw"));
        assert_eq!(guess_disk_format("http://h/a/img.qcow2?x=1"), Some("qcow2"));
        assert_eq!(guess_disk_format("http://h/a/img"), None);
        assert_eq!(guess_disk_format("http://h/a/img.img"), None);
        assert_eq!(image_id("http://h/a/img.raw"), "img.raw");
    }
}
