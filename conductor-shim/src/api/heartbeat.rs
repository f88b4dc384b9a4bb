//! `POST /v1/heartbeat/{node_ident}`: validates in Ironic's order, records the agent's
//! session, answers 202 and hands the node to the conductor in the background.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::body;
use super::error::ApiError;
use super::version::ApiVersion;
use crate::timefmt;
use crate::token;

/// Values Ironic accepts for `agent_status`.
pub const AGENT_VALID_STATES: &[&str] = &["start", "end", "error"];

/// The heartbeat body.
#[derive(Debug, Clone, Deserialize)]
pub struct HeartbeatBody {
    /// `<scheme>://<host>:<port>` of the agent's API.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The token received at lookup.
    #[serde(default)]
    pub agent_token: Option<String>,
    /// The agent's version (API ≥ 1.36).
    #[serde(default)]
    pub agent_version: Option<String>,
    /// The agent's auto-TLS certificate (API ≥ 1.68).
    #[serde(default)]
    pub agent_verify_ca: Option<String>,
    /// Anaconda-style status (API ≥ 1.72).
    #[serde(default)]
    pub agent_status: Option<String>,
    /// Anaconda-style status message (API ≥ 1.72).
    #[serde(default)]
    pub agent_status_message: Option<String>,
}

/// The heartbeat checks that need the stored node, in Ironic's order (API then conductor).
/// Returns whether the heartbeat was recorded.
fn accept(
    node: &mut crate::model::Node,
    body: &HeartbeatBody,
    callback_url: &str,
    require_tls: bool,
) -> Result<bool, ApiError> {
    let dii = &node.driver_internal_info;
    if let Some(stored) = &dii.agent_url
        && stored != callback_url
    {
        tracing::error!(
            node = %node.uuid, url = callback_url, stored = %stored,
            "heartbeat with a changed callback URL; not processed"
        );
        return Err(ApiError::bad_request(
            "Detected change in ramdisk provided \"callback_url\"",
        ));
    }
    let Some(received) = body.agent_token.as_deref() else {
        return Err(ApiError::bad_request(
            "Agent token is required for heartbeat processing.",
        ));
    };
    if let Some(status) = &body.agent_status
        && !AGENT_VALID_STATES.contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "Agent status is invalid. Valid states are {}.",
            AGENT_VALID_STATES.join(",")
        )));
    }
    if body.agent_version.is_none() && body.agent_status.is_none() {
        return Err(ApiError::bad_request(
            "Agent version is required for heartbeat processing.",
        ));
    }
    let valid = dii
        .agent_secret_token
        .as_deref()
        .is_some_and(|stored| token::matches(received, stored));
    if !valid {
        tracing::error!(node = %node.uuid, "invalid or missing agent token in heartbeat");
        return Err(ApiError::bad_request(
            "Invalid or missing agent token received.",
        ));
    }
    if require_tls && !callback_url.is_empty() && !callback_url.starts_with("https://") {
        return Err(ApiError::bad_request("TLS is required by configuration"));
    }
    if let Some(ca) = body.agent_verify_ca.as_deref()
        && let Some(stored) = dii.agent_verify_ca.as_deref()
        && stored.trim() != ca.trim()
    {
        return Err(ApiError::bad_request(
            "Detected change in ramdisk provided \"agent_verify_ca\"",
        ));
    }
    if !node.provision_state.heartbeat_allowed() {
        tracing::warn!(
            node = %node.uuid, state = %node.provision_state,
            "heartbeat in a state that takes no heartbeats; ignored"
        );
        return Ok(false);
    }
    let dii = &mut node.driver_internal_info;
    dii.agent_url = Some(callback_url.to_string());
    if body.agent_version.is_some() {
        dii.agent_version = body.agent_version.clone();
    }
    if let Some(ca) = &body.agent_verify_ca {
        dii.agent_verify_ca = Some(ca.clone());
    }
    dii.agent_last_heartbeat = Some(timefmt::now());
    dii.agent_heartbeat_count = Some(dii.agent_heartbeat_count.unwrap_or(0).saturating_add(1));
    Ok(true)
}

/// `POST /v1/heartbeat/{node_ident}`.
pub async fn heartbeat(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(node_ident): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    if !version.at_least(22) {
        return Err(ApiError::not_found());
    }
    let body: HeartbeatBody = body::json(raw)?;
    if body.agent_version.is_some() && !version.at_least(36) {
        return Err(ApiError::bad_request(
            "Field \"agent_version\" not recognised",
        ));
    }
    if (body.agent_status.is_some() || body.agent_status_message.is_some()) && !version.at_least(72)
    {
        return Err(ApiError::bad_request(
            "Fields \"agent_status\" and \"agent_status_message\" not recognised.",
        ));
    }
    if body.agent_verify_ca.is_some() && !version.at_least(68) {
        return Err(ApiError::bad_request(
            "Field \"agent_verify_ca\" not recognised in this version",
        ));
    }
    let Some(callback_url) = body.callback_url.clone() else {
        return Err(ApiError::bad_request(
            "Missing mandatory parameter: callback_url",
        ));
    };
    let ident = node_ident.clone();
    let node = state
        .store
        .run(move |s| s.get_node(&ident))
        .await
        .map_err(ApiError::from)?;
    if !callback_url.is_empty() {
        let scheme = callback_url.split_once("://").map_or("", |(s, _)| s);
        if !scheme.to_ascii_lowercase().contains("http") {
            return Err(ApiError::bad_request(format!(
                "Invalid callback_url {callback_url:?}: the scheme must be http or https"
            )));
        }
    }
    let uuid: Uuid = node.uuid;
    let require_tls = state.config.require_tls;
    let recorded = state
        .store
        .run(move |s| s.update_node(uuid, |n| accept(n, &body, &callback_url, require_tls)))
        .await?;
    if recorded {
        tracing::info!(node = %uuid, "heartbeat accepted");
        state.conductor.spawn_heartbeat(uuid);
    }
    Ok(StatusCode::ACCEPTED)
}
