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
    /// Client certificate presented to servers that ask (IPA's `certfile`/`keyfile`).
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate (chain).
    pub certfile: PathBuf,
    /// The private key.
    pub keyfile: PathBuf,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            insecure: false,
            cafile: None,
            min_version: "1.2".into(),
            client_identity: None,
        }
    }
}

impl TlsSettings {
    /// The configuration's `insecure` and `cafile`, TLS 1.2 or later, no client certificate.
    pub fn from_config(config: &crate::config::Config) -> Self {
        TlsSettings {
            insecure: config.insecure,
            cafile: config.cafile.clone(),
            ..TlsSettings::default()
        }
    }

    /// [`TlsSettings::from_config`] with the configuration's client certificate when both
    /// `certfile` and `keyfile` are set (IPA ignores one without the other): for the Ironic
    /// API and inspection endpoints, as IPA's `get_ssl_client_options`.
    pub fn for_ironic(config: &crate::config::Config) -> Self {
        let client_identity = match (&config.certfile, &config.keyfile) {
            (Some(c), Some(k)) => Some(ClientIdentity {
                certfile: c.clone(),
                keyfile: k.clone(),
            }),
            _ => None,
        };
        TlsSettings {
            client_identity,
            ..TlsSettings::from_config(config)
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{ConfValues, Config, Flags, KernelParams};

    #[test]
    fn client_identity_only_with_both_files() -> anyhow::Result<()> {
        let flags = Flags::parse_from(["ironic-agent"]);
        let with = |text: &str| -> anyhow::Result<TlsSettings> {
            let mut conf = ConfValues::default();
            conf.apply(std::path::Path::new("/t.conf"), text, &mut Vec::new())?;
            let config = Config::from_sources(&flags, KernelParams::parse(""), &conf)?;
            Ok(TlsSettings::for_ironic(&config))
        };
        let both = with("[DEFAULT]\ncertfile = /c.pem\nkeyfile = /k.pem\n")?;
        assert_eq!(
            both.client_identity,
            Some(ClientIdentity {
                certfile: "/c.pem".into(),
                keyfile: "/k.pem".into()
            })
        );
        assert_eq!(
            with("[DEFAULT]\ncertfile = /c.pem\n")?.client_identity,
            None
        );
        Ok(())
    }
}
