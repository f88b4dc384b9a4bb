//! From a resolved service (SRV, TXT, addresses) to IPA's endpoint URL and its TXT
//! properties, the way IPA's `mdns.get_endpoint` builds them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use tracing::{debug, warn};

use super::MdnsError;
use super::message::Name;

/// What a lookup found for one service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// SRV target host.
    pub server: Name,
    /// SRV port.
    pub port: u16,
    /// TXT strings.
    pub txt: Vec<Vec<u8>>,
    /// Addresses of `server` (IPv4 first, then IPv6, each in arrival order).
    pub addresses: Vec<IpAddr>,
}

/// The discovered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `protocol://host:port[path]`.
    pub url: String,
    /// The TXT properties but `path` and `protocol`; a key without `=` has no value.
    pub properties: BTreeMap<String, Option<String>>,
}

/// One configuration override from a TXT `ipa_<option>=<value>` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The option name without `ipa_` (`ntp_server`).
    pub option: String,
    /// Its value.
    pub value: String,
}

impl Override {
    /// The kernel parameter spelling of the option (`ipa-ntp-server`).
    pub fn kernel_param(&self) -> String {
        format!("ipa-{}", self.option.replace('_', "-"))
    }
}

/// IPA's default `[mdns] allowed_overrides`.
pub const DEFAULT_ALLOWED_OVERRIDES: &[&str] = &["inspection_callback_url", "ntp_server"];

impl Endpoint {
    /// The `ipa_*` properties as overrides, as IPA's `config.override`: other keys are skipped
    /// with a warning, and so are options not in `allowed` (`None` allows all; IPA's default is
    /// [`DEFAULT_ALLOWED_OVERRIDES`]). A key without a value is skipped too.
    pub fn overrides(&self, allowed: Option<&[&str]>) -> Vec<Override> {
        let mut out = Vec::new();
        for (key, value) in &self.properties {
            let Some(option) = key.strip_prefix("ipa_") else {
                warn!(%key, "skipping unknown configuration option from mDNS");
                continue;
            };
            if allowed.is_some_and(|a| !a.contains(&option)) {
                warn!(%option, "skipping configuration option from mDNS: not allowed");
                continue;
            }
            let Some(value) = value else {
                warn!(%option, "skipping configuration option from mDNS without a value");
                continue;
            };
            out.push(Override {
                option: option.to_string(),
                value: value.clone(),
            });
        }
        out
    }
}

/// `url` without trailing slashes plus `/v1/continue`: the inspection callback IPA derives
/// from the `baremetal-introspection` endpoint (`ipa-inspection-callback-url=mdns`).
pub fn inspection_callback_url(url: &str) -> String {
    format!("{}/v1/continue", url.trim_end_matches('/'))
}

/// TXT strings as properties: `key=value` (split at the first `=`), `key` alone has no
/// value, the first of duplicate keys wins, empty strings are ignored. A value that is not
/// UTF-8 is kept lossily.
fn properties(
    service: &str,
    txt: &[Vec<u8>],
) -> Result<BTreeMap<String, Option<String>>, MdnsError> {
    let mut props = BTreeMap::new();
    for s in txt.iter().filter(|s| !s.is_empty()) {
        let (key, value) = match s.iter().position(|&b| b == b'=') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (&s[..], None),
        };
        let key = std::str::from_utf8(key).map_err(|e| {
            MdnsError::BadProperties(format!("service {service}: cannot decode key {key:?}: {e}"))
        })?;
        let value = value.map(|v| String::from_utf8_lossy(v).into_owned());
        props.entry(key.to_string()).or_insert(value);
    }
    Ok(props)
}

/// Builds the endpoint as IPA does: the first non-loopback address (when `skip_loopback`)
/// that has a route (`routable`), else the first valid one with a warning; protocol from TXT
/// `protocol`, else `http` on port 80 and `https` otherwise; host the address (IPv6 in
/// brackets) when the SRV target is in `.local`, else the target's name; the SRV port; TXT
/// `path` appended as is.
///
/// # Errors
/// [`MdnsError::NoValidAddress`], [`MdnsError::BadProperties`].
pub fn build(
    service: &str,
    info: &ServiceInfo,
    skip_loopback: bool,
    routable: impl Fn(IpAddr) -> bool,
) -> Result<Endpoint, MdnsError> {
    let mut chosen = None;
    let mut fallback = None;
    for &addr in &info.addresses {
        if skip_loopback && addr.is_loopback() {
            debug!(%addr, "skipping loopback address");
            continue;
        }
        if routable(addr) {
            chosen = Some(addr);
            break;
        }
        fallback.get_or_insert(addr);
    }
    let address = match (chosen, fallback) {
        (Some(a), _) => a,
        (None, Some(f)) => {
            warn!(addresses = ?info.addresses, using = %f, "no address of the service seems routable");
            f
        }
        (None, None) => {
            return Err(MdnsError::NoValidAddress {
                service: service.to_string(),
                addresses: info.addresses.clone(),
            });
        }
    };
    let mut properties = properties(service, &info.txt)?;
    let path = properties.remove("path").flatten().unwrap_or_default();
    let protocol = match properties.remove("protocol").flatten() {
        Some(p) if !p.is_empty() => p,
        _ if info.port == 80 => "http".to_string(),
        _ => "https".to_string(),
    };
    let server = info.server.to_string();
    let host = if server.to_ascii_lowercase().ends_with(".local.") {
        match address {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        }
    } else {
        server.trim_end_matches('.').to_string()
    };
    Ok(Endpoint {
        url: format!("{protocol}://{host}:{}{path}", info.port),
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(server: &str, port: u16, txt: &[&str], addrs: &[&str]) -> ServiceInfo {
        ServiceInfo {
            server: Name::parse(server),
            port,
            txt: txt.iter().map(|s| s.as_bytes().to_vec()).collect(),
            addresses: addrs.iter().filter_map(|a| a.parse().ok()).collect(),
        }
    }

    #[test]
    fn url_from_local_address_path_and_protocol() -> Result<(), MdnsError> {
        let e = build(
            "baremetal",
            &info(
                "ironic.local.",
                6385,
                &[
                    "path=/baremetal",
                    "protocol=http",
                    "ipa_ntp_server=192.0.2.1",
                    "x",
                ],
                &["127.0.0.1", "192.0.2.10", "192.0.2.11"],
            ),
            true,
            |_| true,
        )?;
        assert_eq!(e.url, "http://192.0.2.10:6385/baremetal");
        assert_eq!(e.properties.len(), 2);
        assert_eq!(e.properties.get("x"), Some(&None));
        Ok(())
    }

    #[test]
    fn protocol_defaults_by_port_and_ipv6_is_bracketed() -> Result<(), MdnsError> {
        let v6 = info("h.local", 80, &[], &["2001:db8::10"]);
        assert_eq!(
            build("b", &v6, true, |_| true)?.url,
            "http://[2001:db8::10]:80"
        );
        let v6 = info("h.local", 6385, &["protocol="], &["2001:db8::10"]);
        assert_eq!(
            build("b", &v6, true, |_| false)?.url,
            "https://[2001:db8::10]:6385"
        );
        Ok(())
    }

    #[test]
    fn named_server_and_fallback_address() -> Result<(), MdnsError> {
        let named = info(
            "ironic.example.com.",
            443,
            &["path=/v1"],
            &["192.0.2.9", "192.0.2.8"],
        );
        let e = build("b", &named, true, |ip| ip.to_string() == "192.0.2.8")?;
        assert_eq!(e.url, "https://ironic.example.com:443/v1");
        let only_loopback = info("h.local", 80, &[], &["127.0.0.1", "::1"]);
        assert!(matches!(
            build("b", &only_loopback, true, |_| true),
            Err(MdnsError::NoValidAddress { .. })
        ));
        assert_eq!(
            build("b", &only_loopback, false, |_| false)?.url,
            "http://127.0.0.1:80"
        );
        Ok(())
    }

    #[test]
    fn bad_key_is_an_error_duplicates_keep_the_first() {
        let mut i = info("h.local", 80, &["a=1", "a=2"], &["192.0.2.1"]);
        let e = build("b", &i, true, |_| true).expect("ok");
        assert_eq!(e.properties.get("a"), Some(&Some("1".into())));
        i.txt.push(vec![0xff, b'=', b'1']);
        assert!(matches!(
            build("b", &i, true, |_| true),
            Err(MdnsError::BadProperties(_))
        ));
    }

    #[test]
    fn overrides_follow_the_allowed_list() {
        let e = Endpoint {
            url: String::new(),
            properties: [
                ("ipa_ntp_server", Some("192.0.2.1")),
                ("ipa_inspection_callback_url", Some("http://x/v1/continue")),
                ("ipa_api_url", Some("http://evil")),
                ("ipa_flag", None),
                ("other", Some("1")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect(),
        };
        let o = e.overrides(Some(DEFAULT_ALLOWED_OVERRIDES));
        let names: Vec<String> = o.iter().map(Override::kernel_param).collect();
        assert_eq!(names, ["ipa-inspection-callback-url", "ipa-ntp-server"]);
        assert_eq!(e.overrides(None).len(), 3);
        assert!(e.overrides(Some(&[])).is_empty());
        assert_eq!(
            inspection_callback_url("http://192.0.2.1:5050/"),
            "http://192.0.2.1:5050/v1/continue"
        );
    }
}
