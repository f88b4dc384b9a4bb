//! The HTTP(S) server loop: plain or TLS over the same router, until the agent stops serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::stop::StopReason;

/// Largest request head (request line + headers) accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Binds `addr`; an IPv6 wildcard falls back to `0.0.0.0` on hosts without IPv6.
pub async fn bind(addr: SocketAddr, explicit: bool) -> std::io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if !explicit && addr.is_ipv6() => {
            warn!(error = %e, "cannot bind {addr}, falling back to IPv4");
            TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port()))).await
        }
        Err(e) => Err(e),
    }
}

/// How long the connections in flight may take to deliver their responses once the agent
/// stops serving.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Any connection the server speaks HTTP over: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Serves `app` on `listener` (TLS when `tls` is given) until the task is dropped or `stop`
/// turns `Some`: then the listener is closed at once (new connections are refused), every
/// connection finishes the request it is serving — the response of the command that asked for
/// the stop included — and is closed; waits up to [`STOP_GRACE`] for that.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: watch::Receiver<Option<StopReason>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    let mut stopped = std::pin::pin!(crate::stop::wait(stop.clone()));
    let reason = loop {
        tokio::select! {
            reason = &mut stopped => break reason,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                connections.spawn(connection(
                    stream,
                    peer,
                    app.clone(),
                    acceptor.clone(),
                    stop.clone(),
                ));
            }
        }
    };
    drop(listener);
    info!(
        ?reason,
        open_connections = connections.len(),
        "API listener closed"
    );
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("connections still open {STOP_GRACE:?} after the API stopped; closing them");
        connections.abort_all();
    }
}

/// Serves one connection (after the TLS handshake, if any), shutting it down gracefully when
/// the agent stops serving.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<Option<StopReason>>,
) {
    let io: Box<dyn Io> = match acceptor {
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        None => Box::new(stream),
    };
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(MAX_HEADER_BYTES);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let mut stopped = std::pin::pin!(crate::stop::wait(stop));
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            _ = &mut stopped, if !stopping => {
                // Finishes the request in flight (its response is written), then closes.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}
