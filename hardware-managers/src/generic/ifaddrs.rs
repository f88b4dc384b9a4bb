//! IP addresses of the network interfaces.
//!
//! On the real system they come from `getifaddrs(3)`. Under a fake root (tests) they come from
//! the optional text file `<root>/ifaddrs`, one `<interface> <address>` pair per line, in the
//! order `getifaddrs` would report them.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

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
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid place for getifaddrs to store the list head; on success the
    // list stays valid until the matching freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        debug!(error = %std::io::Error::last_os_error(), "getifaddrs failed");
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is non-null and points into the list getifaddrs returned, which is not
        // freed until after the loop.
        let ifa = unsafe { &*cur };
        if let Some((name, addr)) = entry_address(ifa) {
            out.entry(name).or_default().push(addr);
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once; no reference
    // into the list outlives this point.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The interface name and IP address of one `getifaddrs` entry, if it carries one.
fn entry_address(ifa: &libc::ifaddrs) -> Option<(String, IpAddr)> {
    if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
        return None;
    }
    // SAFETY: ifa_name is a non-null, NUL-terminated string owned by the getifaddrs list.
    let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: ifa_addr is non-null and points to a sockaddr whose family field is always valid.
    let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
    let addr = match family {
        libc::AF_INET => {
            // SAFETY: the family is AF_INET, so the kernel stored a sockaddr_in here.
            let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family is AF_INET6, so the kernel stored a sockaddr_in6 here.
            let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        }
        _ => return None,
    };
    Some((name, addr))
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
