//! The image as a `Read`: HTTP(S) over several URLs with IPA's timeouts and retries, failing
//! over between URLs and resuming with `Range` from the last byte consumed when a connection
//! drops, so a 10 GiB download that breaks at 9 GiB costs 1 GiB more, not 10.
//!
//! The client, the error classes and the retry policy are [`crate::fetch`]'s: a refusal (4xx,
//! not `http(s)://`, a redirect elsewhere, a certificate) moves to the next URL at once; what
//! may pass is retried `retries` times, `retry_interval` apart, and nothing restarts the
//! download on top of that. The async client runs on a private single-threaded runtime
//! driven by the reading thread itself ([`Blocking`]), whose waits also end on the agent's
//! shutdown. A source must therefore be used (and dropped) on a plain thread, not inside an
//! async runtime; the pipeline entry points and [`fetch_text`] run it on threads of their own.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{Buf, Bytes};
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, HeaderValue, RANGE};
use reqwest::{Client, Response, StatusCode};
use tracing::{info, warn};

use super::error::ImageError;
use super::info::{ImageInfo, redact_url};
use super::options::{BasicAuth, DownloadOptions};
use crate::fetch::blocking::Blocking;
use crate::fetch::{ClientSettings, FetchError, Proxies, RetryPolicy, TimeoutPhase};

#[derive(Clone)]
enum Auth {
    None,
    /// Sent verbatim (decoded `image_request_authorization`).
    Header(HeaderValue),
    Basic(BasicAuth),
}

/// One URL's last failure, and whether it was a refusal (4xx).
#[derive(Clone)]
struct UrlFailure {
    reason: String,
    refused: bool,
}

/// A resumable, failing-over HTTP download exposed as a byte stream.
pub struct HttpSource {
    rt: Blocking,
    client: Client,
    policy: RetryPolicy,
    urls: Vec<String>,
    auth: Auth,
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

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The client settings: the agent's TLS, IPA's timeout for connecting and between reads,
/// `image_info`'s proxies.
fn client_settings(info: &ImageInfo, opts: &DownloadOptions) -> ClientSettings {
    let given = info.proxies.clone().unwrap_or_default();
    ClientSettings {
        tls: opts.tls_settings(),
        proxies: Proxies {
            http: given.http,
            https: given.https,
            no_proxy: info.no_proxy.clone(),
        },
        connect_timeout: opts.connection_timeout,
        read_timeout: Some(opts.connection_timeout),
        total_timeout: None,
        max_idle_per_host: 1,
    }
}

/// The image error for a client that cannot be built.
fn settings_error(e: FetchError) -> ImageError {
    match e {
        FetchError::Stopped => ImageError::Stopped,
        other => ImageError::InvalidParams(other.to_string()),
    }
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
        let stop = opts
            .shutdown
            .as_ref()
            .map(crate::shutdown::Shutdown::subscribe);
        let rt = Blocking::new(stop).map_err(settings_error)?;
        let client = rt
            .client(&client_settings(info, opts))
            .map_err(settings_error)?;
        Ok(HttpSource {
            rt,
            client,
            policy: opts.retry_policy(),
            urls: urls.to_vec(),
            auth: build_auth(info, opts)?,
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

    fn sleep_before_retry(&self) -> Result<(), ImageError> {
        let mut pause = self.policy.interval;
        if let Some(max) = self.max_duration {
            pause = pause.min(max.saturating_sub(self.started.elapsed()));
        }
        self.rt.pause(pause).map_err(|_| ImageError::Stopped)
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
            of = self.policy.attempts(),
            at_byte = self.pos,
            %reason,
            "image download attempt failed"
        );
        self.record(reason, false);
        if self.failures > self.policy.retries {
            self.next_url();
            if self.idx >= self.urls.len() {
                return Err(self.exhausted());
            }
        } else {
            self.sleep_before_retry()?;
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
                Err(FetchError::Stopped) => return Err(ImageError::Stopped),
                Err(e) if e.is_refusal() => {
                    let reason = e.to_string();
                    warn!(url = %redact_url(&url), %reason, "image URL refused");
                    self.record(reason, true);
                    self.next_url();
                }
                Err(e) => self.attempt_failed(e.to_string())?,
            }
        }
    }

    fn try_open(&mut self, url: &str) -> Result<Response, FetchError> {
        crate::fetch::client::check_url(url)?;
        let mut req = self.client.get(url);
        if self.pos > 0 {
            req = req.header(RANGE, format!("bytes={}-", self.pos));
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Header(h) => req.header(AUTHORIZATION, h.clone()),
            Auth::Basic(b) => req.basic_auth(&b.user, Some(&b.password)),
        };
        let t = self.policy.timeout;
        let resp = self
            .rt
            .run_for(t, TimeoutPhase::Response, async move { req.send().await })?
            .map_err(|e| FetchError::from_reqwest(e, TimeoutPhase::Response, t))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::from_status(status, resp.headers()));
        }
        if self.pos == 0 {
            if status == StatusCode::PARTIAL_CONTENT {
                return Err(FetchError::Interrupted("unrequested HTTP 206".into()));
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
                    return Err(FetchError::Interrupted(format!(
                        "HTTP 206 with unusable Content-Range `{header}`"
                    )));
                };
                if start != self.pos {
                    return Err(FetchError::Interrupted(format!(
                        "asked to resume at byte {} but the server sent from byte {start}",
                        self.pos
                    )));
                }
                if let (Some(t), Some(known)) = (total, self.total)
                    && t != known
                {
                    return Err(FetchError::Interrupted(format!(
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
                    return Err(FetchError::Interrupted(format!(
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
    fn next_chunk(&mut self) -> Result<Option<Bytes>, FetchError> {
        let Some(resp) = self.resp.as_mut() else {
            return Ok(None);
        };
        let t = self.policy.timeout;
        self.rt
            .run_for(t, TimeoutPhase::Read, resp.chunk())?
            .map_err(|e| FetchError::from_reqwest(e, TimeoutPhase::Read, t))
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
                Err(FetchError::Stopped) => return Err(ImageError::Stopped),
                Err(e) => self.connection_lost(e.to_string())?,
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
    crate::fetch::blocking::on_own_thread("image-http", f)
        .unwrap_or_else(|e| Err(ImageError::Internal(e)))
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
    fn client_settings_take_image_info_proxies() {
        let info = ImageInfo {
            proxies: Some(super::super::info::Proxies {
                http: Some("http://127.0.0.1:3128".into()),
                https: None,
            }),
            no_proxy: Some("127.0.0.1,localhost".into()),
            ..Default::default()
        };
        let s = client_settings(&info, &DownloadOptions::default());
        assert_eq!(s.proxies.http.as_deref(), Some("http://127.0.0.1:3128"));
        assert_eq!(s.proxies.no_proxy.as_deref(), Some("127.0.0.1,localhost"));
        assert_eq!(s.read_timeout, Some(RetryPolicy::default().timeout));
    }
}
