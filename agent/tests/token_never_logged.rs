//! The agent never writes its token to its log: the real binary, logging everything at trace
//! level, with a token on its kernel command line, another from lookup (which replaces it),
//! heartbeats carrying it, and API requests carrying it in their query string. Its stderr,
//! stdout and in-memory log (read back through `/v1/debug/logs`) are then searched for both
//! tokens, raw and URL-encoded.
//!
//! The conductor is a stand-in on 127.0.0.1 that answers version discovery, lookup and
//! heartbeats; the agent writes nothing (no disk is allowed, power actions are recorded).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// On the kernel command line; replaced by the lookup token.
const KERNEL_TOKEN: &str = "kernel-token-0123456789abcdefghijklmnopqrstuv";
/// From lookup: characters that URL encoding changes, so both forms are searched for.
const LOOKUP_TOKEN: &str = "lookup+token/0123456789=ABCDEFGHIJKLMNOP~Q%z";
const NODE: &str = "0b4e2c6a-6f0e-4a59-9a57-2b6b0d1e7f10";
const DEADLINE: Duration = Duration::from_secs(60);

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads one HTTP/1.1 request: (request line, body).
fn read_request(stream: &TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut length = 0usize;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse()?;
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    Ok((first, body))
}

/// A stand-in conductor: API version 1.68, lookup handing out [`LOOKUP_TOKEN`], heartbeats
/// recorded. Returns its URL and the heartbeat bodies received.
fn conductor() -> anyhow::Result<(String, Arc<Mutex<Vec<String>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let heartbeats = Arc::new(Mutex::new(Vec::new()));
    let seen = heartbeats.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut stream) = conn else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok((line, body)) = read_request(&stream) else {
                continue;
            };
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, answer) = if target == "/" {
                (
                    200,
                    r#"{"default_version": {"version": "1.68"}}"#.to_string(),
                )
            } else if target.starts_with("/v1/lookup") {
                let answer = serde_json::json!({
                    "node": {"uuid": NODE, "properties": {}, "instance_info": {},
                             "driver_internal_info": {}},
                    "config": {"heartbeat_timeout": 3, "agent_token": LOOKUP_TOKEN,
                               "agent_token_required": true},
                });
                (200, answer.to_string())
            } else if target == format!("/v1/heartbeat/{NODE}") {
                if let Ok(mut h) = seen.lock() {
                    h.push(String::from_utf8_lossy(&body).into_owned());
                }
                (202, String::new())
            } else {
                (404, r#"{"error_message": "not found"}"#.to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    Ok((url, heartbeats))
}

/// `method target` on the agent; (status, body).
fn http(
    agent: SocketAddr,
    method: &str,
    target: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(agent)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The agent process, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until<T>(
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[test]
fn the_token_is_never_logged_at_any_level() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (conductor, heartbeats) = conductor()?;
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "ipa-api-url={conductor} ipa-agent-token={KERNEL_TOKEN} ipa-lookup-timeout=30 ipa-debug=1\n"
        ),
    )?;
    std::fs::create_dir_all(dir.path().join("plugins"))?;
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
        .arg("--cmdline")
        .arg(&cmdline)
        .args(["--listen", "127.0.0.1:0", "--advertise-host", "127.0.0.1"])
        .args(["--no-auto-tls", "--debug"])
        .arg("--hardware-managers-dir")
        .arg(dir.path().join("plugins"))
        .arg("--power")
        .arg(format!("record:{}", dir.path().join("power").display()))
        // Everything, every crate, at the most verbose level.
        .env("IRONIC_AGENT_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .context("starting the agent")?;
    let mut agent = Agent(child);

    let addr: SocketAddr = wait_until("the agent to listen", || {
        if let Some(status) = agent.0.try_wait()? {
            bail!("the agent exited ({status}):\n{}", read(&stderr));
        }
        Ok(read(&stdout)
            .lines()
            .find_map(|l| l.strip_prefix("ironic-agent listening on http://"))
            .and_then(|a| a.trim().parse().ok()))
    })?;

    // Heartbeats carry the lookup token.
    wait_until("two heartbeats", || {
        let h = heartbeats.lock().map(|h| h.clone()).unwrap_or_default();
        Ok((h.len() >= 2).then_some(h))
    })
    .and_then(|h| {
        anyhow::ensure!(
            h.iter()
                .all(|b| b.contains(&LOOKUP_TOKEN.replace('/', "\\/")) || b.contains(LOOKUP_TOKEN)),
            "heartbeats without the token: {h:?}"
        );
        Ok(())
    })?;

    // API requests carrying the tokens in every way a client might.
    let t1 = encode(LOOKUP_TOKEN);
    let t0 = encode(KERNEL_TOKEN);
    let node_info = r#"{"name": "poll.get_node_info", "params": {}}"#;
    for (method, target, body, want) in [
        ("GET", format!("/v1/commands/?agent_token={t1}"), "", 200),
        (
            "GET",
            format!("/v1/commands?agent_token={t1}&wait=true"),
            "",
            200,
        ),
        (
            "POST",
            format!("/v1/commands/?agent_token={t1}&wait=true"),
            node_info,
            200,
        ),
        (
            "GET",
            format!("/v1/commands/nope?agent_token={t1}"),
            "",
            404,
        ),
        (
            "GET",
            format!("/v1/debug/progress?agent%5Ftoken={t1}"),
            "",
            200,
        ),
        ("GET", format!("/v1/nowhere?agent_token={t1}"), "", 404),
        ("PUT", format!("/v1/commands/?agent_token={t1}"), "{}", 405),
        (
            "POST",
            format!("/v1/commands/?agent_token={t1}"),
            "{not json",
            400,
        ),
        // The kernel token was replaced by lookup's: refused now, and not logged either.
        ("GET", format!("/v1/commands/?agent_token={t0}"), "", 401),
        (
            "POST",
            format!("/v1/commands/?agent_token={t0}"),
            node_info,
            401,
        ),
    ] {
        let (status, answer) = http(addr, method, &target, body)?;
        anyhow::ensure!(status == want, "{method} {target}: {status} {answer}");
    }

    let (status, memory_log) = http(
        addr,
        "GET",
        &format!("/v1/debug/logs?agent_token={t1}&lines=10000"),
        "",
    )?;
    anyhow::ensure!(status == 200, "{status}: {memory_log}");
    drop(agent);
    let logs = [
        ("stderr", read(&stderr)),
        ("stdout", read(&stdout)),
        ("in-memory log", memory_log),
    ];

    // The token appears nowhere, in any form...
    for (name, text) in &logs {
        for secret in [
            LOOKUP_TOKEN,
            KERNEL_TOKEN,
            t1.as_str(),
            t0.as_str(),
            &LOOKUP_TOKEN.replace('/', "\\/"),
            "0123456789=ABCDEFGHIJKLMNOP",
            "0123456789%3DABCDEFGHIJKLMNOP",
            "0123456789abcdefghijklmnopqrstuv",
        ] {
            anyhow::ensure!(
                !text.contains(secret),
                "the {name} holds `{secret}`:\n{}",
                text.lines()
                    .filter(|l| l.contains(secret))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    // ...while it saw all of that happen.
    let stderr_text = &logs[0].1;
    for needle in [
        "agent token received from lookup",
        "starting heartbeats",
        "query=agent_token=***&wait=true",
        "status=401",
        "executing command",
    ] {
        anyhow::ensure!(
            stderr_text.contains(needle),
            "`{needle}` not logged:\n{stderr_text}"
        );
    }
    Ok(())
}
