//! A load generator for the agent's API: waves of N truly concurrent HTTP/1.1 requests (one
//! connection each, all connected before any is sent), repeated until told to stop. Used by
//! the load test (`tests/load.rs`) and the load benchmark (`agent/bench/load.py`, through the
//! `agent-loadgen` binary).
//!
//! Every answer is checked: status 200 and a JSON body of the expected shape. Anything else
//! (refused or reset connection, timeout, other status, bad JSON) counts as an error and is
//! kept as an example.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// Limit for one request (connect, send, read the whole answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What to load.
#[derive(Debug, Clone)]
pub struct Load {
    /// The agent's address.
    pub addr: SocketAddr,
    /// The agent token (for the commands routes).
    pub token: String,
    /// Requests per wave (all in flight at once).
    pub concurrency: usize,
    /// Stop after this many waves (`None`: until the stop flag is set).
    pub waves: Option<usize>,
}

/// What came back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Waves completed.
    pub waves: usize,
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed in any way.
    pub errors: usize,
    /// Up to ten descriptions of failures.
    pub error_examples: Vec<String>,
    /// Median request latency (sent → answer read; connecting is not counted), milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Slowest request, milliseconds.
    pub max_ms: f64,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
}

/// The routes the waves cycle through: status (no token), the command list and the newest
/// command (token).
fn path(i: usize, token: &str) -> (String, &'static str) {
    match i % 3 {
        0 => ("/v1/status".into(), "started_at"),
        1 => (format!("/v1/commands/?agent_token={token}"), "commands"),
        _ => (format!("/v1/commands?agent_token={token}"), "commands"),
    }
}

/// One request; returns its latency in milliseconds, from the moment it is sent (after the
/// barrier) to the end of the answer.
async fn one(
    addr: SocketAddr,
    path: String,
    key: &str,
    barrier: Arc<Barrier>,
) -> Result<f64, String> {
    let connected = TcpStream::connect(addr).await;
    // Every connection is open before any request goes out: the agent sees them all at once.
    // (A failed connect still waits, or the others would wait for it forever.)
    barrier.wait().await;
    let mut stream = connected.map_err(|e| format!("connect: {e}"))?;
    let sent = Instant::now();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {} bytes", answer.len()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!("{path}: status {status}: {body}"));
    }
    // Bodies are small and sent with Content-Length (no chunking) by the agent.
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("{path}: bad JSON ({e}): {body}"))?;
    if v.get(key).is_none() {
        return Err(format!("{path}: no {key:?} in {v}"));
    }
    Ok(sent.elapsed().as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs waves until `load.waves` are done or `stop` is set (checked between waves).
pub async fn run(load: Load, stop: Arc<AtomicBool>) -> Report {
    let start = Instant::now();
    let mut report = Report::default();
    let mut latencies = Vec::new();
    while !stop.load(Ordering::SeqCst) && load.waves.is_none_or(|w| report.waves < w) {
        let barrier = Arc::new(Barrier::new(load.concurrency));
        let mut tasks = Vec::with_capacity(load.concurrency);
        for i in 0..load.concurrency {
            let (path, key) = path(i, &load.token);
            let barrier = barrier.clone();
            let addr = load.addr;
            tasks.push(tokio::spawn(async move {
                match tokio::time::timeout(REQUEST_TIMEOUT, one(addr, path, key, barrier)).await {
                    Ok(r) => r,
                    Err(_) => Err("timed out".to_string()),
                }
            }));
        }
        for t in tasks {
            report.requests += 1;
            match t.await {
                Ok(Ok(ms)) => latencies.push(ms),
                Ok(Err(e)) => {
                    report.errors += 1;
                    if report.error_examples.len() < 10 {
                        report.error_examples.push(e);
                    }
                }
                Err(e) => {
                    report.errors += 1;
                    if report.error_examples.len() < 10 {
                        report.error_examples.push(format!("task: {e}"));
                    }
                }
            }
        }
        report.waves += 1;
    }
    latencies.sort_by(f64::total_cmp);
    report.p50_ms = percentile(&latencies, 0.5);
    report.p99_ms = percentile(&latencies, 0.99);
    report.max_ms = latencies.last().copied().unwrap_or(0.0);
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// Raises this process's open-file soft limit (a wave of 1,000 connections needs more than the
/// usual 1024 with everything else a test holds open).
pub fn raise_open_files() {
    ironic_agent::limits::raise_open_files();
}
