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
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::BytesMut;
use hyper::body::Body as _;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tracing::info;

pub use self::error::ApiError;
use crate::commands::{Executor, Params};

/// Largest request body accepted, in bytes.
///
/// IPA bodies are small except for one case: `standby.prepare_image` (and the `write_image`
/// deploy step) may carry the config drive inline, gzipped and base64-encoded. Ironic caps the
/// config drive image at 64 MiB; a 64 MiB gzip stream that does not compress encodes to
/// 85.4 MiB of base64, and the node's own dict masks its copy (`"******"`), so one copy plus
/// the rest of the request fits in 128 MiB with room to spare. Anything larger is refused with
/// 413 before it is buffered (from `Content-Length`) or as soon as the limit is crossed
/// (chunked bodies).
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
///
/// Every route under `/v1/commands`, `/commands` and `/v1/debug` sits behind one token check
/// ([`require_token`]), which runs before the handler and before any body is read; only the
/// discovery documents and `/status` are open.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
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
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(root_doc))
        .route("/v1", get(v1_doc))
        .route("/v1/", get(v1_doc))
        .route("/v1/status", get(status))
        .route("/status", get(status))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(limit_head))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Size of the request head as sent: request line and header lines.
fn head_bytes(req: &Request) -> usize {
    let line =
        req.method().as_str().len() + req.uri().to_string().len() + " HTTP/1.1\r\n".len() + 1;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + ": \r\n".len())
        .fold(line, usize::saturating_add)
}

/// Refuses a request head over [`server::MAX_HEADER_BYTES`] with 431 and closes the
/// connection. (hyper's own bound, its read buffer, is not exact: a head somewhat larger can
/// parse when it arrives in one read.)
async fn limit_head(req: Request, next: Next) -> Response {
    if head_bytes(&req) > server::MAX_HEADER_BYTES {
        let mut resp = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "431 Request Header Fields Too Large: the request line and headers are larger \
                 than {} bytes",
                server::MAX_HEADER_BYTES
            ),
        )
        .into_response();
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return resp;
    }
    next.run(req).await
}

/// The token check in front of every protected route.
async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    match authorize(&s, &query_map(req.uri().query().map(String::from))) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
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

/// Logs method, path, query (with `agent_token` redacted), status, duration and client, as
/// IPA does.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(redact_query).unwrap_or_default();
    let client = client_ip(
        req.headers(),
        req.extensions().get::<ConnectInfo<std::net::SocketAddr>>(),
    );
    let start = Instant::now();
    let resp = next.run(req).await;
    info!(
        %method, %path, %query, status = resp.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1000.0, client = %client, "api request"
    );
    resp
}

/// The query string for the log: re-encoded from its decoded pairs, every `agent_token`
/// value (however its name was percent-encoded) replaced by `***`.
fn redact_query(raw: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if k == "agent_token" {
            out.append_pair(&k, "***");
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
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
/// constant time; only a difference in length returns early, which reveals nothing about the
/// token's bytes). Holding no token refuses everything, as IPA does.
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

async fn list_commands(State(s): State<ApiState>) -> Json<Value> {
    Json(json!({ "commands": s.executor.list() }))
}

async fn get_command(
    State(s): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    // A command id that is not UTF-8 (`%FF`) gets IPA's error shape, not axum's text.
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = query_map(q);
    Ok(Json(s.executor.get(&id, wants_wait(&q)).await?))
}

#[derive(Deserialize)]
struct CommandRequest {
    name: String,
    params: Params,
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "413 Request Entity Too Large: the request body is larger than {MAX_BODY_BYTES} bytes"
        ),
    )
}

/// Reads the body, refusing more than `limit` bytes: at once when `Content-Length` says so,
/// else as soon as the bytes received cross the limit.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = body;
    // Never trust the declared length for more than a modest first allocation.
    let mut buf = BytesMut::with_capacity(
        declared.map_or(0, |n| usize::try_from(n).unwrap_or(0).min(1 << 20)),
    );
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

async fn run_command(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let q = query_map(q);
    let bytes = read_body(&headers, body, MAX_BODY_BYTES).await?;
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
mod server_tests;
#[cfg(test)]
mod step_error_tests;
#[cfg(test)]
mod stop_tests;
#[cfg(test)]
mod tests;
