//! The Ironic API subset a ramdisk agent calls, served with axum:
//!
//! | route | handler |
//! |---|---|
//! | `GET /` | [`root::root`] |
//! | `GET /v1`, `/v1/` | [`root::v1`] |
//! | `GET /v1/lookup` | [`lookup::lookup`] |
//! | `POST /v1/heartbeat/{node_ident}` | [`heartbeat::heartbeat`] |
//! | `POST /v1/continue_inspection` | [`inspection::continue_inspection`] |
//! | `GET /images/<name>` | files of [`ServerConfig::images_dir`] (with `Range` support) |
//!
//! Every error is answered in Ironic's format ([`error::ApiError`]); `/v1` routes resolve
//! the `X-OpenStack-Ironic-API-Version` header first ([`version`]).

pub mod body;
pub mod error;
pub mod heartbeat;
pub mod inspection;
pub mod lookup;
pub mod root;
pub mod version;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::{Listener, ListenerExt};
use tower_http::services::ServeDir;

use crate::agent_client::AgentClientOptions;
use crate::clean::CleanOptions;
use crate::conductor::Conductor;
use crate::deploy::DeployOptions;
use crate::store::SharedStore;
use error::ApiError;

/// Read size of the image file server (large reads for large images).
pub const IMAGE_CHUNK_BYTES: usize = 1024 * 1024;

/// Default request body limit: inspection data carries base64 logs.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Settings of the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `config.heartbeat_timeout` handed to agents (seconds).
    pub heartbeat_timeout: u64,
    /// Reject heartbeats whose callback URL is not `https://` (Ironic ≥ 26 default).
    pub require_tls: bool,
    /// Fast-track: lookups also succeed in `enroll`, `manageable`, `available`, ... .
    pub fast_track: bool,
    /// Only allow lookups in the states where Ironic allows them.
    pub restrict_lookup: bool,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How the conductor talks to agents.
    pub agent: AgentClientOptions,
    /// How deploys poll the agent.
    pub deploy: DeployOptions,
    /// How cleaning picks and runs steps.
    pub clean: CleanOptions,
    /// A directory whose files are served at `GET /images/<name>` (Ironic's conductor image
    /// cache), with `Range` support.
    pub images_dir: Option<PathBuf>,
    /// `[agent]enable_bios_bootloader_install`, handed to agents at lookup: lets them run the
    /// image's GRUB for partition images.
    pub enable_bios_bootloader_install: bool,
    /// When the agent's logs are collected and where they are stored
    /// (`[agent]deploy_logs_*`).
    pub ramdisk_logs: crate::ramdisk_logs::RamdiskLogs,
    /// The API is served over HTTPS (`serve --tls-cert`): links say `https://`.
    pub https: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            heartbeat_timeout: 300,
            require_tls: true,
            fast_track: true,
            restrict_lookup: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            agent: AgentClientOptions::default(),
            deploy: DeployOptions::default(),
            clean: CleanOptions::default(),
            images_dir: None,
            enable_bios_bootloader_install: false,
            ramdisk_logs: Default::default(),
            https: false,
        }
    }
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The node store.
    pub store: SharedStore,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// The heartbeat-driven conductor.
    pub conductor: Conductor,
}

impl AppState {
    /// State for a server using `store` with `config`.
    pub fn new(store: SharedStore, config: ServerConfig) -> AppState {
        let conductor = Conductor::with_options(
            store.clone(),
            config.agent.clone(),
            config.deploy.clone(),
            config.clean.clone(),
            config.fast_track,
        )
        .with_ramdisk_logs(config.ramdisk_logs.clone());
        AppState {
            store,
            config: Arc::new(config),
            conductor,
        }
    }
}

/// The application: routes, version handling, body limit, request logging.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let v1 = Router::new()
        .route("/v1", get(root::v1))
        .route("/v1/", get(root::v1))
        .route("/v1/lookup", get(lookup::lookup))
        .route("/v1/heartbeat/{node_ident}", post(heartbeat::heartbeat))
        .route(
            "/v1/continue_inspection",
            post(inspection::continue_inspection),
        )
        .layer(middleware::from_fn(version::layer));
    let mut app = Router::new().route("/", get(root::root)).merge(v1);
    if let Some(dir) = &state.config.images_dir {
        let files = ServeDir::new(dir)
            .with_buf_chunk_size(IMAGE_CHUNK_BYTES)
            .append_index_html_on_directories(false);
        app = app.nest_service("/images", files);
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves `router(state)` on `listener` (a [`TcpListener`](tokio::net::TcpListener), or a
/// [`TlsListener`](crate::tls::TlsListener) for HTTPS) until `shutdown` completes.
pub async fn serve<L, F>(listener: L, state: AppState, shutdown: F) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    F: Future<Output = ()> + Send + 'static,
{
    // `tap_io` gives every listener the `ConnectInfo<SocketAddr>` the request log reads.
    axum::serve(
        listener.tap_io(|_| {}),
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The `http(s)://host[:port]` the client used, for links (Ironic's `host_url`).
pub fn base_url(config: &ServerConfig, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"', '\\']))
        .unwrap_or("localhost:6385");
    let scheme = if config.https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The resource could not be found.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method specified is not allowed for this resource.",
    )
}

async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The query may carry an agent token; log the path only.
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let version = request
        .headers()
        .get(version::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        api_version = %version,
        %peer,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_has_the_scheme_served_and_the_host_asked_for() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "192.0.2.1:6385".parse().unwrap());
        let mut config = ServerConfig::default();
        assert_eq!(base_url(&config, &headers), "http://192.0.2.1:6385");
        config.https = true;
        assert_eq!(base_url(&config, &headers), "https://192.0.2.1:6385");
        assert_eq!(
            base_url(&config, &HeaderMap::new()),
            "https://localhost:6385"
        );
    }
}
