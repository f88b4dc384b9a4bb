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

    /// The policy from IPA's kernel parameters (`ipa-image-download-connection-timeout`,
    /// `-retries`, `-retry-interval`, whole seconds), defaults for those absent or unparsable.
    pub fn from_kernel_params(get: impl Fn(&str) -> Option<String>) -> Self {
        let secs = |key: &str| get(key).and_then(|v| v.trim().parse::<u64>().ok());
        let mut p = RetryPolicy::default();
        if let Some(t) = secs("ipa-image-download-connection-timeout") {
            p.timeout = Duration::from_secs(t.max(1));
        }
        if let Some(r) = secs("ipa-image-download-connection-retries") {
            p.retries = u32::try_from(r).unwrap_or(u32::MAX);
        }
        if let Some(i) = secs("ipa-image-download-connection-retry-interval") {
            p.interval = Duration::from_secs(i);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_params_and_defaults() {
        let p = RetryPolicy::from_kernel_params(|k| match k {
            "ipa-image-download-connection-timeout" => Some("0".into()),
            "ipa-image-download-connection-retries" => Some("2".into()),
            "ipa-image-download-connection-retry-interval" => Some("x".into()),
            _ => None,
        });
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.retries, 2);
        assert_eq!(p.interval, Duration::from_secs(10));
        assert_eq!(p.attempts(), 3);
        assert_eq!(
            RetryPolicy::from_kernel_params(|_| None),
            RetryPolicy::default()
        );
    }
}
