//! The HTTP client for the agent's command API, behaving like Ironic's `agent_client`:
//! `POST <agent_url>/v1/commands/?wait=..&agent_token=..` with `{"name", "params"}` and
//! `GET <agent_url>/v1/commands/?agent_token=..`.
//!
//! * 409, or a faultstring containing "agent is busy", is [`AgentClientError::AgentInProgress`]
//!   (retry on a later heartbeat); any other status ≥ 400 is [`AgentClientError::AgentApi`].
//! * A connection failure on POST makes the client look at `GET /v1/commands/`: if the newest
//!   command has the same short name and is still RUNNING, that result is used; otherwise the
//!   POST is retried, up to [`AgentClientOptions::max_attempts`] times.
//! * For an `https` agent URL the only trusted root is the certificate the agent sent as
//!   `agent_verify_ca`; TLS 1.3 is the minimum unless configured otherwise.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{JsonMap, Node};

/// Default per-request timeout (Ironic's `[agent]command_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Default number of POST attempts on connection failures (`[agent]max_command_attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Errors talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentClientError {
    /// The agent is busy with another command (HTTP 409 or "agent is busy").
    #[error("agent is busy: {0}")]
    AgentInProgress(String),
    /// The agent answered with an error status.
    #[error("agent API error (HTTP {status}): {faultstring}")]
    AgentApi {
        /// HTTP status code.
        status: u16,
        /// The agent's `faultstring` (or the raw body if it had none).
        faultstring: String,
    },
    /// The agent could not be reached (connect, TLS, timeout, reset).
    #[error("cannot reach the agent at {url}: {detail}")]
    Connection {
        /// The URL requested (token removed).
        url: String,
        /// What failed, with its causes.
        detail: String,
    },
    /// The agent answered something that is not the expected JSON.
    #[error("invalid response from the agent: {0}")]
    InvalidResponse(String),
    /// The node has no recorded `agent_url` (no heartbeat yet).
    #[error("node {0} has no agent_url: the agent has not heartbeated yet")]
    NoAgentUrl(String),
    /// The agent URL does not parse.
    #[error("invalid agent URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The TLS client configuration could not be built.
    #[error("agent TLS configuration: {0}")]
    Tls(String),
}

impl AgentClientError {
    /// Whether the agent is busy (the operation should be retried later).
    pub fn is_in_progress(&self) -> bool {
        matches!(self, AgentClientError::AgentInProgress(_))
    }

    /// Whether this is a connection-level failure.
    pub fn is_connection(&self) -> bool {
        matches!(self, AgentClientError::Connection { .. })
    }

    /// The agent's faultstring, for API errors.
    pub fn faultstring(&self) -> Option<&str> {
        match self {
            AgentClientError::AgentApi { faultstring, .. }
            | AgentClientError::AgentInProgress(faultstring) => Some(faultstring),
            _ => None,
        }
    }
}

/// The minimum TLS version accepted from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only (Ironic's default).
    #[default]
    Tls13,
}

impl FromStr for TlsMinVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1.2" => Ok(TlsMinVersion::Tls12),
            "1.3" => Ok(TlsMinVersion::Tls13),
            other => Err(format!(
                "unsupported TLS version {other:?} (use 1.2 or 1.3)"
            )),
        }
    }
}

impl fmt::Display for TlsMinVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMinVersion::Tls12 => "1.2",
            TlsMinVersion::Tls13 => "1.3",
        })
    }
}

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentClientOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Minimum TLS version for `https` agents.
    pub tls_min: TlsMinVersion,
    /// POST attempts on connection failures (at least 1).
    pub max_attempts: u32,
}

impl Default for AgentClientOptions {
    fn default() -> Self {
        AgentClientOptions {
            timeout: DEFAULT_TIMEOUT,
            tls_min: TlsMinVersion::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// A command's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandStatus {
    /// Still running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Hardware-manager version mismatch (IPA's name).
    CleanVersionMismatch,
    /// Hardware-manager version mismatch (newer name).
    VersionMismatch,
    /// Anything else.
    #[serde(other)]
    Unknown,
}

/// `command_error` of a failed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandError {
    /// Error class name (`CommandExecutionError`, ...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// HTTP-like code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Class message.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub message: Option<String>,
    /// Instance details.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub details: Option<String>,
    /// Other keys (e.g. `error` of sync string failures).
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl CommandError {
    /// The text Ironic would report: `details`, else `message`, else the whole error.
    pub fn describe(&self) -> String {
        self.details
            .clone()
            .or_else(|| self.message.clone())
            .unwrap_or_else(|| serde_json::to_string(self).unwrap_or_default())
    }
}

/// One command result with IPA's five keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Result id (UUID).
    pub id: String,
    /// Short command name (`get_deploy_steps`).
    pub command_name: String,
    /// Status.
    pub command_status: CommandStatus,
    /// Error, if failed.
    #[serde(default)]
    pub command_error: Option<CommandError>,
    /// Result payload, command-specific.
    #[serde(default)]
    pub command_result: Option<Value>,
}

/// `GET /v1/commands/` body.
#[derive(Debug, Clone, Deserialize)]
struct CommandList {
    commands: Vec<CommandResult>,
}

/// The POST body.
#[derive(Debug, Serialize)]
struct CommandRequest<'a, P: Serialize + ?Sized> {
    name: &'a str,
    params: &'a P,
}

/// The agent's error body.
#[derive(Debug, Deserialize)]
struct Fault {
    faultstring: Option<String>,
}

/// A client bound to one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    commands_url: Url,
    token: Option<String>,
    max_attempts: u32,
}

impl AgentClient {
    /// A client for the agent at `agent_url` (e.g. `https://192.0.2.10:9999`), sending `token`
    /// and, for `https`, trusting only `verify_ca` (a PEM certificate).
    pub fn new(
        agent_url: &str,
        token: Option<&str>,
        verify_ca: Option<&str>,
        options: &AgentClientOptions,
    ) -> Result<AgentClient, AgentClientError> {
        let invalid = |detail: String| AgentClientError::InvalidUrl {
            url: agent_url.to_string(),
            detail,
        };
        let base =
            Url::parse(agent_url.trim_end_matches('/')).map_err(|e| invalid(e.to_string()))?;
        let tls = match base.scheme() {
            "https" => {
                let ca = verify_ca.ok_or_else(|| {
                    AgentClientError::Tls(
                        "the agent URL is https but no agent_verify_ca certificate is stored"
                            .to_string(),
                    )
                })?;
                tls_config(Some(ca), options.tls_min)?
            }
            "http" => tls_config(None, options.tls_min)?,
            other => return Err(invalid(format!("unsupported scheme {other:?}"))),
        };
        let commands_url = base
            .join("/v1/commands/")
            .map_err(|e| invalid(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(30)))
            .no_proxy()
            .build()
            .map_err(|e| AgentClientError::Tls(error_chain(&e)))?;
        Ok(AgentClient {
            http,
            commands_url,
            token: token.map(str::to_string),
            max_attempts: options.max_attempts.max(1),
        })
    }

    /// A client for the node's agent, from its recorded `agent_url`, token and certificate.
    pub fn for_node(
        node: &Node,
        options: &AgentClientOptions,
    ) -> Result<AgentClient, AgentClientError> {
        let dii = &node.driver_internal_info;
        let url = dii
            .agent_url
            .as_deref()
            .ok_or_else(|| AgentClientError::NoAgentUrl(node.uuid.to_string()))?;
        AgentClient::new(
            url,
            dii.agent_secret_token.as_deref(),
            dii.agent_verify_ca.as_deref(),
            options,
        )
    }

    /// The commands URL (without the token).
    pub fn commands_url(&self) -> &Url {
        &self.commands_url
    }

    fn url(&self, wait: Option<bool>) -> Url {
        let mut url = self.commands_url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(wait) = wait {
                query.append_pair("wait", if wait { "true" } else { "false" });
            }
            if let Some(token) = &self.token {
                query.append_pair("agent_token", token);
            }
        }
        url
    }

    /// Sends command `name` (`extension.command`) with `params`; `wait` asks the agent to
    /// answer only when the command has finished.
    pub async fn execute<P: Serialize + ?Sized>(
        &self,
        name: &str,
        params: &P,
        wait: bool,
    ) -> Result<CommandResult, AgentClientError> {
        let short = name.rsplit('.').next().unwrap_or(name);
        let body = CommandRequest { name, params };
        let mut attempt = 1;
        loop {
            let sent = self
                .http
                .post(self.url(Some(wait)))
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body)
                .send()
                .await;
            let err = match sent {
                Ok(response) => match self.read(response).await {
                    Ok(text) => return parse_json::<CommandResult>(&text),
                    Err(e) => e,
                },
                Err(e) => self.connection_error(e),
            };
            if !err.is_connection() {
                return Err(err);
            }
            tracing::warn!(command = name, attempt, error = %err, "sending a command to the agent failed");
            // The command may have been received before the connection broke.
            if let Ok(commands) = self.commands().await
                && let Some(last) = commands.last()
                && last.command_name == short
                && last.command_status == CommandStatus::Running
            {
                return Ok(last.clone());
            }
            if attempt >= self.max_attempts {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `GET /v1/commands/`: all command results, oldest first.
    pub async fn commands(&self) -> Result<Vec<CommandResult>, AgentClientError> {
        let response = self
            .http
            .get(self.url(None))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.connection_error(e))?;
        let text = self.read(response).await?;
        Ok(parse_json::<CommandList>(&text)?.commands)
    }

    /// Reads a response; error statuses become typed errors.
    async fn read(&self, response: reqwest::Response) -> Result<String, AgentClientError> {
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| self.connection_error(e))?;
        if status.as_u16() < 400 {
            return Ok(text);
        }
        let faultstring = serde_json::from_str::<Fault>(&text)
            .ok()
            .and_then(|f| f.faultstring)
            .unwrap_or_else(|| text.trim().to_string());
        if status == reqwest::StatusCode::CONFLICT
            || faultstring.to_lowercase().contains("agent is busy")
        {
            Err(AgentClientError::AgentInProgress(faultstring))
        } else {
            Err(AgentClientError::AgentApi {
                status: status.as_u16(),
                faultstring,
            })
        }
    }

    /// A connection error; reqwest's URL (which carries the token) is dropped from the text.
    fn connection_error(&self, e: reqwest::Error) -> AgentClientError {
        AgentClientError::Connection {
            url: self.commands_url.to_string(),
            detail: error_chain(&e.without_url()),
        }
    }
}

/// Builds the rustls client configuration: ring provider, `min` as lowest protocol version,
/// and as roots only the certificates in `ca_pem` (none for plain-HTTP clients).
pub fn tls_config(
    ca_pem: Option<&str>,
    min: TlsMinVersion,
) -> Result<rustls::ClientConfig, AgentClientError> {
    let mut roots = RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| AgentClientError::Tls(format!("agent_verify_ca: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| AgentClientError::Tls(format!("agent_verify_ca: {e}")))?;
        }
        if roots.is_empty() {
            return Err(AgentClientError::Tls(
                "agent_verify_ca contains no PEM certificate".to_string(),
            ));
        }
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| AgentClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, AgentClientError> {
    serde_json::from_str(text).map_err(|e| {
        let mut shown: String = text.chars().take(200).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        AgentClientError::InvalidResponse(format!("{e}; body: {shown:?}"))
    })
}

/// An error and its causes, joined with `": "`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Accepts a string, or any other JSON value as its JSON text.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_command_results() {
        let r: CommandResult = serde_json::from_value(json!({
            "id": "d38", "command_name": "slowfail", "command_status": "FAILED",
            "command_error": {"type": "CommandExecutionError", "code": 500,
                              "message": "Command execution failed", "details": "async plain fail"},
            "command_result": null
        }))
        .unwrap();
        assert_eq!(r.command_status, CommandStatus::Failed);
        assert_eq!(
            r.command_error.as_ref().unwrap().describe(),
            "async plain fail"
        );
        let r: CommandResult = serde_json::from_value(json!({
            "id": "1", "command_name": "x", "command_status": "WEIRD",
            "command_error": {"error": "oops", "details": {"a": 1}}, "command_result": {"k": 1}
        }))
        .unwrap();
        assert_eq!(r.command_status, CommandStatus::Unknown);
        assert_eq!(
            r.command_error.unwrap().details.as_deref(),
            Some(r#"{"a":1}"#)
        );
    }

    #[test]
    fn builds_urls_with_token() {
        let c = AgentClient::new(
            "http://127.0.0.1:9999/",
            Some("tok"),
            None,
            &AgentClientOptions::default(),
        )
        .unwrap();
        assert_eq!(
            c.url(Some(true)).as_str(),
            "http://127.0.0.1:9999/v1/commands/?wait=true&agent_token=tok"
        );
        assert_eq!(
            c.url(None).as_str(),
            "http://127.0.0.1:9999/v1/commands/?agent_token=tok"
        );
        assert!(matches!(
            AgentClient::new("https://127.0.0.1:9999", None, None, &Default::default()),
            Err(AgentClientError::Tls(_))
        ));
        assert!(matches!(
            AgentClient::new("ftp://x", None, None, &Default::default()),
            Err(AgentClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            tls_config(Some("not pem"), TlsMinVersion::Tls13),
            Err(AgentClientError::Tls(_))
        ));
        assert_eq!(
            "1.2".parse::<TlsMinVersion>().unwrap(),
            TlsMinVersion::Tls12
        );
        assert!("1.1".parse::<TlsMinVersion>().is_err());
    }
}
