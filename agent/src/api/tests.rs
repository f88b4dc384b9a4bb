//! In-process tests of the API + executor contract (real router, real executor, test commands).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use hardware_managers::{Chain, HardwareManager, SupportLevel};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ApiState, router};
use crate::commands::{CommandError, CommandOutput, Executor, Mode, Registry};
use crate::config::{Config, Flags, KernelParams};
use crate::context::AgentContext;
use crate::logbuf::LogBuffer;
use crate::power::RecordingPower;

/// The token the test agent holds.
pub(super) const TOKEN: &str = "test-token-0123456789abcdef0123456789";

struct Minimal;

impl HardwareManager for Minimal {
    fn class_name(&self) -> String {
        "Minimal".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
}

/// The real router over a real executor with the test commands; the agent holds [`TOKEN`].
pub(super) fn app(dir: &std::path::Path) -> anyhow::Result<axum::Router> {
    app_with_cmdline(dir, &format!("ipa-agent-token={TOKEN}"))
}

fn app_with_cmdline(dir: &std::path::Path, cmdline: &str) -> anyhow::Result<axum::Router> {
    let ctx = context(dir, &[], cmdline, 1024)?;
    let mut registry = crate::commands::registry();
    add_test_commands(&mut registry);
    Ok(router_over(registry, ctx))
}

/// A context for in-process tests: the agent's `flags` (after the program name) and kernel
/// command line `cmdline`, the [`Minimal`] hardware manager, power actions recorded into
/// `dir/power`, and a log buffer of `log_bytes`.
pub(super) fn context(
    dir: &std::path::Path,
    flags: &[&str],
    cmdline: &str,
    log_bytes: usize,
) -> anyhow::Result<Arc<AgentContext>> {
    context_with(dir, flags, cmdline, log_bytes, Arc::new(Minimal))
}

/// [`context`] with `manager` instead of [`Minimal`].
fn context_with(
    dir: &std::path::Path,
    flags: &[&str],
    cmdline: &str,
    log_bytes: usize,
    manager: Arc<dyn HardwareManager>,
) -> anyhow::Result<Arc<AgentContext>> {
    let flags = Flags::parse_from(std::iter::once("ironic-agent").chain(flags.iter().copied()));
    let config = Config::from_parts(&flags, KernelParams::parse(cmdline))?;
    let chain = Chain::new(vec![manager])?;
    let power = Arc::new(RecordingPower::new(&dir.join("power")));
    Ok(Arc::new(AgentContext::new(
        config,
        chain,
        power,
        LogBuffer::new(log_bytes),
    )))
}

/// The real router (plain HTTP) over a real executor with `registry` and `ctx`.
pub(super) fn router_over(registry: Registry, ctx: Arc<AgentContext>) -> axum::Router {
    let executor = Arc::new(Executor::new(registry, ctx));
    router(ApiState {
        executor,
        scheme: "http",
    })
}

fn add_test_commands(r: &mut Registry) {
    r.register("test", "echo", Mode::Sync, None, |_, p| {
        Ok(CommandOutput::Json(json!({"echoed": p.get("x")})))
    });
    r.register("test", "text", Mode::Async, None, |_, _| {
        Ok(CommandOutput::Text("done".into()))
    });
    r.register("test", "slow", Mode::Async, None, |_, p| {
        let ms = p.get("ms").and_then(Value::as_u64).unwrap_or(300);
        std::thread::sleep(Duration::from_millis(ms));
        Ok(CommandOutput::Json(Value::Null))
    });
    r.register("test", "progress", Mode::Async, None, |ctx, _| {
        let p = ctx.start_progress();
        p.set_total(1000);
        p.add_downloaded(400);
        p.add_written(300);
        std::thread::sleep(Duration::from_millis(400));
        Ok(CommandOutput::Json(json!({"done": true})))
    });
    r.register("test", "log", Mode::Sync, None, |ctx, p| {
        let line = p.get("line").and_then(Value::as_str).unwrap_or_default();
        ctx.logs.push(format!("{line}\n").as_bytes());
        Ok(CommandOutput::Json(Value::Null))
    });
    r.register("test", "fail", Mode::Async, None, |_, _| {
        Err(CommandError::execution("async plain fail"))
    });
    r.register(
        "test",
        "boom",
        Mode::Async,
        None,
        |_, _| -> Result<CommandOutput, CommandError> { panic!("handler bug") },
    );
}

/// `METHOD uri` with `body` through `app`; the status and the JSON answer (`null` if none).
pub(super) async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_string()))?;
    let resp = app.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn post_uri(extra: &str) -> String {
    format!("/v1/commands/?agent_token={TOKEN}{extra}")
}

#[tokio::test]
async fn sync_async_and_text_results() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let (s, v) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"test.echo","params":{"x":42}}"#,
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["command_name"], "echo");
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(v["command_result"], json!({"echoed": 42}));

    let (_, v) = call(
        &app,
        "POST",
        &post_uri("&wait=TRUE"),
        r#"{"name":"test.text","params":{}}"#,
    )
    .await?;
    assert_eq!(v["command_result"], json!({"result": "text: done"}));

    let (_, v) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"test.fail","params":{}}"#,
    )
    .await?;
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(v["command_error"]["type"], "CommandExecutionError");
    assert_eq!(v["command_error"]["details"], "async plain fail");
    Ok(())
}

#[tokio::test]
async fn one_command_at_a_time() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let (s, v) = call(
        &app,
        "POST",
        &post_uri("&wait=false"),
        r#"{"name":"test.slow","params":{"ms":400}}"#,
    )
    .await?;
    assert_eq!(
        (s, v["command_status"].clone()),
        (StatusCode::OK, json!("RUNNING"))
    );
    let id = v["id"].as_str().unwrap_or_default().to_string();

    for body in [
        r#"{"name":"test.echo","params":{}}"#,
        r#"{"name":"test.slow","params":{}}"#,
    ] {
        let (s, v) = call(&app, "POST", &post_uri(""), body).await?;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(
            v,
            json!({"faultcode": "Client", "faultstring": "Agent is busy: executing command slow"})
        );
    }
    // Nothing was stored for the refused commands.
    let (_, list) = call(&app, "GET", &post_uri(""), "").await?;
    assert_eq!(list["commands"].as_array().map(Vec::len), Some(1));

    let (_, v) = call(
        &app,
        "GET",
        &format!("/v1/commands/{id}?agent_token={TOKEN}&wait=true"),
        "",
    )
    .await?;
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(v["command_result"], Value::Null);
    let (s, _) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"test.echo","params":{}}"#,
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_crashing_handler_fails_the_command_not_the_agent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let (_, v) = call(
        &app,
        "POST",
        &post_uri("&wait=false"),
        r#"{"name":"test.boom","params":{}}"#,
    )
    .await?;
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let (_, v) = call(
        &app,
        "GET",
        &format!("/v1/commands/{id}?agent_token={TOKEN}&wait=true"),
        "",
    )
    .await?;
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(v["command_error"]["type"], "CommandExecutionError");
    let (s, list) = call(&app, "GET", &post_uri(""), "").await?;
    assert_eq!(s, StatusCode::OK, "listing must keep working after a crash");
    assert_eq!(list["commands"][0]["command_status"], "FAILED");
    let (s, _) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"test.echo","params":{}}"#,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "the agent is not stuck busy");
    Ok(())
}

#[tokio::test]
async fn version_mismatch_and_step_shapes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let (_, v) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"clean.get_clean_steps","params":{"node":{"uuid":"n"},"ports":[]}}"#,
    )
    .await?;
    assert_eq!(
        v["command_result"],
        json!({"clean_steps": {"Minimal": []}, "hardware_manager_version": {"Minimal": "1.0"}})
    );

    let body = json!({"name": "clean.execute_clean_step", "params": {
        "step": {"step": "erase_devices", "interface": "deploy", "priority": 10},
        "node": {"uuid": "n"}, "ports": [], "clean_version": {"Minimal": "0.9"}}});
    let (_, v) = call(&app, "POST", &post_uri("&wait=true"), &body.to_string()).await?;
    assert_eq!(v["command_status"], "CLEAN_VERSION_MISMATCH");
    assert_eq!(v["command_error"]["type"], "VersionMismatch");
    assert_eq!(v["command_error"]["code"], 409);
    assert_eq!(
        v["command_error"]["details"],
        "Current versions: {'Minimal': '1.0'}, versions used by ironic: {'Minimal': '0.9'}"
    );

    // Same versions: the step is dispatched; nobody implements it.
    let body = json!({"name": "deploy.execute_deploy_step", "params": {
        "step": {"step": "nothing_here", "interface": "deploy", "priority": 0},
        "node": {"uuid": "n"}, "ports": [], "deploy_version": {"Minimal": "1.0"}}});
    let (_, v) = call(&app, "POST", &post_uri("&wait=true"), &body.to_string()).await?;
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(v["command_error"]["type"], "HardwareManagerMethodNotFound");

    let body = json!({"name": "service.execute_service_step", "params": {"step": {"interface": "deploy"}}});
    let (_, v) = call(&app, "POST", &post_uri("&wait=true"), &body.to_string()).await?;
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(v["command_name"], "execute_service_step");
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let big = format!(
        r#"{{"name":"test.echo","params":{{"x":"{}"}}}}"#,
        "a".repeat(super::MAX_BODY_BYTES)
    );
    let (s, v) = call(&app, "POST", &post_uri(""), &big).await?;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["faultcode"], "Client");
    Ok(())
}

#[tokio::test]
async fn running_commands_show_progress() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let (_, v) = call(
        &app,
        "POST",
        &post_uri(""),
        r#"{"name":"test.progress","params":{}}"#,
    )
    .await?;
    let id = v["id"].as_str().unwrap_or_default().to_string();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, list) = call(&app, "GET", &post_uri(""), "").await?;
    let p = &list["commands"][0]["command_result"]["progress"];
    assert_eq!(list["commands"][0]["command_status"], "RUNNING");
    assert_eq!(
        (p["bytes_written"].clone(), p["total_bytes"].clone()),
        (json!(300), json!(1000))
    );
    let (_, v) = call(
        &app,
        "GET",
        &format!("/v1/commands/{id}?agent_token={TOKEN}&wait=true"),
        "",
    )
    .await?;
    assert_eq!(
        v["command_result"],
        json!({"done": true}),
        "the final result replaces the progress"
    );
    Ok(())
}

async fn get_text(app: &axum::Router, uri: &str) -> anyhow::Result<(StatusCode, String)> {
    let req = Request::builder().uri(uri).body(Body::empty())?;
    let resp = app.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[tokio::test]
async fn debug_routes_need_the_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    for route in [
        "/v1/debug",
        "/v1/debug/logs",
        "/v1/debug/progress",
        "/v1/debug/install-device",
    ] {
        let (s, _) = call(&app, "GET", route, "").await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{route}");
        let (s, _) = call(&app, "GET", &format!("{route}?agent_token=wrong"), "").await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{route}");
        let (s, _) = call(&app, "POST", &format!("{route}?agent_token={TOKEN}"), "{}").await?;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{route} is read-only");
    }
    let (s, v) = call(&app, "GET", &format!("/v1/debug?agent_token={TOKEN}"), "").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["routes"].as_array().map(Vec::len), Some(3));
    Ok(())
}

#[tokio::test]
async fn debug_logs_tail_the_agents_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    for i in 0..5 {
        let body = format!(r#"{{"name":"test.log","params":{{"line":"line {i}"}}}}"#);
        call(&app, "POST", &post_uri(""), &body).await?;
    }
    let (s, text) = get_text(&app, &format!("/v1/debug/logs?agent_token={TOKEN}&lines=2")).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(text, "line 3\nline 4\n");
    let (s, v) = call(
        &app,
        "GET",
        &format!("/v1/debug/logs?agent_token={TOKEN}&lines=zero"),
        "",
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["faultcode"], "Client");
    Ok(())
}

#[tokio::test]
async fn debug_progress_and_install_device() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let uri = format!("/v1/debug/progress?agent_token={TOKEN}");
    let (_, idle) = call(&app, "GET", &uri, "").await?;
    assert_eq!(idle, json!({"command": null, "progress": null}));
    call(
        &app,
        "POST",
        &post_uri(""),
        r#"{"name":"test.progress","params":{}}"#,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, busy) = call(&app, "GET", &uri, "").await?;
    assert_eq!(busy["command"]["command_name"], "progress");
    assert_eq!(busy["command"]["command_status"], "RUNNING");
    assert_eq!(busy["progress"]["total_bytes"], 1000);
    // No manager here can pick a device: the answer says so instead of failing.
    let (s, v) = call(
        &app,
        "GET",
        &format!("/v1/debug/install-device?agent_token={TOKEN}"),
        "",
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["device"], Value::Null);
    assert!(v["error"]["type"].is_string(), "{v}");
    assert_eq!(v["why"]["node_known"], false);
    Ok(())
}

// ---- security: the token, malformed input ---------------------------------------------------

const UNAUTHORIZED: &str =
    r#"{"faultcode":"Client","faultstring":"401 Unauthorized: Token invalid."}"#;

/// A request with raw `body` bytes and extra `headers`; the status and the raw answer.
async fn raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, String)> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body))?).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Every route behind the token: (method, path without query).
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/v1/commands"),
    ("GET", "/v1/commands/"),
    ("GET", "/commands"),
    ("GET", "/commands/"),
    ("GET", "/v1/commands/some-id"),
    ("GET", "/commands/some-id"),
    ("POST", "/v1/commands"),
    ("POST", "/v1/commands/"),
    ("POST", "/commands"),
    ("POST", "/commands/"),
    ("GET", "/v1/debug"),
    ("GET", "/v1/debug/"),
    ("GET", "/v1/debug/logs"),
    ("GET", "/v1/debug/progress"),
    ("GET", "/v1/debug/install-device"),
];

/// The token with its last character changed (same length).
fn same_length_wrong() -> String {
    let mut t = TOKEN.to_string();
    let last = t.pop().map_or('x', |c| if c == 'x' { 'y' } else { 'x' });
    t.push(last);
    t
}

#[tokio::test]
async fn every_protected_route_needs_the_exact_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let wrong = same_length_wrong();
    let shorter = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let upper = TOKEN.to_ascii_uppercase();
    let nul = format!("{TOKEN}%00");
    // (query, extra headers): none of these is the token as IPA takes it.
    let refused: Vec<(String, Vec<(&str, &str)>)> = vec![
        (String::new(), vec![]),
        ("?agent_token=".into(), vec![]),
        ("?agent_token".into(), vec![]),
        (format!("?agent_token={wrong}"), vec![]),
        (format!("?agent_token={shorter}"), vec![]),
        (format!("?agent_token={longer}"), vec![]),
        (format!("?agent_token={upper}"), vec![]),
        (format!("?agent_token={nul}"), vec![]),
        ("?agent_token=test".into(), vec![]),
        (format!("?token={TOKEN}"), vec![]),
        (format!("?Agent_Token={TOKEN}"), vec![]),
        // Only the query parameter counts, never a header.
        (
            String::new(),
            vec![("x-agent-token", TOKEN), ("authorization", TOKEN)],
        ),
    ];
    let body = br#"{"name":"test.echo","params":{}}"#;
    for (method, path) in PROTECTED {
        for (query, headers) in &refused {
            let (s, text) = raw(
                &app,
                method,
                &format!("{path}{query}"),
                headers,
                body.to_vec(),
            )
            .await?;
            assert_eq!(
                (s, text.as_str()),
                (StatusCode::UNAUTHORIZED, UNAUTHORIZED),
                "{method} {path}{query} {headers:?}"
            );
        }
        let (s, text) = raw(
            &app,
            method,
            &format!("{path}?agent_token={TOKEN}&wait=true"),
            &[],
            body.to_vec(),
        )
        .await?;
        assert_ne!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {text}");
        assert!(
            s.is_success() || s == StatusCode::NOT_FOUND,
            "{method} {path}: {s} {text}"
        );
    }
    // Only the four accepted POSTs ran; every refused one changed nothing.
    let (_, list) = call(&app, "GET", &post_uri(""), "").await?;
    assert_eq!(list["commands"].as_array().map(Vec::len), Some(4), "{list}");
    Ok(())
}

#[tokio::test]
async fn an_agent_without_a_token_refuses_everything() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // An empty pre-generated token is no token.
    let app = app_with_cmdline(dir.path(), "ipa-agent-token=")?;
    for (method, path) in PROTECTED {
        for query in [
            "",
            "?agent_token=",
            "?agent_token=anything-at-all-0123456789abcdef",
        ] {
            let (s, text) =
                raw(&app, method, &format!("{path}{query}"), &[], b"{}".to_vec()).await?;
            assert_eq!(
                (s, text.as_str()),
                (StatusCode::UNAUTHORIZED, UNAUTHORIZED),
                "{method} {path}{query}"
            );
        }
    }
    // The open routes stay open.
    for path in ["/", "/v1", "/v1/", "/v1/status", "/status"] {
        let (s, _) = raw(&app, "GET", path, &[], Vec::new()).await?;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn the_token_is_checked_before_the_body_is_read() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    // A body over the limit is never buffered without the token: 401, not 413.
    let (s, _) = raw(
        &app,
        "POST",
        "/v1/commands/",
        &[("content-length", &(super::MAX_BODY_BYTES + 1).to_string())],
        Vec::new(),
    )
    .await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, text) = raw(
        &app,
        "POST",
        &post_uri(""),
        &[("content-length", &(super::MAX_BODY_BYTES + 1).to_string())],
        Vec::new(),
    )
    .await?;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = serde_json::from_str(&text)?;
    assert_too_large_fault(&v);
    Ok(())
}

/// Asserts that `v` is the client fault of a body over the size limit (413).
pub(super) fn assert_too_large_fault(v: &Value) {
    assert_eq!(v["faultcode"], "Client");
    assert!(
        v["faultstring"]
            .as_str()
            .is_some_and(|f| f.starts_with("413 Request Entity Too Large")),
        "{v}"
    );
}

/// An IPA fault: exactly `faultcode` and `faultstring`; returns the faultstring.
fn fault(status: StatusCode, text: &str, want: StatusCode) -> anyhow::Result<String> {
    anyhow::ensure!(status == want, "{status} (want {want}): {text}");
    let v: Value = serde_json::from_str(text)?;
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("not an object: {text}"))?;
    anyhow::ensure!(obj.len() == 2, "{text}");
    anyhow::ensure!(v["faultcode"] == "Client", "{text}");
    v["faultstring"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no faultstring: {text}"))
}

#[tokio::test]
async fn malformed_bodies_get_ipa_errors_and_change_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let decode = "400 Bad Request: Failed to decode JSON object";
    let shape = "400 Bad Request: Missing or invalid name or params";
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        // Not JSON, not UTF-8, not complete.
        (Vec::new(), StatusCode::BAD_REQUEST, decode),
        (b"not json".to_vec(), StatusCode::BAD_REQUEST, decode),
        (b"\xff\xfe{}".to_vec(), StatusCode::BAD_REQUEST, decode),
        (
            b"{\"name\":\"test.echo\",\"params\":{\"x\":\"\xff\"}}".to_vec(),
            StatusCode::BAD_REQUEST,
            decode,
        ),
        (
            br#"{"name":"test.echo","params":{"x":"\ud800"}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            decode,
        ),
        (
            br#"{"name":"test.echo","params":{}} trailing"#.to_vec(),
            StatusCode::BAD_REQUEST,
            decode,
        ),
        (
            br#"{"name":"test.echo","params":{"#.to_vec(),
            StatusCode::BAD_REQUEST,
            decode,
        ),
        // Numbers beyond f64.
        (
            br#"{"name":"test.echo","params":{"x":1e999}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            decode,
        ),
        (
            br#"{"name":"test.echo","params":{"x":-1e999}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            decode,
        ),
        // Nesting past serde_json's recursion limit (128), at the top and inside params.
        (
            deep(100_000).into_bytes(),
            StatusCode::BAD_REQUEST,
            "recursion limit exceeded",
        ),
        (
            format!(
                r#"{{"name":"test.echo","params":{{"x":{}}}}}"#,
                deep(100_000)
            )
            .into_bytes(),
            StatusCode::BAD_REQUEST,
            "recursion limit exceeded",
        ),
        // JSON, but not {"name": str, "params": object}.
        (b"[]".to_vec(), StatusCode::BAD_REQUEST, shape),
        (b"42".to_vec(), StatusCode::BAD_REQUEST, shape),
        (b"\"test.echo\"".to_vec(), StatusCode::BAD_REQUEST, shape),
        (b"null".to_vec(), StatusCode::BAD_REQUEST, shape),
        (
            br#"{"name":"test.echo"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            shape,
        ),
        (br#"{"params":{}}"#.to_vec(), StatusCode::BAD_REQUEST, shape),
        (
            br#"{"name":"test.echo","params":[]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            shape,
        ),
        (
            br#"{"name":"test.echo","params":"x=1"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            shape,
        ),
        (
            br#"{"name":"test.echo","params":null}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            shape,
        ),
        (
            br#"{"name":42,"params":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            shape,
        ),
        (
            br#"{"name":null,"params":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            shape,
        ),
        // Names that resolve to nothing.
        (
            br#"{"name":"nodot","params":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "Invalid command: Command name must be of the form <extension>.<name>",
        ),
        (
            br#"{"name":"","params":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "Invalid command: Command name must be of the form <extension>.<name>",
        ),
        (
            br#"{"name":"nope.x","params":{}}"#.to_vec(),
            StatusCode::NOT_FOUND,
            "Not found: Extension with id nope not found.",
        ),
        (
            br#"{"name":"test.nope","params":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "Invalid command: Unknown command: nope",
        ),
    ];
    for (body, want, needle) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let (s, text) = raw(&app, "POST", &post_uri("&wait=true"), &[], body).await?;
        let f = fault(s, &text, want).map_err(|e| e.context(shown.clone()))?;
        assert!(f.contains(needle), "{shown}: {f}");
    }
    // Odd names: an IPA error, never a panic or a success.
    let long = "x".repeat(100_000);
    for name in [
        ".",
        "..",
        "test.",
        ".echo",
        "a.b.c",
        "test.echo\u{0}",
        "tést.échø",
        long.as_str(),
    ] {
        let body = json!({"name": name, "params": {}}).to_string();
        let (s, text) = raw(
            &app,
            "POST",
            &post_uri("&wait=true"),
            &[],
            body.into_bytes(),
        )
        .await?;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND,
            "{name:.20}: {s} {text:.200}"
        );
        fault(s, &text, s)?;
    }
    // Command ids that are not ids.
    for id in ["%FF", "..%2F..%2Fetc", &"9".repeat(10_000)] {
        let (s, text) = raw(
            &app,
            "GET",
            &format!("/v1/commands/{id}?agent_token={TOKEN}"),
            &[],
            Vec::new(),
        )
        .await?;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND,
            "{id:.20}: {s} {text:.200}"
        );
        fault(s, &text, s)?;
    }
    // Nothing was stored, and the agent still works.
    let (_, list) = call(&app, "GET", &post_uri(""), "").await?;
    assert_eq!(list["commands"], json!([]));
    // Large but representable numbers are fine.
    let (s, v) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"test.echo","params":{"x":123456789012345678901234567890}}"#,
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["command_result"]["echoed"], json!(1.2345678901234568e29));
    Ok(())
}

#[test]
fn the_request_log_never_shows_the_token() {
    assert_eq!(
        super::redact_query(&format!("agent_token={TOKEN}&wait=true")),
        "agent_token=***&wait=true"
    );
    // However the name is spelt on the wire, the value the token check would read is hidden.
    for q in [
        format!("wait=true&agent%5Ftoken={TOKEN}"),
        format!("agent_token={TOKEN}&agent_token={TOKEN}"),
        format!("agent_token={}", TOKEN.replace('-', "%2D")),
    ] {
        let shown = super::redact_query(&q);
        assert!(!shown.contains("0123456789abcdef"), "{q} -> {shown}");
    }
}

/// A manager whose step `echo_args` returns its arguments and whose step `fail_download`
/// fails naming a signed URL, as a plug-in or an image step may.
struct Echo;

/// What [`Echo`]'s steps echo.
const SECRET_CONTENT: &str = "c2VjcmV0LWZpbGUtY29udGVudA==";
const SIGNED_URL: &str = "https://user:pw@swift.example:8080/v1/AUTH_x/images/img.qcow2?temp_url_sig=5ec7e75ig&temp_url_expires=1";
/// A URL the step found by itself (not among the parameters).
const MIRROR_URL: &str = "https://user:pw@mirror.example/images/img.qcow2?temp_url_sig=5ec7e75ig";

impl HardwareManager for Echo {
    fn class_name(&self) -> String {
        "Echo".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
    fn execute_step(
        &self,
        name: &str,
        _: &hardware_managers::StepContext,
        args: &serde_json::Map<String, Value>,
    ) -> hardware_managers::HardwareResult<Value> {
        match name {
            "echo_args" => Ok(Value::Object(args.clone())),
            _ => Err(hardware_managers::HardwareError::ipa(
                hardware_managers::IpaClass::ImageDownloadError,
                format!("Download of {MIRROR_URL} failed; files were {args:?}"),
            )),
        }
    }
}

#[tokio::test]
async fn the_command_history_keeps_no_step_arguments_or_urls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ctx = context_with(
        dir.path(),
        &[],
        &format!("ipa-agent-token={TOKEN}"),
        1024,
        Arc::new(Echo),
    )?;
    let app = router_over(crate::commands::registry(), ctx.clone());
    let args = json!({"files": [{"path": "/etc/x", "content": SECRET_CONTENT}],
        "image_info": {"id": "i", "urls": [SIGNED_URL]}});
    for step in ["echo_args", "fail_download"] {
        let body = json!({"name": "deploy.execute_deploy_step", "params": {
            "step": {"step": step, "interface": "deploy", "priority": 80, "args": args},
            "node": {"uuid": "n", "instance_info": {"image_source": SIGNED_URL}},
            "ports": []}});
        let (s, v) = call(&app, "POST", &post_uri("&wait=true"), &body.to_string()).await?;
        assert_eq!(s, StatusCode::OK);
        // The wire keeps what IPA sends: the step with its arguments, the error with the URL.
        let wire = v.to_string();
        assert!(wire.contains(SECRET_CONTENT), "{wire}");
        assert!(wire.contains("temp_url_sig=5ec7e75ig"), "{wire}");
    }
    let (_, v) = call(
        &app,
        "POST",
        &post_uri("&wait=true"),
        r#"{"name":"poll.get_node_info","params":{}}"#,
    )
    .await?;
    assert!(v.to_string().contains("temp_url_sig"), "{v}");

    let files = crate::commands::log::bundle_files(&ctx);
    let commands = files
        .iter()
        .find(|(n, _)| n == "commands.json")
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let history: Value = serde_json::from_str(&commands)?;
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{commands}");
    for secret in [
        SECRET_CONTENT,
        "temp_url_sig",
        "5ec7e75ig",
        "user:pw",
        "/etc/x",
        "img.qcow2",
    ] {
        assert!(!commands.contains(secret), "{secret} in {commands}");
    }
    // What ran and how it ended is still there.
    assert_eq!(
        history[0]["command_result"]["deploy_step"]["step"],
        "echo_args"
    );
    assert_eq!(history[1]["command_error"]["type"], "ImageDownloadError");
    assert!(
        history[1]["command_error"]["details"]
            .as_str()
            .is_some_and(|d| d.starts_with("Download of https://mirror.example/*** failed")),
        "{commands}"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_disk_labels_are_refused_before_anything_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ctx = context(dir.path(), &[], &format!("ipa-agent-token={TOKEN}"), 1024)?;
    let app = router_over(crate::commands::registry(), ctx.clone());
    let image_info = |label: Value| {
        json!({"id": "i", "urls": ["http://127.0.0.1:9/img"], "os_hash_algo": "sha256",
            "os_hash_value": "ab".repeat(32), "image_type": "partition", "root_mb": 32,
            "disk_label": label})
    };
    let prepare = |info: Value| {
        json!({"name": "standby.prepare_image", "params": {"image_info": info}}).to_string()
    };
    let node = |caps: Value| -> anyhow::Result<hardware_managers::Node> {
        Ok(serde_json::from_value(
            json!({"uuid": "n", "instance_info": {"capabilities": caps}}),
        )?)
    };
    // IPA (and Ironic's capability check) know exactly `msdos` and `gpt`, case-sensitively.
    let refused = [
        (json!({}), json!("dos")),
        (json!({}), json!("GPT")),
        (json!({}), json!("mbr")),
        (json!({"disk_label": "dos"}), json!("gpt")),
        (json!("boot_mode:bios,disk_label:GPT"), Value::Null),
    ];
    for (caps, label) in refused {
        ctx.set_node(node(caps.clone())?);
        let (s, v) = call(
            &app,
            "POST",
            &post_uri("&wait=true"),
            &prepare(image_info(label.clone())),
        )
        .await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{caps} {label}: {v}");
        let text = v["faultstring"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("Invalid command parameters: ") && text.contains("disk_label"),
            "{caps} {label}: {v}"
        );
    }
    // Nothing ran: no command was recorded.
    let (_, v) = call(
        &app,
        "GET",
        &format!("/v1/commands/?agent_token={TOKEN}"),
        "",
    )
    .await?;
    assert_eq!(v["commands"], json!([]), "{v}");
    assert!(ctx.history.entries().is_empty());

    // The two known labels (and none at all) pass the check; the command then runs (and fails
    // here for want of an install device).
    for (caps, label) in [
        (json!({"disk_label": "msdos"}), json!("gpt")),
        (json!("disk_label:gpt"), Value::Null),
        (json!({}), json!("")),
    ] {
        ctx.set_node(node(caps.clone())?);
        let (s, v) = call(
            &app,
            "POST",
            &post_uri("&wait=true"),
            &prepare(image_info(label.clone())),
        )
        .await?;
        assert_eq!(s, StatusCode::OK, "{caps} {label}: {v}");
        assert_ne!(
            v["command_error"]["type"], "InvalidCommandParamsError",
            "{v}"
        );
    }
    Ok(())
}
