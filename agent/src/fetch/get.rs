//! A bounded GET into memory (a config drive, `inject_files` contents): retried by the
//! [`RetryPolicy`], refusals fail at once, never more than `limit` bytes.

use tokio::sync::watch;
use tracing::warn;

use super::blocking::{Blocking, on_own_thread};
use super::client::check_url;
use super::error::{FetchError, TimeoutPhase};
use super::retry::RetryPolicy;
use super::settings::ClientSettings;

/// Downloads `url` (at most `limit` bytes) with `client` settings. Failures that may pass are
/// retried per `retry` (each attempt also bounded by `retry.timeout` per wait); refusals are
/// not. Blocking; callable from inside an async runtime's blocking thread.
pub fn get_bytes(
    url: &str,
    client: &ClientSettings,
    retry: &RetryPolicy,
    limit: u64,
    stop: Option<watch::Receiver<bool>>,
) -> Result<Vec<u8>, FetchError> {
    check_url(url)?;
    on_own_thread("http-get", || {
        let b = Blocking::new(stop)?;
        let c = b.client(client)?;
        let attempts = retry.attempts();
        let mut attempt = 1;
        // Bounded by `attempts`.
        loop {
            match get_once(&b, &c, url, retry, limit) {
                Err(e) if e.is_retryable() && attempt < attempts => {
                    warn!(error = %e, attempt, of = attempts, "download failed; retrying");
                    attempt += 1;
                    b.pause(retry.interval)?;
                }
                other => return other,
            }
        }
    })
    .map_err(FetchError::Connection)?
}

fn get_once(
    b: &Blocking,
    c: &reqwest::Client,
    url: &str,
    retry: &RetryPolicy,
    limit: u64,
) -> Result<Vec<u8>, FetchError> {
    let t = retry.timeout;
    let mut resp = b
        .run_for(t, TimeoutPhase::Response, async { c.get(url).send().await })?
        .map_err(|e| FetchError::from_reqwest(e, TimeoutPhase::Response, t))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::from_status(status, resp.headers()));
    }
    if let Some(size) = resp.content_length().filter(|l| *l > limit) {
        return Err(FetchError::TooLarge { size, limit });
    }
    let mut body = Vec::new();
    // Bounded by `limit`.
    while let Some(chunk) = b
        .run_for(t, TimeoutPhase::Read, resp.chunk())?
        .map_err(|e| FetchError::from_reqwest(e, TimeoutPhase::Read, t))?
    {
        let size = (body.len() + chunk.len()) as u64;
        if size > limit {
            return Err(FetchError::TooLarge { size, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::fetch::TlsSettings;

    fn settings() -> ClientSettings {
        ClientSettings::new(TlsSettings::default(), Duration::from_secs(5))
    }

    #[test]
    fn bounded_and_classified() -> anyhow::Result<()> {
        let base = crate::testutil::serve_routes(HashMap::from([
            ("/small", (200, b"hello".to_vec())),
            ("/big", (200, vec![7u8; 5000])),
            ("/gone", (404, b"no".to_vec())),
        ]))?;
        let once = RetryPolicy::once(Duration::from_secs(5));
        let get = |p: &str| get_bytes(&format!("{base}{p}"), &settings(), &once, 1000, None);
        assert_eq!(get("/small")?, b"hello");
        assert_eq!(
            get("/big").err(),
            Some(FetchError::TooLarge {
                size: 5000,
                limit: 1000
            })
        );
        assert_eq!(get("/gone").err(), Some(FetchError::Status(404)));
        Ok(())
    }

    #[test]
    fn refused_schemes_and_redirects_fail_at_once() -> anyhow::Result<()> {
        let slow = RetryPolicy {
            timeout: Duration::from_secs(5),
            retries: 5,
            interval: Duration::from_secs(5),
        };
        let started = Instant::now();
        for url in ["file:///etc/hostname", "ftp://127.0.0.1/x"] {
            let e = get_bytes(url, &settings(), &slow, 1000, None).err();
            assert!(
                matches!(e, Some(FetchError::RefusedScheme { .. })),
                "{url}: {e:?}"
            );
        }
        let to_file = crate::testutil::raw_server(
            "HTTP/1.1 302 Found\r\nLocation: file:///etc/hostname\r\nContent-Length: 0\r\n\r\n"
                .into(),
            Duration::ZERO,
        )?
        .0;
        let e = get_bytes(&to_file, &settings(), &slow, 1000, None).err();
        assert!(
            matches!(&e, Some(FetchError::RefusedRedirect(m)) if m.contains("file://")),
            "{e:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        Ok(())
    }

    #[test]
    fn a_stalled_body_times_out_within_the_policy() -> anyhow::Result<()> {
        let url = crate::testutil::raw_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".into(),
            Duration::from_secs(30),
        )?
        .0;
        let p = RetryPolicy {
            timeout: Duration::from_millis(500),
            retries: 1,
            interval: Duration::from_millis(200),
        };
        let started = Instant::now();
        let e = get_bytes(&url, &settings(), &p, 1000, None).err();
        assert_eq!(
            e,
            Some(FetchError::Timeout {
                phase: TimeoutPhase::Read,
                after: p.timeout
            })
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        Ok(())
    }

    #[test]
    fn a_shutdown_ends_the_wait() -> anyhow::Result<()> {
        let url = crate::testutil::raw_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".into(),
            Duration::from_secs(30),
        )?
        .0;
        let shutdown = crate::shutdown::Shutdown::default();
        let s = shutdown.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            s.request();
        });
        let p = RetryPolicy::once(Duration::from_secs(20));
        let started = Instant::now();
        let e = get_bytes(&url, &settings(), &p, 1000, Some(shutdown.subscribe())).err();
        assert_eq!(e, Some(FetchError::Stopped));
        assert!(started.elapsed() < Duration::from_secs(5));
        Ok(())
    }
}
