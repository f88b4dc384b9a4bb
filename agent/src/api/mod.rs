//! The agent's REST API (`/v1/commands/`, `/v1/status`, ...), IPA-compatible.
//!
//! The API only turns requests into executor calls (firecracker's API → action split); it never
//! touches the machine itself.

pub mod debug;
pub mod docs;
pub mod error;
pub mod server;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tracing::info;

pub use self::error::ApiError;
use crate::commands::{Executor, Params};

/// Largest request body accepted (node dicts can carry a config drive of up to 64 MiB base64).
pub const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The command executor (and through it the agent context).
    pub executor: Arc<Executor>,
    /// `http` or `https`, for the links in the discovery documents.
    pub scheme: &'static str,
}

/// Builds the router with IPA's routes, with and without the `/v1` prefix and trailing slash.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(root_doc))
        .route("/v1", get(v1_doc))
        .route("/v1/", get(v1_doc))
        .route("/v1/status", get(status))
        .route("/status", get(status))
        .route("/v1/commands", get(list_commands).post(run_command))
        .route("/v1/commands/", get(list_commands).post(run_command))
        .route("/commands", get(list_commands).post(run_command))
        .route("/commands/", get(list_commands).post(run_command))
        .route("/v1/commands/{id}", get(get_command))
        .route("/commands/{id}", get(get_command))
        .route("/v1/debug", get(debug::index))
        .route("/v1/debug/", get(debug::index))
        .route("/v1/debug/logs", get(debug::logs))
        .route("/v1/debug/progress", get(debug::progress))
        .route("/v1/debug/install-device", get(debug::install_device))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "404 Not Found: The requested URL was not found on the server. If you entered the URL \
         manually please check your spelling and try again.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "405 Method Not Allowed: The method is not allowed for the requested URL.",
    )
}

/// Logs method, path (never the query: it carries the token), status, duration and client.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let client = client_ip(
        req.headers(),
        req.extensions().get::<ConnectInfo<std::net::SocketAddr>>(),
    );
    let start = Instant::now();
    let resp = next.run(req).await;
    info!(
        %method, %path, status = resp.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1000.0, client = %client, "api request"
    );
    resp
}

fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<std::net::SocketAddr>>) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(xff) = header("x-forwarded-for")
        && let Some(first) = xff
            .split(',')
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    {
        return first.to_string();
    }
    if let Some(real) = header("x-real-ip").filter(|s| !s.is_empty()) {
        return real.to_string();
    }
    peer.map(|p| p.0.ip().to_string())
        .unwrap_or_else(|| "-".into())
}

fn root_url(state: &ApiState, headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{}://{host}", state.scheme)
}

async fn root_doc(State(s): State<ApiState>, headers: HeaderMap) -> Json<Value> {
    Json(docs::root(&root_url(&s, &headers)))
}

async fn v1_doc(State(s): State<ApiState>, headers: HeaderMap) -> Json<Value> {
    Json(docs::v1(&root_url(&s, &headers)))
}

async fn status(State(s): State<ApiState>) -> Json<Value> {
    Json(json!({
        "started_at": s.executor.context().started_at,
        "version": crate::AGENT_VERSION,
    }))
}

fn query_map(raw: Option<String>) -> HashMap<String, String> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The token check: the query parameter `agent_token` must equal the held token (compared in
/// constant time). Holding no token refuses everything, as IPA does.
fn authorize(state: &ApiState, query: &HashMap<String, String>) -> Result<(), ApiError> {
    let held = state
        .executor
        .context()
        .token()
        .ok_or_else(ApiError::unauthorized)?;
    let given = query
        .get("agent_token")
        .ok_or_else(ApiError::unauthorized)?;
    if bool::from(held.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn wants_wait(query: &HashMap<String, String>) -> bool {
    query
        .get("wait")
        .is_some_and(|w| w.eq_ignore_ascii_case("true"))
}

async fn list_commands(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &query_map(q))?;
    Ok(Json(json!({ "commands": s.executor.list() })))
}

async fn get_command(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = query_map(q);
    authorize(&s, &q)?;
    Ok(Json(s.executor.get(&id, wants_wait(&q)).await?))
}

#[derive(Deserialize)]
struct CommandRequest {
    name: String,
    params: Params,
}

async fn run_command(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let q = query_map(q);
    authorize(&s, &q)?;
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("413 Request Entity Too Large: body over {MAX_BODY_BYTES} bytes ({e})"),
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("Failed to decode JSON object: {e}")))?;
    let request: CommandRequest = serde_json::from_value(value)
        .map_err(|_| ApiError::bad_request("Missing or invalid name or params"))?;
    let result = s
        .executor
        .execute(&request.name, request.params, wants_wait(&q))
        .await?;
    Ok(Json(result))
}

#[cfg(test)]
mod tests;
