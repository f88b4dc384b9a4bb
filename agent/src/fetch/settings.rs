//! What a client is built from: TLS, proxies, timeouts.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The agent's outbound TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Skip certificate verification (`ipa-insecure`, `--insecure`).
    pub insecure: bool,
    /// Extra CA bundle added to the system roots (`--cafile`).
    pub cafile: Option<PathBuf>,
    /// Lowest TLS version (`1.2` or `1.3`).
    pub min_version: String,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            insecure: false,
            cafile: None,
            min_version: "1.2".into(),
        }
    }
}

impl TlsSettings {
    /// The configuration's `insecure` and `cafile`, TLS 1.2 or later.
    pub fn from_config(config: &crate::config::Config) -> Self {
        TlsSettings {
            insecure: config.insecure,
            cafile: config.cafile.clone(),
            ..TlsSettings::default()
        }
    }
}

/// Proxies for one client (`image_info`'s `proxies` and `no_proxy`). Unset: the environment's
/// `http_proxy`/`https_proxy`/`no_proxy` apply.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// Proxy for `http://` URLs.
    pub http: Option<String>,
    /// Proxy for `https://` URLs.
    pub https: Option<String>,
    /// Hosts reached directly (comma-separated, as `no_proxy`).
    pub no_proxy: Option<String>,
}

impl fmt::Debug for Proxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Proxy URLs may carry credentials.
        let set = |p: &Option<String>| p.as_ref().map(|_| "<set>");
        f.debug_struct("Proxies")
            .field("http", &set(&self.http))
            .field("https", &set(&self.https))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// Everything [`super::client::build`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// TLS.
    pub tls: TlsSettings,
    /// Proxies.
    pub proxies: Proxies,
    /// Longest wait for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest gap between two reads of a response, if any.
    pub read_timeout: Option<Duration>,
    /// Longest whole request (response and body), if any.
    pub total_timeout: Option<Duration>,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
}

impl ClientSettings {
    /// Settings with `tls`, no explicit proxy, `timeout` for connecting and for the whole
    /// request.
    pub fn new(tls: TlsSettings, timeout: Duration) -> Self {
        ClientSettings {
            tls,
            proxies: Proxies::default(),
            connect_timeout: timeout,
            read_timeout: None,
            total_timeout: Some(timeout),
            max_idle_per_host: 1,
        }
    }
}
