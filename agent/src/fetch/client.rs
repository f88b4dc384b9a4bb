//! The agent's one HTTP client builder.

use reqwest::redirect::{Attempt, Policy};
use reqwest::{NoProxy, Proxy};

use super::error::{FetchError, RedirectRefused};
use super::settings::{ClientSettings, Proxies};

/// Redirects followed before giving up (as browsers and `requests`).
pub const MAX_REDIRECTS: usize = 10;

/// `User-Agent` of every outbound request.
pub const USER_AGENT: &str = concat!("ironic-agent/", env!("CARGO_PKG_VERSION"));

/// Follows redirects to `http(s)://` only, at most [`MAX_REDIRECTS`]. The target URL is never
/// put in the error (it may carry credentials).
fn redirect_policy() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let why = format!("more than {MAX_REDIRECTS} redirects");
            return attempt.error(RedirectRefused(why));
        }
        match attempt.url().scheme() {
            "http" | "https" => attempt.follow(),
            other => {
                let why = format!("the server redirected to a {other}:// URL");
                attempt.error(RedirectRefused(why))
            }
        }
    })
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn env_proxy(names: [&str; 2]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

fn with_proxies(
    mut b: reqwest::ClientBuilder,
    p: &Proxies,
) -> Result<reqwest::ClientBuilder, FetchError> {
    let no_proxy = nonempty(&p.no_proxy);
    // With an explicit no_proxy, the environment's proxies are re-added with it applied (IPA
    // exports no_proxy into its environment); otherwise reqwest reads the environment itself.
    let http = nonempty(&p.http)
        .map(String::from)
        .or_else(|| no_proxy.and_then(|_| env_proxy(["http_proxy", "HTTP_PROXY"])));
    let https = nonempty(&p.https)
        .map(String::from)
        .or_else(|| no_proxy.and_then(|_| env_proxy(["https_proxy", "HTTPS_PROXY"])));
    // The proxy URL is not repeated (it may carry credentials).
    let bad = |e: reqwest::Error| FetchError::Settings(format!("invalid proxy URL: {e}"));
    if let Some(url) = &http {
        let proxy = Proxy::http(url.as_str()).map_err(bad)?;
        b = b.proxy(proxy.no_proxy(no_proxy.and_then(NoProxy::from_string)));
    }
    if let Some(url) = &https {
        let proxy = Proxy::https(url.as_str()).map_err(bad)?;
        b = b.proxy(proxy.no_proxy(no_proxy.and_then(NoProxy::from_string)));
    }
    Ok(b)
}

/// Builds a client: the agent's TLS settings (system roots plus `cafile`, or none with
/// `insecure`; minimum version), proxies, timeouts, `http(s)`-only redirects.
pub fn build(s: &ClientSettings) -> Result<reqwest::Client, FetchError> {
    let identity = s
        .tls
        .client_identity
        .as_ref()
        .map(|i| crate::tls::ClientIdentityFiles {
            certfile: &i.certfile,
            keyfile: &i.keyfile,
        });
    let tls = crate::tls::client_config_with_identity(
        s.tls.insecure,
        s.tls.cafile.as_deref(),
        &s.tls.min_version,
        identity,
    )
    .map_err(|e| FetchError::Settings(format!("outbound TLS settings: {e}")))?;
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(s.connect_timeout)
        .pool_max_idle_per_host(s.max_idle_per_host)
        .redirect(redirect_policy())
        .user_agent(USER_AGENT);
    if let Some(t) = s.read_timeout {
        b = b.read_timeout(t);
    }
    if let Some(t) = s.total_timeout {
        b = b.timeout(t);
    }
    with_proxies(b, &s.proxies)?
        .build()
        .map_err(|e| FetchError::Settings(format!("building the HTTP client: {e}")))
}

/// Refuses anything but an `http(s)://` URL, before any connection is made.
pub fn check_url(url: &str) -> Result<reqwest::Url, FetchError> {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        Ok(u) => Err(FetchError::RefusedScheme {
            scheme: u.scheme().to_string(),
        }),
        Err(e) => Err(FetchError::RefusedScheme {
            scheme: format!("not a URL ({e})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fetch::TlsSettings;

    #[test]
    fn builds_with_proxies_and_refuses_bad_ones() -> Result<(), FetchError> {
        let mut s = ClientSettings::new(TlsSettings::default(), Duration::from_secs(5));
        s.proxies = Proxies {
            http: Some("http://127.0.0.1:3128".into()),
            https: None,
            no_proxy: Some("127.0.0.1,localhost".into()),
        };
        let _tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FetchError::Settings(e.to_string()))?;
        let _g = _tokio.enter();
        build(&s)?;
        s.proxies.http = Some("::not a url::".into());
        assert!(matches!(build(&s), Err(FetchError::Settings(_))));
        Ok(())
    }

    #[test]
    fn only_http_urls() {
        assert!(check_url("https://example.com/x").is_ok());
        for (url, scheme) in [
            ("file:///etc/hostname", "file"),
            ("ftp://127.0.0.1/img", "ftp"),
        ] {
            assert_eq!(
                check_url(url).err(),
                Some(FetchError::RefusedScheme {
                    scheme: scheme.into()
                })
            );
        }
        assert!(
            check_url("/etc/passwd")
                .err()
                .is_some_and(|e| e.is_refusal())
        );
    }
}
