//! The real server loop (`server::serve` on 127.0.0.1:0) over real TCP: request limits, slow
//! clients and the auto-TLS protocol versions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::server;
use super::tests::{TOKEN, app, assert_too_large_fault};
use crate::stop::StopSignal;
use crate::tls;

/// Every network step of these tests gives up after this long.
const STEP: Duration = Duration::from_secs(20);

/// A server task on 127.0.0.1, stopped when dropped.
struct Running {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    _stop: StopSignal,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the real router (test commands, token [`TOKEN`]) in the real server loop.
async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path())?;
    let listener = server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), true).await?;
    let addr = listener.local_addr()?;
    let stop = StopSignal::default();
    let task = tokio::spawn(server::serve(listener, app, tls, stop.subscribe()));
    Ok(Running {
        addr,
        task,
        _stop: stop,
        _dir: dir,
    })
}

/// Reads until the peer closes (or resets) the connection; what arrived before that.
async fn read_all<S: AsyncRead + Unpin>(s: &mut S) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(STEP, s.read(&mut buf)).await? {
            Ok(0) | Err(_) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status code and body of a raw HTTP/1.1 answer (`None` if nothing parseable arrived).
fn parse(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let text = String::from_utf8_lossy(answer);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((status, answer[at + 4..].to_vec()))
}

/// Sends `head` then `body` on a new connection and returns the parsed answer (the request
/// should say `Connection: close`).
async fn exchange(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
) -> anyhow::Result<Option<(u16, Vec<u8>)>> {
    let mut s = tokio::time::timeout(STEP, TcpStream::connect(addr)).await??;
    s.write_all(head.as_bytes()).await?;
    // The server may answer (and close) before the body is through: not an error here.
    if !body.is_empty() && s.write_all(body).await.is_err() {
        return Ok(parse(&read_all(&mut s).await?));
    }
    Ok(parse(&read_all(&mut s).await?))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
}

fn post(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// `GET /v1/status` answers 200.
async fn status_ok(addr: SocketAddr) -> anyhow::Result<()> {
    let answer = exchange(addr, &get("/v1/status"), b"").await?;
    anyhow::ensure!(
        matches!(&answer, Some((200, _))),
        "status: {:?}",
        answer.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
    );
    Ok(())
}

fn fault_json(body: &[u8]) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_slice(body)?;
    anyhow::ensure!(
        v.as_object().map(|o| o.len()) == Some(2) && v["faultstring"].is_string(),
        "not an IPA fault: {v}"
    );
    Ok(v)
}

#[tokio::test]
async fn body_limits_over_tcp() -> anyhow::Result<()> {
    let server = start(None).await?;
    let uri = format!("/v1/commands/?agent_token={TOKEN}&wait=true");

    // Declared too large: refused at once, before a byte of body is sent or buffered.
    let started = Instant::now();
    let answer = exchange(server.addr, &post(&uri, super::MAX_BODY_BYTES + 1), b"").await?;
    let Some((413, body)) = answer else {
        anyhow::bail!("expected 413, got {answer:?}");
    };
    let v = fault_json(&body)?;
    assert_too_large_fault(&v);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Without the token the same request is a 401: nothing is read for strangers.
    let answer = exchange(
        server.addr,
        &post("/v1/commands/", super::MAX_BODY_BYTES + 1),
        b"",
    )
    .await?;
    assert!(matches!(answer, Some((401, _))), "{answer:?}");

    // A realistic inline config drive: a 64 MiB gzip stream that does not compress is
    // 89 478 488 bytes of base64, and goes through.
    let configdrive = "A".repeat(64 * 1024 * 1024 / 3 * 4 + 4);
    let request = format!(
        r#"{{"name":"test.text","params":{{"image_info":{{"id":"x"}},"configdrive":"{configdrive}"}}}}"#
    );
    drop(configdrive);
    assert!(request.len() > 89_000_000 && request.len() < super::MAX_BODY_BYTES);
    let answer = exchange(server.addr, &post(&uri, request.len()), request.as_bytes()).await?;
    let Some((200, body)) = answer else {
        anyhow::bail!(
            "a config-drive-sized body was refused: {:?}",
            answer.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
        );
    };
    let v: Value = serde_json::from_slice(&body)?;
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    status_ok(server.addr).await
}

#[tokio::test]
async fn oversized_headers_are_refused_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let server = start(None).await?;
    let big = "b".repeat(server::MAX_HEADER_BYTES + 1024);
    let half = "h".repeat(server::MAX_HEADER_BYTES / 2);
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let close = "Host: agent\r\nConnection: close\r\n";
    // Just under the limit is served.
    let fits = format!("GET /v1/status HTTP/1.1\r\n{close}X-Half: {half}\r\n\r\n");
    assert!(matches!(
        exchange(server.addr, &fits, b"").await?,
        Some((200, _))
    ));
    for head in [
        format!("GET /v1/status HTTP/1.1\r\n{close}X-Big: {big}\r\n\r\n"),
        format!("GET /v1/status HTTP/1.1\r\n{close}X-A: {half}\r\nX-B: {half}\r\nX-C: x\r\n\r\n"),
        format!("GET /v1/status?agent_token={big} HTTP/1.1\r\n{close}\r\n"),
        format!("GET /v1/status HTTP/1.1\r\n{close}{many}\r\n"),
        // Far past the limit: hyper stops reading before the head ends.
        format!(
            "GET /v1/status HTTP/1.1\r\n{close}X-Huge: {}\r\n\r\n",
            big.repeat(8)
        ),
    ] {
        let answer = exchange(server.addr, &head, b"").await?;
        // 431 (414 for the URI), or the connection closed without an answer: never served.
        match answer {
            None | Some((414, _)) => {}
            Some((431, body)) => {
                // Ours comes in IPA's shape; hyper's own (too many headers) has no body.
                if !body.is_empty() {
                    let v = fault_json(&body)?;
                    assert_eq!(v["faultcode"], "Client", "{v}");
                }
            }
            Some((status, _)) => anyhow::bail!("an oversized request head got {status}"),
        }
        status_ok(server.addr).await?;
    }
    Ok(())
}

#[tokio::test]
async fn slow_clients_do_not_block_others() -> anyhow::Result<()> {
    let server = start(None).await?;
    // Fifty clients that never finish their headers, and ten that never finish their body.
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(server.addr).await?;
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: agent\r\nX-Slow: 1")
            .await?;
        stalled.push(s);
    }
    for _ in 0..10 {
        let mut s = TcpStream::connect(server.addr).await?;
        let uri = format!("/v1/commands/?agent_token={TOKEN}");
        s.write_all(post(&uri, 1000).as_bytes()).await?;
        s.write_all(br#"{"name":"#).await?;
        stalled.push(s);
    }
    let started = Instant::now();
    for _ in 0..5 {
        status_ok(server.addr).await?;
    }
    let uri = format!("/v1/commands/?agent_token={TOKEN}&wait=true");
    let body = br#"{"name":"test.echo","params":{"x":1}}"#;
    let answer = exchange(server.addr, &post(&uri, body.len()), body).await?;
    assert!(matches!(answer, Some((200, _))), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "other clients waited {:?}",
        started.elapsed()
    );
    drop(stalled);
    status_ok(server.addr).await
}

// ---- auto-TLS protocol versions ---------------------------------------------------------------

/// A client trusting only `cert_pem`, speaking exactly `version`.
fn client_config(
    cert_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes())?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `GET /v1/status` over TLS pinned to `version`: the negotiated version and the status, or
/// the handshake error.
async fn tls_status(
    addr: SocketAddr,
    cert_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> anyhow::Result<Result<(rustls::ProtocolVersion, u16), String>> {
    let connector = tokio_rustls::TlsConnector::from(client_config(cert_pem, version)?);
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr)).await??;
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let mut tls = match tokio::time::timeout(STEP, connector.connect(name, tcp)).await? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let negotiated = tls
        .get_ref()
        .1
        .protocol_version()
        .ok_or_else(|| anyhow::anyhow!("no protocol version after the handshake"))?;
    write_request(&mut tls, &get("/v1/status")).await?;
    let answer = parse(&read_all(&mut tls).await?);
    let Some((status, _)) = answer else {
        anyhow::bail!("no HTTP answer over TLS");
    };
    Ok(Ok((negotiated, status)))
}

async fn write_request<S: AsyncWrite + Unpin>(s: &mut S, head: &str) -> anyhow::Result<()> {
    s.write_all(head.as_bytes()).await?;
    s.flush().await?;
    Ok(())
}

#[tokio::test]
async fn auto_tls_serves_tls12_unless_lookup_asks_for_tls13() -> anyhow::Result<()> {
    let cert = tls::generate_cert(IpAddr::V4(Ipv4Addr::LOCALHOST), "node-1")?;
    let (v12, v13) = (&rustls::version::TLS12, &rustls::version::TLS13);
    // What lookup said → (TLS 1.2 client accepted, TLS 1.3 client accepted).
    for (from_lookup, tls12_ok) in [(None, true), (Some("1.3"), false), (Some("1.2"), true)] {
        let min = tls::server_min_version(from_lookup);
        let server = start(Some(tls::server_config(&cert, min)?)).await?;
        match tls_status(server.addr, &cert.pem, v13).await? {
            Ok((version, status)) => {
                assert_eq!(version, rustls::ProtocolVersion::TLSv1_3, "{from_lookup:?}");
                assert_eq!(status, 200, "{from_lookup:?}");
            }
            Err(e) => anyhow::bail!("TLS 1.3 refused with min {min}: {e}"),
        }
        match (tls_status(server.addr, &cert.pem, v12).await?, tls12_ok) {
            (Ok((version, status)), true) => {
                assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
                assert_eq!(status, 200);
            }
            (Err(e), false) => assert!(
                e.contains("ProtocolVersion") || e.contains("protocol version"),
                "{from_lookup:?}: {e}"
            ),
            (got, _) => anyhow::bail!("lookup {from_lookup:?} (min {min}): TLS 1.2 gave {got:?}"),
        }
        // Plain HTTP on the TLS port is not served either.
        let answer = exchange(server.addr, &get("/v1/status"), b"").await?;
        assert!(
            !matches!(answer, Some((200, _))),
            "plain HTTP served on the TLS port"
        );
    }
    Ok(())
}
