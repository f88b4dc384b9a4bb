//! The settings the conductor hands the agent at lookup (the `config` part of the lookup
//! response). Defined here, below the modules that act on them; the conductor client fills
//! them in ([`crate::conductor::lookup`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `config` part of the lookup response, with the keys the agent acts on. `Debug` never
/// shows the agent token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LookupConfig {
    /// Ironic's heartbeat timeout in seconds; drives the heartbeat interval.
    pub heartbeat_timeout: f64,
    /// The agent token (≥ 32 chars), `"******"` when already handed out, or null.
    #[serde(default)]
    pub agent_token: Option<String>,
    /// Leave BMC fields out of the inventory.
    #[serde(default)]
    pub agent_skip_bmc_detect: bool,
    /// Allow grub installation for BIOS.
    #[serde(default)]
    pub enable_bios_bootloader_install: bool,
    /// Minimum TLS version for the agent's server and outbound sessions.
    #[serde(default)]
    pub tls_min_version: Option<String>,
    /// TLS 1.2 cipher suites (informational: rustls offers only AEAD suites).
    #[serde(default)]
    pub tls_cipher_suites: Option<Value>,
    /// Image formats the conductor allows.
    #[serde(default)]
    pub permitted_image_formats: Option<Vec<String>>,
    /// Whether MD5 checksums are allowed.
    #[serde(default)]
    pub agent_md5_checksum_enable: Option<bool>,
    /// Whether deep image inspection is off.
    #[serde(default)]
    pub disable_deep_image_inspection: Option<bool>,
    /// Every other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for LookupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field is named so that a new one cannot be printed by accident.
        let LookupConfig {
            heartbeat_timeout,
            agent_token,
            agent_skip_bmc_detect,
            enable_bios_bootloader_install,
            tls_min_version,
            tls_cipher_suites,
            permitted_image_formats,
            agent_md5_checksum_enable,
            disable_deep_image_inspection,
            extra,
        } = self;
        // Ironic's "already handed out" marker is no secret; anything else is.
        let token = agent_token
            .as_deref()
            .map(|t| if t == "******" { t } else { "***" });
        f.debug_struct("LookupConfig")
            .field("heartbeat_timeout", heartbeat_timeout)
            .field("agent_token", &token)
            .field("agent_skip_bmc_detect", agent_skip_bmc_detect)
            .field(
                "enable_bios_bootloader_install",
                enable_bios_bootloader_install,
            )
            .field("tls_min_version", tls_min_version)
            .field("tls_cipher_suites", tls_cipher_suites)
            .field("permitted_image_formats", permitted_image_formats)
            .field("agent_md5_checksum_enable", agent_md5_checksum_enable)
            .field(
                "disable_deep_image_inspection",
                disable_deep_image_inspection,
            )
            .field("extra", extra)
            .finish()
    }
}
