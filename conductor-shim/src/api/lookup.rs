//! `GET /v1/lookup?addresses=<MACs>&node_uuid=<uuid>`: finds the agent's node, hands out the
//! agent token once and returns the agent's configuration.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ApiError;
use super::root::Link;
use super::version::ApiVersion;
use super::{AppState, ServerConfig, base_url};
use crate::mac;
use crate::mask;
use crate::model::{JsonMap, Node};
use crate::store::StoreError;
use crate::token;

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    /// Comma-separated MAC addresses.
    #[serde(default)]
    pub addresses: Option<String>,
    /// Node UUID (from inspection).
    #[serde(default)]
    pub node_uuid: Option<String>,
}

/// `node` of the lookup response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupNode {
    /// Node UUID.
    pub uuid: Uuid,
    /// `properties`.
    pub properties: JsonMap,
    /// `instance_info` with secrets, `image_url` and `configdrive` masked.
    pub instance_info: JsonMap,
    /// `driver_internal_info` with secrets (the token) masked.
    pub driver_internal_info: JsonMap,
    /// Self and bookmark links.
    pub links: Vec<Link>,
}

/// `config.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// `noop`.
    pub backend: String,
    /// Prefix (none).
    pub global_prefix: Option<String>,
    /// false.
    pub prepend_host: bool,
    /// true.
    pub prepend_host_reverse: bool,
    /// false.
    pub prepend_uuid: bool,
}

/// `config.metrics_statsd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsdConfig {
    /// `localhost`.
    pub statsd_host: String,
    /// 8125.
    pub statsd_port: u16,
}

/// `config.agent_containers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainersConfig {
    /// false.
    pub allow_arbitrary_containers: bool,
    /// Empty.
    pub allowed_containers: Vec<String>,
    /// The steps file path inside the ramdisk.
    pub container_steps_file: String,
    /// Pull options.
    pub pull_options: Vec<String>,
    /// Run options.
    pub run_options: Vec<String>,
    /// `podman`.
    pub runner: String,
}

/// `config` of the lookup response: exactly the keys Ironic 39 sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupConfig {
    /// Metrics settings.
    pub metrics: MetricsConfig,
    /// Statsd settings.
    pub metrics_statsd: StatsdConfig,
    /// Heartbeat timeout in seconds.
    pub heartbeat_timeout: u64,
    /// Container step settings.
    pub agent_containers: ContainersConfig,
    /// The new token, `"******"` if one was handed out before, null below API 1.62.
    pub agent_token: Option<String>,
    /// Always true.
    pub agent_token_required: bool,
    /// Allow MD5 checksums.
    pub agent_md5_checksum_enable: bool,
    /// false.
    pub disable_deep_image_inspection: bool,
    /// Image formats the agent may write.
    pub permitted_image_formats: Vec<String>,
    /// false.
    pub agent_skip_bmc_detect: bool,
    /// `[agent]enable_bios_bootloader_install` (false by default).
    pub enable_bios_bootloader_install: bool,
    /// `1.3`.
    pub tls_min_version: String,
    /// None.
    pub tls_cipher_suites: Option<String>,
}

impl LookupConfig {
    /// The configuration for the server settings and a token value.
    pub fn new(config: &ServerConfig, agent_token: Option<String>) -> LookupConfig {
        LookupConfig {
            metrics: MetricsConfig {
                backend: "noop".to_string(),
                global_prefix: None,
                prepend_host: false,
                prepend_host_reverse: true,
                prepend_uuid: false,
            },
            metrics_statsd: StatsdConfig {
                statsd_host: "localhost".to_string(),
                statsd_port: 8125,
            },
            heartbeat_timeout: config.heartbeat_timeout,
            agent_containers: ContainersConfig {
                allow_arbitrary_containers: false,
                allowed_containers: Vec::new(),
                container_steps_file: "/etc/ironic-python-agent.d/mysteps.yaml".to_string(),
                pull_options: Vec::new(),
                run_options: vec!["--rm".to_string(), "--network=host".to_string()],
                runner: "podman".to_string(),
            },
            agent_token,
            agent_token_required: true,
            agent_md5_checksum_enable: true,
            disable_deep_image_inspection: false,
            permitted_image_formats: ["raw", "gpt", "qcow2", "iso"]
                .into_iter()
                .map(str::to_string)
                .collect(),
            agent_skip_bmc_detect: false,
            enable_bios_bootloader_install: config.enable_bios_bootloader_install,
            tls_min_version: "1.3".to_string(),
            tls_cipher_suites: None,
        }
    }
}

/// The lookup response body (also `continue_inspection`'s at API ≥ 1.84).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The node.
    pub node: LookupNode,
    /// The agent's configuration.
    pub config: LookupConfig,
}

impl LookupResponse {
    /// Builds the response for `node` (after the token was handled).
    pub fn new(node: &Node, token: Option<String>, config: &ServerConfig, base: &str) -> Self {
        let dii = serde_json::to_value(&node.driver_internal_info)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        LookupResponse {
            node: LookupNode {
                uuid: node.uuid,
                properties: node.properties.clone(),
                instance_info: mask::mask_map_with(
                    &node.instance_info,
                    &["image_url", "configdrive"],
                ),
                driver_internal_info: mask::mask_map(&dii),
                links: vec![
                    Link::new(format!("{base}/v1/nodes/{}", node.uuid), "self"),
                    Link::new(format!("{base}/nodes/{}", node.uuid), "bookmark"),
                ],
            },
            config: LookupConfig::new(config, token),
        }
    }
}

/// Hands out the node's token: a new one if it has none (stored in
/// `driver_internal_info.agent_secret_token`), else `"******"`. Returns the updated node.
pub async fn issue_token(state: &AppState, node: Uuid) -> Result<(String, Node), ApiError> {
    state
        .store
        .run(move |s| {
            let current = s
                .node_by_uuid(node)?
                .ok_or_else(|| StoreError::NodeNotFound(node.to_string()))?;
            if current.driver_internal_info.agent_secret_token.is_some() {
                return Ok((token::MASKED.to_string(), current));
            }
            s.update_node(node, |n| {
                let value = match &n.driver_internal_info.agent_secret_token {
                    Some(_) => token::MASKED.to_string(),
                    None => {
                        let new = token::generate();
                        n.driver_internal_info.agent_secret_token = Some(new.clone());
                        new
                    }
                };
                Ok::<_, StoreError>((value, n.clone()))
            })
        })
        .await
        .map_err(ApiError::from)
}

/// `GET /v1/lookup`.
pub async fn lookup(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    query: Result<Query<LookupQuery>, QueryRejection>,
) -> Result<Json<LookupResponse>, ApiError> {
    if !version.at_least(22) {
        return Err(ApiError::not_found());
    }
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let macs = query
        .addresses
        .as_deref()
        .map(mac::parse_list)
        .unwrap_or_default();
    let node_uuid =
        match query.node_uuid.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
                ApiError::bad_request(format!("Expected a UUID but received {text}."))
            })?),
        };
    if macs.is_empty() && node_uuid.is_none() {
        return Err(ApiError::bad_request(
            "At least one of 'addresses' and 'node_uuid' parameters is required",
        ));
    }
    let found = state
        .store
        .run(move |s| match node_uuid {
            Some(uuid) => s.node_by_uuid(uuid),
            None => s.node_by_macs(&macs),
        })
        .await;
    let node = match found {
        Ok(Some(node)) => node,
        Ok(None) | Err(StoreError::AmbiguousPorts(_)) => return Err(ApiError::not_found()),
        Err(e) => return Err(e.into()),
    };
    if state.config.restrict_lookup && !node.provision_state.lookup_allowed(state.config.fast_track)
    {
        tracing::warn!(
            node = %node.uuid,
            state = %node.provision_state,
            "lookup refused: node is not in a state that allows lookup"
        );
        return Err(ApiError::not_found());
    }
    let (token, node) = if version.at_least(62) {
        let (token, node) = issue_token(&state, node.uuid).await?;
        (Some(token), node)
    } else {
        (None, node)
    };
    Ok(Json(LookupResponse::new(
        &node,
        token,
        &state.config,
        &base_url(&state.config, &headers),
    )))
}
