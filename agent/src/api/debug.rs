//! Read-only field-debugging routes under `/v1/debug/` (not in IPA), behind the agent token
//! like `/v1/commands` (checked for every route by the router's token layer, before these
//! handlers run): what an engineer looking at a failed deploy over the agent's port
//! wants first, without collecting a whole log bundle.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/debug` | the list of routes |
//! | `GET /v1/debug/logs?lines=N` | the last N lines of the agent's own log (text, default 200, at most 10 000) |
//! | `GET /v1/debug/progress` | the running command (as in `/v1/commands`) and its progress snapshot |
//! | `GET /v1/debug/install-device` | the device a deploy would write now and why: root device hints, the RAID root volume, the allow-list, or the error naming every disk |
//!
//! Nothing here changes state; the install-device answer runs the same selection as a
//! deploy (read-only: the disk guard is only asked whether it *would* allow the device).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, query_map};
use crate::commands::{CommandError, CommandStatus};
use crate::image::progress::ProgressSnapshot;

/// Lines of log returned when `lines` is not given.
const DEFAULT_LINES: usize = 200;
/// Most lines one request returns.
const MAX_LINES: usize = 10_000;

/// `GET /v1/debug`.
pub async fn index() -> Json<Value> {
    Json(json!({
        "routes": [
            {"path": "/v1/debug/logs", "query": "lines=N", "what": "the tail of the agent's log (text/plain)"},
            {"path": "/v1/debug/progress", "what": "the running command and its progress"},
            {"path": "/v1/debug/install-device", "what": "the device a deploy would write, and why"},
        ]
    }))
}

/// The number of lines asked for.
fn lines_param(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("lines") {
        None => Ok(DEFAULT_LINES),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LINES).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "lines must be a number from 1 to {MAX_LINES}, not {v:?}"
            ))),
        },
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> &str {
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    let start = trimmed
        .rmatch_indices('\n')
        .nth(n.saturating_sub(1))
        .map(|(i, _)| i + 1)
        .unwrap_or(0);
    &text[start..]
}

/// `GET /v1/debug/logs?lines=N`.
pub async fn logs(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let n = lines_param(&query_map(q))?;
    let text = String::from_utf8_lossy(&s.executor.context().logs.contents()).into_owned();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        tail(&text, n).to_string(),
    )
        .into_response())
}

/// `GET /v1/debug/progress`.
#[derive(Debug, Serialize)]
struct ProgressView {
    /// The running command, if any.
    command: Option<crate::commands::CommandResult>,
    /// Its progress, when it reports one (image writes).
    progress: Option<ProgressSnapshot>,
}

/// `GET /v1/debug/progress`.
pub async fn progress(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let command = s
        .executor
        .list()
        .into_iter()
        .rfind(|c| c.command_status == CommandStatus::Running);
    let progress = command
        .as_ref()
        .and_then(|_| s.executor.context().progress().map(|p| p.snapshot()));
    serde_json::to_value(ProgressView { command, progress })
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /v1/debug/install-device`.
pub async fn install_device(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let ctx = s.executor.context().clone();
    let view = tokio::task::spawn_blocking(move || {
        let node = ctx.node();
        let hints = node.as_ref().and_then(|n| {
            n.instance_info
                .get("root_device")
                .or_else(|| n.properties.get("root_device"))
                .cloned()
        });
        let chosen = crate::commands::deployer(&ctx).install_device();
        let (device, error) = match chosen {
            Ok(d) => (Some(d.display().to_string()), Value::Null),
            Err(e) => (
                None,
                serde_json::to_value(CommandError::from(e.to_ipa_error())).unwrap_or(Value::Null),
            ),
        };
        json!({
            "device": device,
            "error": error,
            "why": {
                "root_device_hints": hints,
                "raid_root_volume": ctx.state.raid.root().map(|p| p.display().to_string()),
                "allow_devices": ctx.config.allow_devices,
                "node_known": node.is_some(),
            },
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("é\nü\n", 1), "ü\n");
    }

    #[test]
    fn lines_are_bounded() {
        let q = |v: &str| HashMap::from([("lines".to_string(), v.to_string())]);
        assert_eq!(lines_param(&HashMap::new()).ok(), Some(DEFAULT_LINES));
        assert_eq!(lines_param(&q("5")).ok(), Some(5));
        for bad in ["0", "-1", "x", "10001", ""] {
            assert!(lines_param(&q(bad)).is_err(), "{bad}");
        }
    }
}
