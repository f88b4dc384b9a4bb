//! IP addresses of the network interfaces.
//!
//! On the real system they come from `getifaddrs(3)`. Under a fake root (tests) they come from
//! the optional text file `<root>/ifaddrs`, one `<interface> <address>` pair per line, in the
//! order `getifaddrs` would report them.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::SockaddrStorage;
use tracing::debug;

/// The addresses of one interface, in the order the system reported them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct InterfaceAddrs {
    /// IPv4 addresses.
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub v6: Vec<Ipv6Addr>,
}

impl InterfaceAddrs {
    fn push(&mut self, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => self.v4.push(a),
            IpAddr::V6(a) => self.v6.push(a),
        }
    }

    /// The first IPv4 address, as text.
    pub fn ipv4(&self) -> Option<String> {
        self.v4.first().map(|a| a.to_string())
    }

    /// The first non-link-local IPv6 address, else the first link-local one as `addr%ifname`.
    pub fn ipv6(&self, ifname: &str) -> Option<String> {
        if let Some(global) = self.v6.iter().find(|a| !is_link_local(a)) {
            return Some(global.to_string());
        }
        self.v6.first().map(|a| format!("{a}%{ifname}"))
    }
}

/// `fe80::/10`.
fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// Addresses by interface name from `<root>/ifaddrs`; empty when the file is absent.
pub(crate) fn from_file(path: &Path) -> HashMap<String, InterfaceAddrs> {
    let mut out: HashMap<String, InterfaceAddrs> = HashMap::new();
    let Ok(text) = fs::read_to_string(path) else {
        return out;
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(addr)) = (words.next(), words.next()) else {
            continue;
        };
        match addr.parse::<IpAddr>() {
            Ok(addr) => out.entry(name.to_string()).or_default().push(addr),
            Err(_) => debug!(line, "ignoring malformed ifaddrs line"),
        }
    }
    out
}

/// Addresses by interface name from `getifaddrs(3)`; empty if the call fails.
pub(crate) fn from_system() -> HashMap<String, InterfaceAddrs> {
    let mut out: HashMap<String, InterfaceAddrs> = HashMap::new();
    let entries = match getifaddrs() {
        Ok(entries) => entries,
        Err(e) => {
            debug!(error = %e, "getifaddrs failed");
            return out;
        }
    };
    for entry in entries {
        if let Some(addr) = entry.address.as_ref().and_then(ip_address) {
            out.entry(entry.interface_name).or_default().push(addr);
        }
    }
    out
}

/// The IP address of one `getifaddrs` entry's address, if it is an IPv4 or IPv6 one.
fn ip_address(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(sin) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(sin.ip()));
    }
    addr.as_sockaddr_in6().map(|sin6| IpAddr::V6(sin6.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_global_ipv6_and_scopes_link_local() {
        let mut a = InterfaceAddrs::default();
        a.push("fe80::1".parse().expect("addr"));
        assert_eq!(a.ipv6("eth0").as_deref(), Some("fe80::1%eth0"));
        a.push("2001:db8::5".parse().expect("addr"));
        assert_eq!(a.ipv6("eth0").as_deref(), Some("2001:db8::5"));
        assert_eq!(a.ipv4(), None);
        a.push("192.0.2.2".parse().expect("addr"));
        a.push("192.0.2.3".parse().expect("addr"));
        assert_eq!(a.ipv4().as_deref(), Some("192.0.2.2"));
    }

    #[test]
    fn system_has_loopback() {
        let all = from_system();
        if let Some(lo) = all.get("lo") {
            assert_eq!(lo.ipv4().as_deref(), Some("127.0.0.1"));
        }
    }
}
