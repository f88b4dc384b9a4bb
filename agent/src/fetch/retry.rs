//! IPA's retry settings, the only retry layer of a download.

use std::time::Duration;

/// `image_download_connection_timeout` / `_retries` / `_retry_interval`: each attempt waits at
/// most `timeout` for a connection, for the response and between two reads; a failure that may
/// pass (connection error, timeout, 5xx) is retried `retries` times, `interval` apart. So a
/// server that never answers fails after about `(retries + 1) · (timeout + interval)`.
/// Refusals (4xx, a scheme or redirect that is not `http(s)`, a certificate that does not
/// verify) are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Per-wait timeout (IPA: 60 s).
    pub timeout: Duration,
    /// Retries after the first attempt (IPA: 9).
    pub retries: u32,
    /// Pause between attempts (IPA: 10 s).
    pub interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(60),
            retries: 9,
            interval: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy with one attempt only.
    pub fn once(timeout: Duration) -> Self {
        RetryPolicy {
            timeout,
            retries: 0,
            interval: Duration::ZERO,
        }
    }

    /// Attempts in all (`retries + 1`).
    pub fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_defaults() {
        let p = RetryPolicy::default();
        assert_eq!(
            (p.timeout, p.retries, p.interval),
            (Duration::from_secs(60), 9, Duration::from_secs(10))
        );
        assert_eq!(p.attempts(), 10);
        assert_eq!(RetryPolicy::once(p.timeout).attempts(), 1);
    }
}
