//! In-process tests of `rescue.finalize_rescue` and `system.lockdown`: the router with the real
//! registry, and the real server loop over TCP on 127.0.0.1 (the answer is delivered, then the
//! port refuses connections). The network is always the recording one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::commands::rescue;
use crate::config::NetworkMode;
use crate::context::AgentContext;
use crate::logbuf::TeeWriter;
use crate::stop::StopReason;

const TOKEN: &str = "stop-token-0123456789abcdef0123456789";
const PASSWORD: &str = "Tr0ub4dor&3-rescue";

/// A context whose rescue root is `dir`, recording power and network actions into `dir`.
fn context(dir: &Path) -> anyhow::Result<Arc<AgentContext>> {
    let network = format!("record:{}", dir.join("network").display());
    let root = dir.display().to_string();
    let ctx = super::tests::context(
        dir,
        &["--network", &network, "--rescue-root", &root],
        &format!("ipa-agent-token={TOKEN}"),
        1 << 20,
    )?;
    assert_eq!(
        ctx.config.network,
        NetworkMode::Record(dir.join("network")),
        "tests never touch real NICs"
    );
    Ok(ctx)
}

fn app(ctx: &Arc<AgentContext>) -> axum::Router {
    super::tests::router_over(crate::commands::registry(), ctx.clone())
}

/// [`super::tests::call`] on `/v1/commands/` with this file's token.
async fn call(app: &axum::Router, method: &str, body: &str) -> anyhow::Result<(StatusCode, Value)> {
    let uri = format!("/v1/commands/?agent_token={TOKEN}");
    super::tests::call(app, method, &uri, body).await
}

#[tokio::test]
async fn finalize_rescue_writes_the_hash_and_stops_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ctx = context(dir.path())?;
    let app = app(&ctx);
    // Everything the API and the executor log on this thread goes to the agent's log buffer.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(TeeWriter::new(ctx.logs.clone()))
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Wrong types: 400 in IPA's shape, the value not echoed, nothing written, still serving.
    for bad in [
        json!({"rescue_password": 424242, "hashed": false}),
        json!({"rescue_password": PASSWORD, "hashed": "true"}),
        json!({"rescue_password": ""}),
    ] {
        let body = json!({"name": "rescue.finalize_rescue", "params": bad}).to_string();
        let (s, v) = call(&app, "POST", &body).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["faultcode"], "Client");
        let fault = v["faultstring"].as_str().unwrap_or_default();
        assert!(fault.starts_with("Invalid command parameters: "), "{fault}");
        assert!(
            !fault.contains("424242") && !fault.contains(PASSWORD),
            "{fault}"
        );
    }
    assert!(!rescue::password_path(dir.path()).exists());
    assert!(!rescue::is_rescued(dir.path()));
    assert_eq!(ctx.stop.requested(), None);

    // The plain password (an old conductor), hashed here with SHA-256 crypt. The handler is
    // called on this thread first, so that its own logging reaches the buffer (tracing binds a
    // log statement to the subscriber of the thread that reaches it first).
    let spec_ctx = ctx.clone();
    let plain = json!({"rescue_password": PASSWORD, "hashed": false});
    crate::commands::registry()
        .resolve("rescue.finalize_rescue")
        .map(|(_, spec)| (spec.handler)(&spec_ctx, plain.as_object().cloned().unwrap_or_default()))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = rescue::password_path(dir.path());
    let hash = std::fs::read_to_string(&path)?;
    assert!(hash.starts_with("$5$") && !hash.contains('\n'), "{hash}");
    assert!(rescue::verify_password(PASSWORD, &hash));
    assert!(!rescue::verify_password("wrong", &hash));
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777,
        0o600
    );
    assert!(rescue::is_rescued(dir.path()));
    assert_eq!(ctx.stop.requested(), Some(StopReason::Rescue));

    // Through the API, as Ironic sends it: a SHA-512 crypt hash, written verbatim.
    std::fs::remove_file(rescue::marker_path(dir.path()))?;
    let ironic_hash = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    let body = json!({"name": "rescue.finalize_rescue",
                      "params": {"rescue_password": ironic_hash, "hashed": true}})
    .to_string();
    let (s, v) = call(&app, "POST", &body).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["command_name"], "finalize_rescue");
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(v["command_result"], Value::Null);
    assert_eq!(std::fs::read_to_string(&path)?, ironic_hash);
    assert!(rescue::verify_password("Hello world!", ironic_hash));
    assert!(rescue::is_rescued(dir.path()));

    // Neither the command list nor the log shows the password or a hash.
    let (_, list) = call(&app, "GET", "").await?;
    let listed = list.to_string();
    assert!(listed.contains("finalize_rescue"), "{listed}");
    assert!(
        !listed.contains(PASSWORD) && !listed.contains("$6$"),
        "{listed}"
    );
    let log = String::from_utf8_lossy(&ctx.logs.contents()).into_owned();
    // The command's own lines prove the log was captured (the executor's "executing command"
    // line is not asserted: tracing caches callsite interest process-wide, and a test running
    // in parallel under another subscriber can make it skip this thread's capture).
    assert!(
        log.contains("writing the rescue password hash"),
        "the log was not captured: {log}"
    );
    assert!(log.contains("rescue finalized"), "{log}");
    for secret in [PASSWORD, hash.as_str(), ironic_hash, "svn8UoSVapNtMuq1uk"] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    let hash_part = hash.rsplit('$').next().unwrap_or_default();
    assert!(!log.contains(hash_part), "{log}");
    Ok(())
}

/// Sends `request` on `stream` and reads one response (headers + Content-Length body).
fn exchange(stream: &mut TcpStream, request: &str) -> anyhow::Result<(u16, Value)> {
    stream.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "connection closed before a full response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)));
            }
        }
    }
}

fn post(path_body: &str) -> String {
    format!(
        "POST /v1/commands/?agent_token={TOKEN} HTTP/1.1\r\nHost: agent\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{path_body}",
        path_body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_answers_then_closes_the_port() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ctx = context(dir.path())?;
    let listener = super::server::bind("127.0.0.1:0".parse()?, true).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(super::server::serve(
        listener,
        app(&ctx),
        None,
        ctx.stop.subscribe(),
    ));

    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        // An idle keep-alive connection, and the one that sends the lockdown.
        let mut idle = TcpStream::connect(addr)?;
        idle.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut conn = TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(Duration::from_secs(15)))?;
        let sync = exchange(&mut conn, &post(r#"{"name":"standby.sync","params":{}}"#))?;
        let lockdown = exchange(
            &mut conn,
            &post(r#"{"name":"system.lockdown","params":{}}"#),
        )?;
        // The server then closes both connections and the listener.
        let mut rest = Vec::new();
        let closed = conn.read_to_end(&mut rest).map(|_| rest.is_empty());
        let idle_closed = idle.read(&mut [0u8; 16]).map(|n| n == 0);
        Ok((sync, lockdown, closed, idle_closed))
    })
    .await??;
    let (sync, lockdown, closed, idle_closed) = outcome;
    assert_eq!(sync.0, 200, "{sync:?}");
    assert_eq!(lockdown.0, 200, "{lockdown:?}");
    assert_eq!(lockdown.1["command_name"], "lockdown");
    assert_eq!(lockdown.1["command_status"], "SUCCEEDED");
    assert_eq!(lockdown.1["command_result"], Value::Null);
    assert!(matches!(closed, Ok(true)), "{closed:?}");
    assert!(matches!(idle_closed, Ok(true)), "{idle_closed:?}");
    tokio::time::timeout(Duration::from_secs(15), server).await??;
    assert_eq!(ctx.stop.requested(), Some(StopReason::Lockdown));
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "the API port still accepts connections");
    // The command itself never powers off nor touches the network: `agent::run` does the
    // network part after the server stopped.
    assert!(!dir.path().join("power").exists());
    assert!(!dir.path().join("network").exists());
    Ok(())
}
