//! Choosing the address put into the callback URL.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use tracing::{debug, info};

/// Errors choosing an advertise address.
#[derive(Debug, thiserror::Error)]
#[error("cannot find a routable address towards the conductor ({0}); set ipa-advertise-host")]
pub struct AdvertiseError(String);

/// The source address the kernel would use to reach `target` (what `ip route get` prints after
/// `src`). No packet is sent: connecting a UDP socket only selects the route.
pub fn route_source(target: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if target.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .ok()?;
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(SocketAddr::new(target, 9)).ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The host and port parts of an `http(s)://host[:port]/...` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.trim_matches(['[', ']']).to_string();
    Some((host, parsed.port_or_known_default()?))
}

/// Finds the address towards the first reachable API URL, in up to `attempts` rounds spaced
/// by `sleep` (IPA's `ip_lookup_attempts` / `ip_lookup_sleep`).
pub async fn find(
    api_urls: &[String],
    attempts: u32,
    sleep: Duration,
) -> Result<IpAddr, AdvertiseError> {
    let mut last = String::from("no API URL");
    for round in 0..attempts.max(1) {
        for url in api_urls {
            let Some((host, port)) = host_port(url) else {
                last = format!("cannot parse {url}");
                continue;
            };
            let targets: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => {
                    let h = host.clone();
                    tokio::task::spawn_blocking(move || {
                        (h.as_str(), port)
                            .to_socket_addrs()
                            .map(|a| a.map(|s| s.ip()).collect())
                            .unwrap_or_default()
                    })
                    .await
                    .unwrap_or_default()
                }
            };
            for target in targets {
                match route_source(target) {
                    Some(ip) if !is_link_local(&ip) => {
                        info!(%ip, towards = %target, "advertise address chosen by route");
                        return Ok(ip);
                    }
                    other => {
                        debug!(towards = %target, source = ?other, "no usable source address");
                        last = format!("no route source towards {target}");
                    }
                }
            }
        }
        if round + 1 < attempts {
            tokio::time::sleep(sleep).await;
        }
    }
    Err(AdvertiseError(last))
}

/// `scheme://host:port`, with IPv6 literals in brackets.
pub fn callback_url(scheme: &str, host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_to_loopback() {
        assert_eq!(
            route_source("127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            callback_url("https", "fd00::2", 9999),
            "https://[fd00::2]:9999"
        );
        assert_eq!(
            callback_url("http", "10.0.0.5", 9999),
            "http://10.0.0.5:9999"
        );
        assert_eq!(
            host_port("http://[::1]:6385/x"),
            Some(("::1".to_string(), 6385))
        );
        assert_eq!(
            host_port("https://ironic.example"),
            Some(("ironic.example".to_string(), 443))
        );
    }

    #[tokio::test]
    async fn finds_loopback_for_local_conductor() -> anyhow::Result<()> {
        let ip = find(&["http://127.0.0.1:6385".to_string()], 1, Duration::ZERO).await?;
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
        Ok(())
    }
}
