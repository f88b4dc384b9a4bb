//! HTTP client for the Ironic API: version detection, fail-over between URLs, error bodies.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::config::Config;

/// An Ironic API version `(major, minor)`.
pub type ApiVersion = (u32, u32);

/// Fallback when `GET /` fails.
pub const MIN_VERSION: ApiVersion = (1, 31);
/// `agent_version` in heartbeats.
pub const AGENT_VERSION_IN_HEARTBEAT: ApiVersion = (1, 36);
/// Agent token support.
pub const AGENT_TOKEN_VERSION: ApiVersion = (1, 62);
/// `agent_verify_ca` and auto-TLS.
pub const AGENT_VERIFY_CA_VERSION: ApiVersion = (1, 68);

/// Errors talking to Ironic.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No URL could be reached (connect/timeout/transport error on every URL).
    #[error("cannot reach the Ironic API: {0}")]
    Connection(String),
    /// Ironic answered with an error status.
    #[error("Ironic answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// `faultstring` from Ironic's error body, or the raw body.
        message: String,
    },
    /// Ironic answered 2xx with a body we could not use.
    #[error("unexpected answer from Ironic: {0}")]
    Decode(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// Talks to the Ironic API URLs in order, rotating the one that worked to the front.
pub struct IronicClient {
    urls: Mutex<Vec<String>>,
    http: reqwest::Client,
    request_id: Option<String>,
    pinned: Option<ApiVersion>,
    detected: OnceCell<ApiVersion>,
}

impl std::fmt::Debug for IronicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IronicClient")
            .field("urls", &self.urls())
            .finish_non_exhaustive()
    }
}

/// Builds the outbound HTTP client ([`crate::fetch::client::build`]) with the agent's TLS
/// settings, `timeout` for connecting and for each request.
pub fn http_client(
    config: &Config,
    timeout: Duration,
    tls_min: &str,
) -> Result<reqwest::Client, ClientError> {
    let tls = crate::fetch::TlsSettings {
        min_version: tls_min.to_string(),
        ..crate::fetch::TlsSettings::for_ironic(config)
    };
    let settings = crate::fetch::ClientSettings {
        max_idle_per_host: 2,
        ..crate::fetch::ClientSettings::new(tls, timeout)
    };
    crate::fetch::client::build(&settings).map_err(|e| ClientError::Build(e.to_string()))
}

/// Extracts `faultstring` from Ironic's `{"error_message": "<json>"}` (string or dict form).
pub fn ironic_fault(body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body).trim().to_string();
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return raw;
    };
    let inner = match v.get("error_message") {
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.clone()))
        }
        Some(other) => other.clone(),
        None => v.clone(),
    };
    match &inner {
        Value::String(s) => s.clone(),
        _ => inner
            .get("faultstring")
            .or_else(|| inner.get("title"))
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or(raw),
    }
}

impl IronicClient {
    /// A client for `config.api_urls`.
    pub fn new(config: &Config) -> Result<Self, ClientError> {
        Ok(IronicClient {
            urls: Mutex::new(config.api_urls.clone()),
            http: http_client(config, config.http_request_timeout, "1.2")?,
            request_id: config.global_request_id.clone(),
            pinned: config.ironic_api_version,
            detected: OnceCell::new(),
        })
    }

    /// The API URLs in current preference order.
    pub fn urls(&self) -> Vec<String> {
        match self.urls.lock() {
            Ok(u) => u.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn promote(&self, url: &str) {
        if let Ok(mut urls) = self.urls.lock()
            && let Some(pos) = urls.iter().position(|u| u == url)
            && pos != 0
        {
            let u = urls.remove(pos);
            urls.insert(0, u);
        }
    }

    /// Sends a request to each URL in turn until one answers (connection-type errors move on).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        version: Option<ApiVersion>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut last_error = String::from("no Ironic API URL configured");
        for base in self.urls() {
            let mut req = self
                .http
                .request(method.clone(), format!("{base}{path_and_query}"))
                .header("Accept", "application/json")
                .header("Content-Type", "application/json");
            if let Some((a, b)) = version {
                req = req.header("X-OpenStack-Ironic-API-Version", format!("{a}.{b}"));
            }
            if let Some(id) = &self.request_id {
                req = req.header("X-OpenStack-Request-ID", id);
            }
            if let Some(b) = body {
                req = req
                    .body(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) => {
                            self.promote(&base);
                            return Ok((status, bytes.to_vec()));
                        }
                        Err(e) => last_error = format!("{base}: reading the answer: {e}"),
                    }
                }
                Err(e) => {
                    // The whole cause chain: "error sending request" alone hides a refused
                    // certificate or a refused connection.
                    let why = crate::tls::describe_error(&e.without_url());
                    warn!(url = %base, error = %why, "Ironic API unreachable, trying the next URL");
                    last_error = format!("{base}: {why}");
                }
            }
        }
        Err(ClientError::Connection(last_error))
    }

    /// The Ironic API version: pinned, else `GET /`'s `default_version.version`, else 1.31.
    ///
    /// Only a successful detection is kept: when the conductor cannot be reached yet (the
    /// network comes up after the agent starts) or answers without a version, this call falls
    /// back to 1.31 and the next one asks again, as IPA does. Caching the fallback would pin a
    /// modern conductor to 1.31 for the whole run (no token, no TLS).
    pub async fn api_version(&self) -> ApiVersion {
        if let Some(v) = self.pinned {
            return v;
        }
        if let Some(v) = self.detected.get() {
            return *v;
        }
        let detected = match self.send(Method::GET, "/", None, None).await {
            Ok((status, body)) if status.is_success() => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["default_version"]["version"].as_str().map(String::from))
                .and_then(|s| crate::config::parse_version(&s).ok()),
            _ => None,
        };
        match detected {
            Some(v) => {
                info!(version = %format!("{}.{}", v.0, v.1), "detected Ironic API version");
                *self.detected.get_or_init(|| async { v }).await
            }
            None => {
                warn!("could not detect the Ironic API version, assuming 1.31 for now");
                MIN_VERSION
            }
        }
    }

    /// The version to send: `min(detected, cap)`.
    pub async fn version_capped(&self, cap: ApiVersion) -> ApiVersion {
        self.api_version().await.min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Flags, KernelParams};
    use clap::Parser;

    fn client_for(url: &str) -> IronicClient {
        let flags = Flags::parse_from(["ironic-agent"]);
        let config = Config::from_parts(&flags, KernelParams::parse(&format!("ipa-api-url={url}")))
            .expect("config");
        IronicClient::new(&config).expect("client")
    }

    #[tokio::test]
    async fn an_unreachable_conductor_does_not_pin_the_fallback_version() {
        // Nothing listens on a port just released: the fallback is used but not kept.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let client = client_for(&format!("http://127.0.0.1:{port}"));
        assert_eq!(client.api_version().await, MIN_VERSION);
        assert!(
            client.detected.get().is_none(),
            "the fallback must not be cached"
        );

        let base = crate::testutil::serve_routes([(
            "/",
            (200, br#"{"default_version": {"version": "1.89"}}"#.to_vec()),
        )])
        .expect("server");
        let client = client_for(&base);
        assert_eq!(client.api_version().await, (1, 89));
        assert_eq!(client.detected.get(), Some(&(1, 89)));
    }

    #[test]
    fn extracts_ironic_faults() {
        let body = br#"{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid or missing agent token received.\", \"debuginfo\": null}"}"#;
        assert_eq!(
            ironic_fault(body),
            "Invalid or missing agent token received."
        );
        let dict = br#"{"error_message": {"faultstring": "Node locked"}}"#;
        assert_eq!(ironic_fault(dict), "Node locked");
        assert_eq!(ironic_fault(b"plain text"), "plain text");
        assert_eq!(ironic_fault(br#"{"title": "Not Found"}"#), "Not Found");
    }
}
