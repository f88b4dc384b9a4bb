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

const TOKEN: &str = "test-token-0123456789abcdef0123456789";

struct Minimal;

impl HardwareManager for Minimal {
    fn class_name(&self) -> String {
        "Minimal".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
}

fn app(dir: &std::path::Path) -> anyhow::Result<axum::Router> {
    let flags = Flags::parse_from(["ironic-agent"]);
    let config = Config::from_parts(
        &flags,
        KernelParams::parse(&format!("ipa-agent-token={TOKEN}")),
    )?;
    let chain = Chain::new(vec![Arc::new(Minimal) as Arc<dyn HardwareManager>])?;
    let power = Arc::new(RecordingPower::new(&dir.join("power")));
    let ctx = Arc::new(AgentContext::new(
        config,
        chain,
        power,
        LogBuffer::new(1024),
    ));
    let mut registry = crate::commands::registry();
    add_test_commands(&mut registry);
    let executor = Arc::new(Executor::new(registry, ctx));
    Ok(router(ApiState {
        executor,
        scheme: "http",
    }))
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

async fn call(
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
