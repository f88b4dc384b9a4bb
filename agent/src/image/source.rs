//! The image as a `Read`: HTTP(S) over several URLs with IPA's timeouts and retries, failing
//! over between URLs and resuming with `Range` from the last byte consumed when a connection
//! drops, so a 10 GiB download that breaks at 9 GiB costs 1 GiB more, not 10.
//!
//! Internally the async client runs on a private single-threaded runtime driven by the reading
//! thread itself: the connection is polled on the thread that consumes the bytes, with no
//! hand-off to a helper thread per chunk. A source must therefore be used (and dropped) on a
//! plain thread, not inside an async runtime; the pipeline entry points and [`fetch_text`]
//! run it on threads of their own.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{Buf, Bytes};
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, HeaderValue, RANGE};
use reqwest::{Client, NoProxy, Proxy, Response, StatusCode};
use tracing::{info, warn};

use super::error::ImageError;
use super::info::{ImageInfo, redact_url};
use super::options::{BasicAuth, DownloadOptions};

#[derive(Clone)]
enum Auth {
    None,
    /// Sent verbatim (decoded `image_request_authorization`).
    Header(HeaderValue),
    Basic(BasicAuth),
}

/// Why one attempt to open a URL failed.
enum Attempt {
    /// A client error (4xx): this URL will not work, go to the next one.
    Refused(String),
    /// Worth retrying (connection error, timeout, 5xx, bad resume answer).
    Failed(String),
}

/// One URL's last failure, and whether it was a refusal (4xx).
#[derive(Clone)]
struct UrlFailure {
    reason: String,
    refused: bool,
}

/// A resumable, failing-over HTTP download exposed as a byte stream.
pub struct HttpSource {
    rt: tokio::runtime::Runtime,
    client: Client,
    timeout: Duration,
    urls: Vec<String>,
    auth: Auth,
    retries: u32,
    retry_interval: Duration,
    max_duration: Option<Duration>,
    max_reconnects: u32,
    started: Instant,
    idx: usize,
    failures: u32,
    reconnects: u32,
    url_failures: Vec<Option<UrlFailure>>,
    resp: Option<Response>,
    /// Received bytes not yet handed out.
    chunk: Bytes,
    /// Bytes still to drop from the current response (a server that ignored `Range`).
    skip: u64,
    pos: u64,
    total: Option<u64>,
    since_connect: u64,
    received: u64,
    done: bool,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &self.url())
            .field("pos", &self.pos)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    // Bounded: error chains are short, but never loop forever on a cyclic one.
    for _ in 0..8 {
        let Some(c) = cur else { break };
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn env_proxy(names: [&str; 2]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// Builds the client: agent TLS settings, IPA's timeouts, image_info's proxies.
fn build_client(info: &ImageInfo, opts: &DownloadOptions) -> Result<Client, ImageError> {
    let tls =
        crate::tls::client_config(opts.insecure, opts.cafile.as_deref(), &opts.tls_min_version)
            .map_err(|e| ImageError::InvalidParams(format!("outbound TLS settings: {e}")))?;
    let mut b = Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(opts.connection_timeout)
        .read_timeout(opts.connection_timeout)
        .pool_max_idle_per_host(1)
        .user_agent(concat!("ironic-agent/", env!("CARGO_PKG_VERSION")));
    let no_proxy = nonempty(&info.no_proxy);
    let given = info.proxies.clone().unwrap_or_default();
    // With an explicit no_proxy, the environment's proxies are re-added with it applied (IPA
    // exports no_proxy into its environment); otherwise reqwest reads the environment itself.
    let http = nonempty(&given.http)
        .map(String::from)
        .or_else(|| no_proxy.and_then(|_| env_proxy(["http_proxy", "HTTP_PROXY"])));
    let https = nonempty(&given.https)
        .map(String::from)
        .or_else(|| no_proxy.and_then(|_| env_proxy(["https_proxy", "HTTPS_PROXY"])));
    let bad_proxy = |p: &str, e: reqwest::Error| {
        ImageError::InvalidParams(format!("invalid proxy URL {}: {e}", redact_url(p)))
    };
    if let Some(p) = &http {
        let proxy = Proxy::http(p.as_str()).map_err(|e| bad_proxy(p, e))?;
        b = b.proxy(proxy.no_proxy(no_proxy.and_then(NoProxy::from_string)));
    }
    if let Some(p) = &https {
        let proxy = Proxy::https(p.as_str()).map_err(|e| bad_proxy(p, e))?;
        b = b.proxy(proxy.no_proxy(no_proxy.and_then(NoProxy::from_string)));
    }
    b.build()
        .map_err(|e| ImageError::InvalidParams(format!("building the HTTP client: {e}")))
}

/// `image_request_authorization` (base64 of a header value) first, then image_info's
/// `http_basic`, then the agent's own `http_basic` credentials.
fn build_auth(info: &ImageInfo, opts: &DownloadOptions) -> Result<Auth, ImageError> {
    if let Some(b64) = nonempty(&info.image_request_authorization) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| {
                ImageError::InvalidParams(format!(
                    "image_request_authorization is not valid base64: {e}"
                ))
            })?;
        let mut value = HeaderValue::from_bytes(&raw).map_err(|_| {
            ImageError::InvalidParams(
                "image_request_authorization does not decode to a valid header value".into(),
            )
        })?;
        value.set_sensitive(true);
        return Ok(Auth::Header(value));
    }
    if nonempty(&info.image_server_auth_strategy) == Some("http_basic") {
        let (Some(user), Some(password)) = (
            nonempty(&info.image_server_user),
            info.image_server_password.as_deref(),
        ) else {
            return Err(ImageError::InvalidParams(
                "image_server_auth_strategy is http_basic but image_server_user or \
                 image_server_password is missing"
                    .into(),
            ));
        };
        return Ok(Auth::Basic(BasicAuth {
            user: user.to_string(),
            password: password.to_string(),
        }));
    }
    Ok(opts.basic_auth.clone().map_or(Auth::None, Auth::Basic))
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total))
}

impl HttpSource {
    /// A source over `urls` with `info`'s proxies and credentials. Nothing is fetched yet.
    pub fn new(
        info: &ImageInfo,
        urls: &[String],
        opts: &DownloadOptions,
    ) -> Result<Self, ImageError> {
        if urls.is_empty() {
            return Err(ImageError::InvalidParams("no image URL".into()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ImageError::Internal(format!("starting the HTTP runtime: {e}")))?;
        // The client's connection pool registers with the runtime it is built in.
        let client = {
            let _guard = rt.enter();
            build_client(info, opts)?
        };
        Ok(HttpSource {
            rt,
            client,
            timeout: opts.connection_timeout,
            urls: urls.to_vec(),
            auth: build_auth(info, opts)?,
            retries: opts.retries,
            retry_interval: opts.retry_interval,
            max_duration: opts.max_duration.filter(|d| !d.is_zero()),
            max_reconnects: opts.max_reconnects,
            started: Instant::now(),
            idx: 0,
            failures: 0,
            reconnects: 0,
            url_failures: vec![None; urls.len()],
            resp: None,
            chunk: Bytes::new(),
            skip: 0,
            pos: 0,
            total: None,
            since_connect: 0,
            received: 0,
            done: false,
        })
    }

    /// The URL in use (credentials redacted).
    pub fn url(&self) -> String {
        let i = self.idx.min(self.urls.len().saturating_sub(1));
        self.urls.get(i).map(|u| redact_url(u)).unwrap_or_default()
    }

    /// Total size as announced by the server (`Content-Length`), once connected.
    pub fn content_length(&self) -> Option<u64> {
        self.total
    }

    /// Bytes handed to the reader so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes received from the network, including any prefix re-sent by a server that
    /// ignored `Range` and was skipped.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Connects now (trying URLs in order), so the size is known before reading.
    pub fn open(&mut self) -> Result<(), ImageError> {
        if self.resp.is_none() && !self.done {
            self.connect()?;
        }
        Ok(())
    }

    fn check_deadline(&self) -> Result<(), ImageError> {
        match self.max_duration {
            Some(max) if self.started.elapsed() > max => Err(ImageError::Timeout {
                url: self.url(),
                limit_ms: u64::try_from(max.as_millis()).unwrap_or(u64::MAX),
                bytes: self.pos,
            }),
            _ => Ok(()),
        }
    }

    fn sleep_before_retry(&self) {
        let mut pause = self.retry_interval;
        if let Some(max) = self.max_duration {
            pause = pause.min(max.saturating_sub(self.started.elapsed()));
        }
        std::thread::sleep(pause);
    }

    /// The error once every URL has failed.
    fn exhausted(&self) -> ImageError {
        let describe = |(u, f): (&String, &Option<UrlFailure>)| {
            let reason = f.as_ref().map_or("not tried", |f| f.reason.as_str());
            format!("{}: {reason}", redact_url(u))
        };
        let reason: Vec<String> = self
            .urls
            .iter()
            .zip(&self.url_failures)
            .map(describe)
            .collect();
        let reason = reason.join("; ");
        if self
            .url_failures
            .iter()
            .all(|f| f.as_ref().is_some_and(|f| f.refused))
        {
            ImageError::DownloadFatal { reason }
        } else {
            let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
            ImageError::Download {
                url: urls.join(", "),
                reason,
                bytes: self.pos,
            }
        }
    }

    fn record(&mut self, reason: String, refused: bool) {
        if let Some(slot) = self.url_failures.get_mut(self.idx) {
            *slot = Some(UrlFailure { reason, refused });
        }
    }

    fn next_url(&mut self) {
        self.idx += 1;
        self.failures = 0;
        if let Some(u) = self.urls.get(self.idx) {
            warn!(url = %redact_url(u), resume_from = self.pos, "trying the next image URL");
        }
    }

    /// Counts a failed attempt on the current URL; moves on after `retries + 1` of them,
    /// otherwise waits `retry_interval`. Errors once no URL is left.
    fn attempt_failed(&mut self, reason: String) -> Result<(), ImageError> {
        self.failures += 1;
        warn!(
            url = %self.url(),
            attempt = self.failures,
            of = self.retries.saturating_add(1),
            at_byte = self.pos,
            %reason,
            "image download attempt failed"
        );
        self.record(reason, false);
        if self.failures > self.retries {
            self.next_url();
            if self.idx >= self.urls.len() {
                return Err(self.exhausted());
            }
        } else {
            self.sleep_before_retry();
        }
        Ok(())
    }

    /// The connection broke (or ended early) after `since_connect` bytes.
    fn connection_lost(&mut self, reason: String) -> Result<(), ImageError> {
        self.resp = None;
        self.skip = 0;
        self.reconnects += 1;
        if self.reconnects > self.max_reconnects {
            return Err(ImageError::Download {
                url: self.url(),
                reason: format!(
                    "gave up after {} reconnections; last: {reason}",
                    self.max_reconnects
                ),
                bytes: self.pos,
            });
        }
        if self.since_connect > 0 {
            // Progress was made: this is a fresh problem, resume at once.
            self.failures = 0;
            warn!(url = %self.url(), at_byte = self.pos, %reason,
                  "image connection lost, resuming with Range");
            self.record(reason, false);
            Ok(())
        } else {
            self.attempt_failed(reason)
        }
    }

    fn connect(&mut self) -> Result<(), ImageError> {
        // Bounded: every iteration either returns or counts a failure, and failures move
        // through a finite list of URLs.
        loop {
            self.check_deadline()?;
            let Some(url) = self.urls.get(self.idx).cloned() else {
                return Err(self.exhausted());
            };
            match self.try_open(&url) {
                Ok(resp) => {
                    info!(
                        url = %redact_url(&url),
                        status = resp.status().as_u16(),
                        content_length = ?self.total,
                        resume_from = self.pos,
                        "image download connected"
                    );
                    self.resp = Some(resp);
                    self.since_connect = 0;
                    return Ok(());
                }
                Err(Attempt::Refused(reason)) => {
                    warn!(url = %redact_url(&url), %reason, "image URL refused");
                    self.record(reason, true);
                    self.next_url();
                }
                Err(Attempt::Failed(reason)) => self.attempt_failed(reason)?,
            }
        }
    }

    fn try_open(&mut self, url: &str) -> Result<Response, Attempt> {
        let mut req = self.client.get(url);
        if self.pos > 0 {
            req = req.header(RANGE, format!("bytes={}-", self.pos));
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Header(h) => req.header(AUTHORIZATION, h.clone()),
            Auth::Basic(b) => req.basic_auth(&b.user, Some(&b.password)),
        };
        let t = self.timeout;
        let resp = match self
            .rt
            .block_on(async move { tokio::time::timeout(t, req.send()).await })
        {
            Err(_) => {
                return Err(Attempt::Failed(format!(
                    "no response within {} s",
                    t.as_secs_f64()
                )));
            }
            // A refused certificate will not verify on a retry: move on at once.
            Ok(Err(e)) if crate::tls::is_certificate_error(&e) => {
                return Err(Attempt::Refused(crate::tls::describe_error(
                    &e.without_url(),
                )));
            }
            Ok(Err(e)) => return Err(Attempt::Failed(error_chain(&e.without_url()))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_client_error() {
            return Err(Attempt::Refused(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(Attempt::Failed(format!("HTTP {status}")));
        }
        if self.pos == 0 {
            if status == StatusCode::PARTIAL_CONTENT {
                return Err(Attempt::Failed("unrequested HTTP 206".into()));
            }
            self.total = resp.content_length();
            return Ok(resp);
        }
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let header = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let Some((start, _end, total)) = parse_content_range(header) else {
                    return Err(Attempt::Failed(format!(
                        "HTTP 206 with unusable Content-Range `{header}`"
                    )));
                };
                if start != self.pos {
                    return Err(Attempt::Failed(format!(
                        "asked to resume at byte {} but the server sent from byte {start}",
                        self.pos
                    )));
                }
                if let (Some(t), Some(known)) = (total, self.total)
                    && t != known
                {
                    return Err(Attempt::Failed(format!(
                        "image size changed on the server: {known} then {t} bytes"
                    )));
                }
                self.total = self.total.or(total);
                Ok(resp)
            }
            _ => {
                // The server ignored Range: same image? then skip what was consumed.
                if let (Some(len), Some(known)) = (resp.content_length(), self.total)
                    && len != known
                {
                    return Err(Attempt::Failed(format!(
                        "image size changed on the server: {known} then {len} bytes"
                    )));
                }
                warn!(url = %redact_url(url), skip = self.pos,
                      "server ignored Range; skipping the bytes already consumed");
                self.skip = self.pos;
                Ok(resp)
            }
        }
    }

    /// The next chunk of the current response (`None` at its end).
    fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        let Some(resp) = self.resp.as_mut() else {
            return Ok(None);
        };
        let t = self.timeout;
        match self
            .rt
            .block_on(async { tokio::time::timeout(t, resp.chunk()).await })
        {
            Err(_) => Err(format!("no data for {} s", t.as_secs_f64())),
            Ok(Err(e)) => Err(error_chain(&e.without_url())),
            Ok(Ok(c)) => Ok(c),
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize, ImageError> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Bounded by max_reconnects and the per-URL retry counts.
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&self.chunk[..n]);
                self.chunk.advance(n);
                self.pos += n as u64;
                self.since_connect += n as u64;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.check_deadline()?;
            if self.resp.is_none() {
                self.connect()?;
            }
            match self.next_chunk() {
                Ok(Some(mut c)) => {
                    self.received += c.len() as u64;
                    if self.skip > 0 {
                        let k = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(c.len());
                        c.advance(k);
                        self.skip -= k as u64;
                    }
                    self.chunk = c;
                }
                Ok(None) if self.skip > 0 || self.total.is_some_and(|t| self.pos < t) => {
                    let reason = format!(
                        "connection closed at byte {} of {} (Content-Length)",
                        self.pos,
                        self.total.map_or("?".into(), |t| t.to_string())
                    );
                    self.connection_lost(reason)?;
                }
                Ok(None) => {
                    self.done = true;
                    self.resp = None;
                    info!(
                        url = %self.url(),
                        bytes = self.pos,
                        content_length = ?self.total,
                        received = self.received,
                        "image download finished"
                    );
                    return Ok(0);
                }
                Err(reason) => self.connection_lost(reason)?,
            }
        }
    }
}

impl Read for HttpSource {
    /// Errors are [`ImageError`]s wrapped in `io::Error` (recover them with
    /// `ImageError::from_io`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf).map_err(ImageError::into_io)
    }
}

/// Downloads a small text document (a checksum file) with the image's client settings;
/// refuses more than `limit` bytes.
pub fn fetch_text(
    info: &ImageInfo,
    url: &str,
    opts: &DownloadOptions,
    limit: u64,
) -> Result<String, ImageError> {
    on_own_thread(|| fetch_text_here(info, url, opts, limit))
}

/// Runs `f` on a fresh thread (a source must not run inside an async runtime, and callers may
/// be on one) and returns its result.
pub(crate) fn on_own_thread<T: Send>(
    f: impl FnOnce() -> Result<T, ImageError> + Send,
) -> Result<T, ImageError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("image-http".into())
            .spawn_scoped(s, f)
            .map_err(|e| ImageError::Internal(format!("cannot start a thread: {e}")))?
            .join()
            .unwrap_or_else(|_| Err(ImageError::Internal("an image thread panicked".into())))
    })
}

fn fetch_text_here(
    info: &ImageInfo,
    url: &str,
    opts: &DownloadOptions,
    limit: u64,
) -> Result<String, ImageError> {
    let mut src = HttpSource::new(info, &[url.to_string()], opts)?;
    src.open()?;
    let mut body = Vec::new();
    (&mut src)
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| {
            ImageError::from_io(e, |e| ImageError::Download {
                url: redact_url(url),
                reason: e.to_string(),
                bytes: 0,
            })
        })?;
    if body.len() as u64 > limit {
        return Err(ImageError::ChecksumSpec(format!(
            "{} is larger than {limit} bytes; not a checksum file",
            redact_url(url)
        )));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-1/2"), None);
    }

    #[test]
    fn auth_precedence_and_errors() -> Result<(), ImageError> {
        let opts = DownloadOptions {
            basic_auth: Some(BasicAuth {
                user: "agent".into(),
                password: "pw".into(),
            }),
            ..Default::default()
        };
        let mut info = ImageInfo::default();
        assert!(matches!(build_auth(&info, &opts)?, Auth::Basic(b) if b.user == "agent"));
        info.image_server_auth_strategy = Some("http_basic".into());
        assert!(build_auth(&info, &opts).is_err());
        info.image_server_user = Some("img".into());
        info.image_server_password = Some("x".into());
        assert!(matches!(build_auth(&info, &opts)?, Auth::Basic(b) if b.user == "img"));
        info.image_request_authorization = Some("QmVhcmVyIHRvaw==".into());
        match build_auth(&info, &opts)? {
            Auth::Header(h) => {
                assert_eq!(h.as_bytes(), b"Bearer tok");
                assert!(h.is_sensitive());
            }
            _ => return Err(ImageError::Internal("expected a header".into())),
        }
        info.image_request_authorization = Some("!!!".into());
        assert!(matches!(
            build_auth(&info, &opts),
            Err(ImageError::InvalidParams(_))
        ));
        Ok(())
    }

    #[test]
    fn client_builds_with_proxies() -> Result<(), ImageError> {
        let mut info = ImageInfo {
            proxies: Some(super::super::info::Proxies {
                http: Some("http://127.0.0.1:3128".into()),
                https: None,
            }),
            no_proxy: Some("127.0.0.1,localhost".into()),
            ..Default::default()
        };
        build_client(&info, &DownloadOptions::default())?;
        info.proxies = Some(super::super::info::Proxies {
            http: Some("::not a url::".into()),
            https: None,
        });
        assert!(build_client(&info, &DownloadOptions::default()).is_err());
        Ok(())
    }
}
