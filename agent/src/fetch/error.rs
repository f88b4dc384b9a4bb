//! Why a fetch failed, classified once: refused (never retried), may pass (retried by the
//! [`super::RetryPolicy`]), or stopped.

use std::time::Duration;

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Connecting (TCP, TLS).
    Connect,
    /// Waiting for the response headers.
    Response,
    /// Waiting for the next bytes of the body.
    Read,
}

/// Why the client's redirect policy did not follow a redirect (found again in the error's
/// causes by [`FetchError::from_reqwest`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RedirectRefused(pub(crate) String);

/// A failed fetch. The text never contains the URL (callers name it, redacted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an `http(s)://` URL, or not a URL at all.
    #[error("only http:// and https:// URLs can be downloaded, not `{scheme}`")]
    RefusedScheme {
        /// The scheme given (or what stood in its place).
        scheme: String,
    },
    /// A redirect to something other than `http(s)://`, or too many redirects.
    #[error("refused redirect: {0}")]
    RefusedRedirect(String),
    /// The server's certificate did not verify (the text names the ways out).
    #[error("{0}")]
    Certificate(String),
    /// The server answered with a status other than 2xx.
    #[error("HTTP {}", status_text(*.0))]
    Status(u16),
    /// A wait ran out.
    #[error("{}", timeout_text(*phase, *after))]
    Timeout {
        /// Which wait.
        phase: TimeoutPhase,
        /// Its limit.
        after: Duration,
    },
    /// The connection could not be made or broke before the response.
    #[error("{0}")]
    Connection(String),
    /// The body broke off (connection reset, closed before `Content-Length`).
    #[error("{0}")]
    Interrupted(String),
    /// More than the caller's size bound.
    #[error("the content is larger than {limit} bytes ({size} announced or received)")]
    TooLarge {
        /// The announced length, or the bytes received when reading stopped.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// The client could not be built (CA file, proxy URL).
    #[error("{0}")]
    Settings(String),
    /// The agent is shutting down.
    #[error("the agent is shutting down")]
    Stopped,
}

fn status_text(code: u16) -> String {
    reqwest::StatusCode::from_u16(code).map_or_else(|_| code.to_string(), |s| s.to_string())
}

fn timeout_text(phase: TimeoutPhase, after: Duration) -> String {
    let s = after.as_secs_f64();
    match phase {
        TimeoutPhase::Connect => format!("no connection within {s} s"),
        TimeoutPhase::Response => format!("no response within {s} s"),
        TimeoutPhase::Read => format!("no data for {s} s"),
    }
}

impl FetchError {
    /// Whether this URL can never work as given: 4xx, a refused scheme or redirect, a
    /// certificate that does not verify, a size over the bound, unusable settings.
    pub fn is_refusal(&self) -> bool {
        match self {
            FetchError::RefusedScheme { .. }
            | FetchError::RefusedRedirect(_)
            | FetchError::Certificate(_)
            | FetchError::TooLarge { .. }
            | FetchError::Settings(_) => true,
            FetchError::Status(code) => (400..500).contains(code),
            _ => false,
        }
    }

    /// Whether another attempt may succeed (connection errors, timeouts, broken bodies,
    /// statuses other than 2xx and 4xx).
    pub fn is_retryable(&self) -> bool {
        !self.is_refusal() && *self != FetchError::Stopped
    }

    /// Classifies a status other than 2xx. A redirection reaches the caller only when it was
    /// not followed (a `Location` that is not `http(s)://`, or none): refused.
    pub fn from_status(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap) -> Self {
        if !status.is_redirection() {
            return FetchError::Status(status.as_u16());
        }
        let to = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| reqwest::Url::parse(l).ok());
        FetchError::RefusedRedirect(match to {
            // The target URL itself is not repeated (it may carry credentials).
            Some(u) => format!(
                "HTTP {status}: the server redirected to a {}:// URL",
                u.scheme()
            ),
            None => format!("HTTP {status} without a usable Location"),
        })
    }

    /// Classifies a client error (`phase`: what the request was waiting for).
    pub fn from_reqwest(e: reqwest::Error, phase: TimeoutPhase, timeout: Duration) -> Self {
        let e = e.without_url();
        let e = &e;
        if let Some(r) = sources(e).find_map(|c| c.downcast_ref::<RedirectRefused>()) {
            return FetchError::RefusedRedirect(r.0.clone());
        }
        if e.is_redirect() {
            return FetchError::RefusedRedirect(crate::tls::describe_error(e));
        }
        if crate::tls::is_certificate_error(e) {
            return FetchError::Certificate(crate::tls::describe_error(e));
        }
        if e.is_builder() {
            return FetchError::Settings(crate::tls::describe_error(e));
        }
        if e.is_timeout() {
            let phase = if e.is_connect() {
                TimeoutPhase::Connect
            } else {
                phase
            };
            return FetchError::Timeout {
                phase,
                after: timeout,
            };
        }
        if e.is_body() || e.is_decode() || phase == TimeoutPhase::Read {
            return FetchError::Interrupted(crate::tls::describe_error(e));
        }
        FetchError::Connection(crate::tls::describe_error(e))
    }
}

/// `e` and its causes, at most 16 deep.
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| c.source()).take(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(FetchError::Status(404).is_refusal());
        assert!(FetchError::Status(503).is_retryable());
        assert!(FetchError::Status(304).is_retryable());
        assert!(
            FetchError::RefusedScheme {
                scheme: "file".into()
            }
            .is_refusal()
        );
        assert!(!FetchError::Stopped.is_retryable());
        assert!(!FetchError::Stopped.is_refusal());
        let t = FetchError::Timeout {
            phase: TimeoutPhase::Read,
            after: Duration::from_millis(1500),
        };
        assert!(t.is_retryable());
        assert_eq!(t.to_string(), "no data for 1.5 s");
        assert_eq!(FetchError::Status(404).to_string(), "HTTP 404 Not Found");
    }
}
