//! Helpers shared by the integration tests: a shim on a loopback port with a temp database,
//! heartbeats, an HTTP client, Ironic error-body parsing, a fake agent (HTTP or HTTPS) and
//! its command results, and the shim's CLI as a child process.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use conductor_shim::agent_client::{AgentClientOptions, TlsMinVersion, tls_config};
use conductor_shim::api::{self, AppState, ServerConfig};
use conductor_shim::model::{NewNode, Node};
use conductor_shim::state::ProvisionState;
use conductor_shim::store::{SharedStore, Store, StoreError};
use reqwest::Url;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// A running shim.
pub struct Shim {
    pub base: String,
    pub store: SharedStore,
    pub db: PathBuf,
    pub dir: TempDir,
}

impl Shim {
    pub async fn start(config: ServerConfig) -> Shim {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shim.sqlite");
        Shim::start_on(config, dir, db).await
    }

    /// A second shim process on the same database (as after a restart of the shim).
    pub async fn restarted(&self, config: ServerConfig) -> Shim {
        Shim::start_on(config, tempfile::tempdir().unwrap(), self.db.clone()).await
    }

    async fn start_on(config: ServerConfig, dir: TempDir, db: PathBuf) -> Shim {
        let store = SharedStore::new(Store::open(&db).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(store.clone(), config);
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        Shim {
            base: format!("http://{addr}"),
            store,
            db,
            dir,
        }
    }

    pub async fn default() -> Shim {
        Shim::start(ServerConfig::default()).await
    }

    pub async fn create(&self, name: &str, macs: &[&str], state: ProvisionState) -> Node {
        let new = NewNode {
            name: Some(name.to_string()),
            macs: macs.iter().map(|m| m.to_string()).collect(),
            provision_state: state,
            ..Default::default()
        };
        self.store.run(move |s| s.create_node(new)).await.unwrap()
    }

    pub async fn node(&self, ident: &str) -> Node {
        let ident = ident.to_string();
        self.store.run(move |s| s.get_node(&ident)).await.unwrap()
    }

    pub async fn update(&self, ident: &str, f: impl FnOnce(&mut Node) + Send + 'static) {
        let node = self.node(ident).await;
        self.store
            .run(move |s| {
                s.update_node(node.uuid, |n| {
                    f(n);
                    Ok::<_, StoreError>(())
                })
            })
            .await
            .unwrap();
    }

    /// Waits until `check` holds for the node (10 s at most).
    pub async fn wait_for(&self, ident: &str, what: &str, check: impl Fn(&Node) -> bool) -> Node {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let node = self.node(ident).await;
            if check(&node) {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {node:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An agent's heartbeat for `node` (API 1.68, from `callback_url` with `token`); returns
    /// the status.
    pub async fn heartbeat(&self, node: &str, callback_url: &str, token: &str) -> u16 {
        http()
            .post(self.url(&format!("/v1/heartbeat/{node}")))
            .header("X-OpenStack-Ironic-API-Version", "1.68")
            .json(
                &serde_json::json!({"callback_url": callback_url, "agent_token": token,
                                      "agent_version": "13.0.0"}),
            )
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Looks up by MAC at API 1.62 and returns the config token.
    pub async fn lookup_token(&self, mac: &str) -> String {
        let resp = http()
            .get(self.url(&format!("/v1/lookup?addresses={mac}")))
            .header("X-OpenStack-Ironic-API-Version", "1.62")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["config"]["agent_token"].as_str().unwrap().to_string()
    }
}

/// A shim without TLS that gives agents 5 s to answer.
pub fn plain_config() -> ServerConfig {
    ServerConfig {
        require_tls: false,
        agent: AgentClientOptions {
            timeout: Duration::from_secs(5),
            ..AgentClientOptions::default()
        },
        ..ServerConfig::default()
    }
}

/// The keys of a JSON object, sorted.
pub fn sorted_keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The shim's binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_conductor-shim");

/// `conductor-shim --db DB ARGS...` with its output piped (no environment database or log
/// filter).
pub fn cli(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("CONDUCTOR_SHIM_DB")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits (off the async runtime) for a CLI process started with [`cli`]: (success, stdout,
/// stderr).
pub async fn finished(child: Child) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A plain reqwest client (the TLS backend needs an explicit rustls config).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(None, TlsMinVersion::Tls13).unwrap())
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// Checks Ironic's error shape and returns (status, faultcode, faultstring).
pub async fn fault(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("application/json".to_string())
    );
    let outer: Value = resp.json().await.unwrap();
    let obj = outer.as_object().unwrap();
    assert_eq!(obj.len(), 1, "{outer}");
    let inner_text = obj["error_message"]
        .as_str()
        .expect("error_message is a string");
    let inner: Value = serde_json::from_str(inner_text).unwrap();
    assert_eq!(inner["debuginfo"], Value::Null);
    assert_eq!(inner.as_object().unwrap().len(), 3, "{inner}");
    (
        status,
        inner["faultcode"].as_str().unwrap().to_string(),
        inner["faultstring"].as_str().unwrap().to_string(),
    )
}

/// One request received by the fake agent.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Option<Value>,
}

type Responder = Arc<dyn Fn(&Recorded) -> (StatusCode, String) + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    responder: Responder,
    post_delay: Duration,
}

/// A stand-in for the agent's REST API.
pub struct FakeAgent {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeAgent {
    fn router(responder: Responder, post_delay: Duration) -> (Router, Arc<Mutex<Vec<Recorded>>>) {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            requests: Arc::clone(&requests),
            responder,
            post_delay,
        };
        (Router::new().fallback(record).with_state(state), requests)
    }

    /// Plain HTTP.
    pub async fn start(
        responder: impl Fn(&Recorded) -> (StatusCode, String) + Send + Sync + 'static,
    ) -> FakeAgent {
        FakeAgent::start_slow_posts(Duration::ZERO, responder).await
    }

    /// Plain HTTP; POST answers are delayed by `post_delay`.
    pub async fn start_slow_posts(
        post_delay: Duration,
        responder: impl Fn(&Recorded) -> (StatusCode, String) + Send + Sync + 'static,
    ) -> FakeAgent {
        let (router, requests) = FakeAgent::router(Arc::new(responder), post_delay);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeAgent {
            url: format!("http://{addr}"),
            requests,
        }
    }

    /// HTTPS with the given server config.
    pub async fn start_tls(
        config: rustls::ServerConfig,
        responder: impl Fn(&Recorded) -> (StatusCode, String) + Send + Sync + 'static,
    ) -> FakeAgent {
        let (router, requests) = FakeAgent::router(Arc::new(responder), Duration::ZERO);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = TlsListener {
            inner: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        tokio::spawn(async move { axum::serve(tls, router).await });
        FakeAgent {
            url: format!("https://{addr}"),
            requests,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn record(
    State(state): State<FakeState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> impl IntoResponse {
    let parsed = Url::parse(&format!("http://agent{uri}")).unwrap();
    let recorded = Recorded {
        method,
        path: parsed.path().to_string(),
        query: parsed.query_pairs().into_owned().collect(),
        body: serde_json::from_slice(&body).ok(),
    };
    let is_post = recorded.method == Method::POST;
    let (status, text) = (state.responder)(&recorded);
    state.requests.lock().unwrap().push(recorded);
    if is_post && !state.post_delay.is_zero() {
        tokio::time::sleep(state.post_delay).await;
    }
    (status, [("content-type", "application/json")], text)
}

struct TlsListener {
    inner: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A self-signed certificate for 127.0.0.1 (like the agent's auto-TLS one): (PEM, server config).
pub fn self_signed(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (String, rustls::ServerConfig) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "agent");
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)
        .unwrap();
    (pem, config)
}

/// A command result as the agent lists it, with a fresh id.
pub fn command(name: &str, status: &str, error: Value, result: Value) -> Value {
    serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "command_name": name,
        "command_status": status,
        "command_error": error,
        "command_result": result,
    })
}

/// An error answer of the agent's API.
pub fn agent_fault(status: StatusCode, text: &str) -> (StatusCode, String) {
    (
        status,
        serde_json::json!({"faultcode": "Client", "faultstring": text, "debuginfo": null})
            .to_string(),
    )
}

/// A command result of a scripted agent as the agent shows it: without the keys starting
/// with `__` (the test's own notes on the command).
pub fn shown(result: &Value) -> Value {
    let mut shown = result.clone();
    shown
        .as_object_mut()
        .unwrap()
        .retain(|key, _| !key.starts_with("__"));
    shown
}

/// A scripted agent's answer to `GET /v1/commands/` with these results.
pub fn command_list(commands: &[Value]) -> (StatusCode, String) {
    let shown: Vec<Value> = commands.iter().map(shown).collect();
    (
        StatusCode::OK,
        serde_json::json!({"commands": shown}).to_string(),
    )
}

/// A scripted agent takes a command: `result` joins its commands and is the answer.
pub fn accept(commands: &mut Vec<Value>, result: Value) -> (StatusCode, String) {
    let answer = shown(&result);
    commands.push(result);
    (StatusCode::OK, answer.to_string())
}

/// A scripted agent's answer to a command its script does not cover: `standby.power_off`
/// is taken, anything else is unknown.
pub fn other_command(commands: &mut Vec<Value>, name: &str) -> (StatusCode, String) {
    match name {
        "standby.power_off" => accept(
            commands,
            command("power_off", "RUNNING", Value::Null, Value::Null),
        ),
        other => agent_fault(
            StatusCode::BAD_REQUEST,
            &format!("Unknown command: {other}"),
        ),
    }
}

/// A command result JSON text.
pub fn result_json(name: &str, status: &str, result: Value) -> String {
    serde_json::json!({
        "id": "7474ab22-048c-421f-be71-1ce60598a5a9",
        "command_name": name,
        "command_status": status,
        "command_error": null,
        "command_result": result,
    })
    .to_string()
}
