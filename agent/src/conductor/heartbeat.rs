//! The heartbeat loop: IPA's body, version gating and jittered timing.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::client::{
    AGENT_TOKEN_VERSION, AGENT_VERIFY_CA_VERSION, AGENT_VERSION_IN_HEARTBEAT, IronicClient,
    ironic_fault,
};
use crate::context::AgentContext;

/// The heartbeat body (`POST /v1/heartbeat/<uuid>`). `Debug` never shows the agent token.
#[derive(Clone, PartialEq, Serialize)]
pub struct HeartbeatBody {
    /// Stable callback URL.
    pub callback_url: String,
    /// Agent token (API ≥ 1.62; may be null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_token: Option<Option<String>>,
    /// Agent version (API ≥ 1.36).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Auto-TLS certificate PEM (API ≥ 1.68 and a certificate exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_verify_ca: Option<String>,
}

impl std::fmt::Debug for HeartbeatBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let HeartbeatBody {
            callback_url,
            agent_token,
            agent_version,
            agent_verify_ca,
        } = self;
        f.debug_struct("HeartbeatBody")
            .field("callback_url", callback_url)
            .field(
                "agent_token",
                &agent_token.as_ref().map(|t| t.as_ref().map(|_| "***")),
            )
            .field("agent_version", agent_version)
            .field("agent_verify_ca", agent_verify_ca)
            .finish()
    }
}

/// Why a heartbeat failed.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// 409: the node is locked; try again soon.
    #[error("heartbeat conflict (node locked): {0}")]
    Conflict(String),
    /// Any other failure.
    #[error("heartbeat failed: {0}")]
    Failed(String),
}

/// Builds the body for API `version`.
pub fn body_for(
    version: (u32, u32),
    callback_url: &str,
    token: Option<String>,
    cert_pem: Option<&str>,
) -> HeartbeatBody {
    HeartbeatBody {
        callback_url: callback_url.to_string(),
        agent_token: (version >= AGENT_TOKEN_VERSION).then_some(token),
        agent_version: (version >= AGENT_VERSION_IN_HEARTBEAT)
            .then(|| crate::AGENT_VERSION.to_string()),
        agent_verify_ca: cert_pem
            .filter(|_| version >= AGENT_VERIFY_CA_VERSION)
            .map(String::from),
    }
}

/// Sends one heartbeat.
pub async fn send(
    client: &IronicClient,
    node_uuid: &str,
    body: &HeartbeatBody,
) -> Result<(), HeartbeatError> {
    let version = client.version_capped(AGENT_VERIFY_CA_VERSION).await;
    let value = serde_json::to_value(body).map_err(|e| HeartbeatError::Failed(e.to_string()))?;
    let path = format!("/v1/heartbeat/{node_uuid}");
    match client
        .send(Method::POST, &path, Some(version), Some(&value))
        .await
    {
        Ok((StatusCode::ACCEPTED, _)) => Ok(()),
        Ok((StatusCode::CONFLICT, b)) => Err(HeartbeatError::Conflict(ironic_fault(&b))),
        Ok((status, b)) => Err(HeartbeatError::Failed(format!(
            "Ironic answered {status}: {}",
            ironic_fault(&b)
        ))),
        Err(e) => Err(HeartbeatError::Failed(e.to_string())),
    }
}

/// Interval after a successful heartbeat: `timeout × U(0.3, 0.6)`.
pub fn interval_after_success(heartbeat_timeout: f64) -> Duration {
    let t = if heartbeat_timeout.is_finite() && heartbeat_timeout > 0.0 {
        heartbeat_timeout
    } else {
        300.0
    };
    Duration::from_secs_f64(t * rand::random_range(0.3..=0.6))
}

/// Interval after a failed heartbeat: `5 s × U(1, 2)`.
pub fn interval_after_error() -> Duration {
    Duration::from_secs_f64(5.0 * rand::random_range(1.0..=2.0))
}

/// Minimum spacing of a forced heartbeat after the previous one.
pub const FORCE_MIN_SPACING: Duration = Duration::from_secs(5);

/// Runs until the agent stops serving (`ctx.stop`): the first heartbeat at once, then on IPA's
/// schedule; an early one (no sooner than 5 s after the last) whenever an async command
/// finishes.
pub async fn run(
    ctx: Arc<AgentContext>,
    client: Arc<IronicClient>,
    node_uuid: String,
    callback_url: String,
    cert_pem: Option<String>,
    heartbeat_timeout: f64,
) {
    let mut count: u64 = 0;
    loop {
        if let Some(reason) = ctx.stop.requested() {
            info!(?reason, heartbeats = count, "heartbeats stopped");
            return;
        }
        let version = client.version_capped(AGENT_VERIFY_CA_VERSION).await;
        let body = body_for(version, &callback_url, ctx.token(), cert_pem.as_deref());
        let outcome = send(&client, &node_uuid, &body).await;
        let last = Instant::now();
        count += 1;
        let mut next = match &outcome {
            Ok(()) => {
                if count == 1 {
                    info!(node = %node_uuid, %callback_url, "first heartbeat accepted");
                } else {
                    debug!(node = %node_uuid, "heartbeat accepted");
                }
                last + interval_after_success(heartbeat_timeout)
            }
            Err(e) => {
                warn!(node = %node_uuid, error = %e, "heartbeat failed, retrying soon");
                last + interval_after_error()
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                reason = ctx.stop.wait() => {
                    info!(?reason, heartbeats = count, "heartbeats stopped");
                    return;
                }
                _ = ctx.heartbeat_now.notified() => {
                    let earliest = last + FORCE_MIN_SPACING;
                    if earliest < next {
                        debug!("heartbeat requested early");
                        next = earliest.max(Instant::now());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_gated_by_version() -> anyhow::Result<()> {
        let b = body_for((1, 31), "http://h:9999", Some("t".into()), Some("PEM"));
        assert_eq!(
            serde_json::to_value(&b)?,
            serde_json::json!({"callback_url": "http://h:9999"})
        );
        let b = body_for((1, 62), "http://h:9999", None, Some("PEM"));
        assert_eq!(
            serde_json::to_value(&b)?,
            serde_json::json!({"callback_url": "http://h:9999", "agent_token": null, "agent_version": crate::AGENT_VERSION})
        );
        let b = body_for((1, 68), "https://h:9999", Some("t".into()), Some("PEM"));
        assert_eq!(serde_json::to_value(&b)?["agent_verify_ca"], "PEM");
        let b = body_for((1, 68), "http://h:9999", Some("t".into()), None);
        assert!(serde_json::to_value(&b)?.get("agent_verify_ca").is_none());
        Ok(())
    }

    #[test]
    fn debug_never_shows_the_token() {
        let b = body_for(
            (1, 68),
            "http://h:9999",
            Some("tok-0123456789abcdef0123456789abcdef".into()),
            None,
        );
        let shown = format!("{b:?}");
        assert!(!shown.contains("tok-0123"), "{shown}");
        assert!(
            shown.contains(r#"agent_token: Some(Some("***"))"#),
            "{shown}"
        );
    }

    #[test]
    fn intervals() {
        for _ in 0..100 {
            let s = interval_after_success(300.0);
            assert!(s >= Duration::from_secs(90) && s <= Duration::from_secs(180));
            let e = interval_after_error();
            assert!(e >= Duration::from_secs(5) && e <= Duration::from_secs(10));
        }
    }
}
