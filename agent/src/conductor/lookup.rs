//! Lookup: find our node in Ironic, with IPA's retry and back-off rules.

use std::time::Duration;

use hardware_managers::Node;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use super::client::{AGENT_TOKEN_VERSION, IronicClient};

pub use crate::config::lookup::LookupConfig;

/// A successful lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The node.
    pub node: Node,
    /// Agent configuration from the conductor.
    pub config: LookupConfig,
}

/// Why lookup gave up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The budget ran out.
    #[error("lookup failed after {secs:.0} s: {last}")]
    Exhausted {
        /// How long we tried.
        secs: f64,
        /// The last failure.
        last: String,
    },
}

/// The outcome of one attempt.
enum Attempt {
    Done(Box<LookupResponse>),
    Retry(String),
    /// 409: the node is locked; wait the escalating extra pause.
    Locked(String),
}

/// Parses a 200 body; moves a legacy top-level `heartbeat_timeout` into `config`.
fn parse_response(body: &[u8]) -> Result<LookupResponse, String> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| format!("lookup answer is not JSON: {e}"))?;
    if v.get("node")
        .and_then(|n| n.get("uuid"))
        .and_then(Value::as_str)
        .is_none()
    {
        return Err("lookup answer has no node.uuid".into());
    }
    if v.get("config").is_none() {
        match v.get("heartbeat_timeout").cloned() {
            Some(hb) => v["config"] = serde_json::json!({ "heartbeat_timeout": hb }),
            None => return Err("lookup answer has no config".into()),
        }
    }
    serde_json::from_value(v).map_err(|e| format!("malformed lookup answer: {e}"))
}

async fn attempt(client: &IronicClient, macs: &[String], node_uuid: Option<&str>) -> Attempt {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("addresses", &macs.join(","));
    if let Some(u) = node_uuid {
        query.append_pair("node_uuid", u);
    }
    let version = client.version_capped(AGENT_TOKEN_VERSION).await;
    let path = format!("/v1/lookup?{}", query.finish());
    match client.send(Method::GET, &path, Some(version), None).await {
        Ok((StatusCode::OK, body)) => match parse_response(&body) {
            Ok(r) => Attempt::Done(Box::new(r)),
            Err(e) => Attempt::Retry(e),
        },
        Ok((StatusCode::CONFLICT, body)) => Attempt::Locked(super::client::ironic_fault(&body)),
        Ok((status, body)) => Attempt::Retry(format!(
            "Ironic answered {status}: {}. Check if inspection has completed?",
            super::client::ironic_fault(&body)
        )),
        Err(e) => Attempt::Retry(e.to_string()),
    }
}

/// The random exponential wait: uniform in `[min, min(60 s, max(min, 2^(n-1) s))]`.
pub fn backoff(attempt: u32, min: Duration) -> Duration {
    let exp = Duration::from_secs_f64(2f64.powi(attempt.saturating_sub(1).min(16) as i32));
    let high = exp.max(min).min(Duration::from_secs(60)).max(min);
    let secs = rand::random_range(min.as_secs_f64()..=high.as_secs_f64());
    Duration::from_secs_f64(secs)
}

/// Looks the node up until it succeeds or `budget` elapses.
pub async fn lookup(
    client: &IronicClient,
    macs: &[String],
    node_uuid: Option<&str>,
    budget: Duration,
    interval: Duration,
) -> Result<LookupResponse, LookupError> {
    let start = Instant::now();
    let deadline = start + budget;
    // Extra pauses after 409, escalating and sticky.
    let locked_pauses = [5u64, 10, 30];
    let mut locked = 0usize;
    let mut n = 0u32;
    loop {
        n += 1;
        let last = match attempt(client, macs, node_uuid).await {
            Attempt::Done(r) => {
                info!(node = ?r.node.uuid, attempts = n, "lookup succeeded");
                return Ok(*r);
            }
            Attempt::Retry(e) => e,
            Attempt::Locked(e) => {
                let pause = locked_pauses[locked.min(locked_pauses.len() - 1)];
                locked += 1;
                warn!(
                    pause_s = pause,
                    "node is locked (409), pausing before the next lookup"
                );
                tokio::time::sleep_until(
                    (Instant::now() + Duration::from_secs(pause)).min(deadline),
                )
                .await;
                e
            }
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(LookupError::Exhausted {
                secs: (now - start).as_secs_f64(),
                last,
            });
        }
        let wait = backoff(n, interval);
        warn!(attempt = n, error = %last, retry_in_s = wait.as_secs_f64(), "lookup failed");
        tokio::time::sleep_until((now + wait).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() -> anyhow::Result<()> {
        let token = "tok-0123456789abcdef0123456789abcdef-x";
        let body = format!(
            r#"{{"node": {{"uuid": "u"}}, "config": {{"heartbeat_timeout": 300, "agent_token": "{token}"}}}}"#
        );
        let r = parse_response(body.as_bytes()).map_err(anyhow::Error::msg)?;
        assert_eq!(r.config.agent_token.as_deref(), Some(token));
        for shown in [format!("{r:?}"), format!("{:#?}", r.config)] {
            assert!(!shown.contains("tok-0123"), "{shown}");
        }
        assert!(format!("{r:?}").contains(r#"agent_token: Some("***")"#));
        Ok(())
    }

    #[test]
    fn parses_trace_response() -> anyhow::Result<()> {
        let body = br#"{"node": {"uuid": "8c2e0381-7dd8-49bb-aea8-47445bf88872", "properties": {}},
          "config": {"agent_containers": {}, "agent_md5_checksum_enable": true, "agent_skip_bmc_detect": false,
          "agent_token": "0123456789012345678901234567890123456789abc", "agent_token_required": true,
          "disable_deep_image_inspection": false, "enable_bios_bootloader_install": false, "heartbeat_timeout": 60,
          "metrics": {"backend": "noop"}, "permitted_image_formats": ["raw", "gpt", "qcow2", "iso"],
          "tls_cipher_suites": null, "tls_min_version": "1.3"}}"#;
        let r = parse_response(body).map_err(anyhow::Error::msg)?;
        assert_eq!(
            r.node.uuid.as_deref(),
            Some("8c2e0381-7dd8-49bb-aea8-47445bf88872")
        );
        assert_eq!(r.config.heartbeat_timeout, 60.0);
        assert_eq!(r.config.tls_min_version.as_deref(), Some("1.3"));
        assert!(r.config.extra.contains_key("metrics"));
        Ok(())
    }

    #[test]
    fn legacy_and_broken_responses() {
        let legacy = br#"{"node": {"uuid": "u"}, "heartbeat_timeout": 300}"#;
        assert_eq!(
            parse_response(legacy).map(|r| r.config.heartbeat_timeout),
            Ok(300.0)
        );
        assert!(parse_response(br#"{"node": {}}"#).is_err());
        assert!(parse_response(br#"{"node": {"uuid": "u"}}"#).is_err());
        assert!(parse_response(b"<html>").is_err());
    }

    #[test]
    fn backoff_bounds() {
        for n in 1..40 {
            let d = backoff(n, Duration::from_secs(1));
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(60),
                "{n}: {d:?}"
            );
        }
        assert!(backoff(1, Duration::from_secs(1)) <= Duration::from_secs(1));
    }
}
