//! The sockets a lookup sends its query through and hears answers on: one per IPv4 address
//! of every multicast-capable interface (bound to it, so Linux sends the multicast out of that
//! interface), one IPv6 socket sending to `ff02::fb` scoped to each interface, or fixed
//! unicast destinations (tests). Answers come back unicast to the sending port (RFC 6762
//! §6.7, "legacy unicast": our source port is not 5353).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use nix::net::if_::InterfaceFlags;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::Destinations;

/// The mDNS IPv4 group and port.
pub const MDNS_V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353);
/// The mDNS IPv6 group.
pub const MDNS_V6_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);

/// Largest datagram read.
const MAX_DATAGRAM: usize = 9000;

/// Open sockets with their destinations and the reader tasks feeding `rx`.
pub struct Transport {
    sends: Vec<(Arc<UdpSocket>, SocketAddr)>,
    rx: mpsc::Receiver<Vec<u8>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// (bind address, destination) pairs for `dest`.
fn plan(dest: &Destinations) -> Vec<(SocketAddr, SocketAddr)> {
    let any4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    match dest {
        Destinations::Unicast(targets) => targets
            .iter()
            .map(|t| (if t.is_ipv4() { any4 } else { any6 }, *t))
            .collect(),
        Destinations::Multicast { interfaces } if !interfaces.is_empty() => interfaces
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(_) => (SocketAddr::new(*ip, 0), MDNS_V4),
                IpAddr::V6(_) => (
                    SocketAddr::new(*ip, 0),
                    SocketAddr::V6(SocketAddrV6::new(MDNS_V6_GROUP, 5353, 0, 0)),
                ),
            })
            .collect(),
        Destinations::Multicast { .. } => {
            let mut pairs = all_interfaces();
            if pairs.is_empty() {
                pairs.push((any4, MDNS_V4));
            }
            pairs
        }
    }
}

/// Every up, multicast-capable, non-loopback interface: its IPv4 addresses, and `ff02::fb`
/// scoped to it when it has IPv6.
fn all_interfaces() -> Vec<(SocketAddr, SocketAddr)> {
    let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let mut pairs = Vec::new();
    let addrs = match nix::ifaddrs::getifaddrs() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot list interface addresses for mDNS");
            return pairs;
        }
    };
    let mut v6_done = Vec::new();
    for ifa in addrs {
        let wanted = ifa
            .flags
            .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_MULTICAST)
            && !ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let Some(addr) = ifa.address.filter(|_| wanted) else {
            continue;
        };
        if let Some(v4) = addr.as_sockaddr_in() {
            pairs.push((SocketAddr::new(IpAddr::V4(v4.ip()), 0), MDNS_V4));
        } else if addr.as_sockaddr_in6().is_some() && !v6_done.contains(&ifa.interface_name) {
            match nix::net::if_::if_nametoindex(ifa.interface_name.as_str()) {
                Ok(index) => pairs.push((
                    any6,
                    SocketAddr::V6(SocketAddrV6::new(MDNS_V6_GROUP, 5353, 0, index)),
                )),
                Err(e) => debug!(interface = %ifa.interface_name, error = %e, "no index"),
            }
            v6_done.push(ifa.interface_name.clone());
        }
    }
    pairs
}

impl Transport {
    /// Opens the sockets for `dest`; a socket that cannot be opened is logged and skipped.
    ///
    /// # Errors
    /// When no socket at all could be opened.
    pub async fn open(dest: &Destinations) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(64);
        let mut sockets: Vec<(SocketAddr, Arc<UdpSocket>)> = Vec::new();
        let mut sends = Vec::new();
        let mut last_err = None;
        for (bind, to) in plan(dest) {
            let sock = match sockets.iter().find(|(b, _)| *b == bind) {
                Some((_, s)) => s.clone(),
                None => match UdpSocket::bind(bind).await {
                    Ok(s) => {
                        if let Err(e) = s.set_multicast_ttl_v4(255) {
                            debug!(error = %e, "multicast TTL not set");
                        }
                        let s = Arc::new(s);
                        sockets.push((bind, s.clone()));
                        s
                    }
                    Err(e) => {
                        warn!(%bind, error = %e, "cannot open an mDNS socket");
                        last_err = Some(e);
                        continue;
                    }
                },
            };
            sends.push((sock, to));
        }
        if sends.is_empty() {
            return Err(last_err.unwrap_or_else(|| io::Error::other("no interface for mDNS")));
        }
        let readers = sockets
            .into_iter()
            .map(|(_, s)| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; MAX_DATAGRAM];
                    while let Ok((n, from)) = s.recv_from(&mut buf).await {
                        debug!(%from, bytes = n, "mDNS answer");
                        if tx.send(buf[..n].to_vec()).await.is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Ok(Self { sends, rx, readers })
    }

    /// Sends `packet` to every destination; failures are logged.
    pub async fn send(&self, packet: &[u8]) {
        for (sock, to) in &self.sends {
            if let Err(e) = sock.send_to(packet, to).await {
                debug!(%to, error = %e, "mDNS query not sent");
            }
        }
    }

    /// The next datagram, or `None` at `until`.
    pub async fn recv(&mut self, until: tokio::time::Instant) -> Option<Vec<u8>> {
        tokio::time::timeout_at(until, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_without_sending() {
        let to: SocketAddr = "127.0.0.1:5353".parse().expect("addr");
        assert_eq!(
            plan(&Destinations::Unicast(vec![to])),
            [(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), to)]
        );
        let v4: IpAddr = "192.0.2.5".parse().expect("ip");
        let v6: IpAddr = "2001:db8::5".parse().expect("ip");
        let p = plan(&Destinations::Multicast {
            interfaces: vec![v4, v6],
        });
        assert_eq!(p[0], (SocketAddr::new(v4, 0), MDNS_V4));
        assert_eq!(p[1].1.ip(), IpAddr::V6(MDNS_V6_GROUP));
        // Every interface found on this machine is multicast-capable and not loopback.
        for (bind, to) in all_interfaces() {
            assert!(!bind.ip().is_loopback());
            assert_eq!(to.port(), 5353);
        }
    }
}
