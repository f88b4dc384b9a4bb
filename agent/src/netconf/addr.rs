//! Reading the addresses of `network_data.json`: IP addresses with a netmask in any of its
//! three forms, MAC addresses, and interface names the kernel accepts.

use std::net::IpAddr;

/// The longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = 15;

/// `text` as a MAC address in lower case with colons (`aa:bb:cc:dd:ee:ff`); `-` separators and
/// upper case are accepted. `None` when it is not six hexadecimal byte pairs.
pub fn normalize_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

/// Whether the kernel accepts `name` as an interface name: 1 to 15 bytes, not `.` or `..`, no
/// `/`, `:`, whitespace or control characters.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// The prefix length of `mask` for addresses of `addr`'s family: a prefix length (`24`), a
/// dotted IPv4 mask (`255.255.255.0`) or an IPv6 mask (`ffff:ffff::`). Non-contiguous masks,
/// out-of-range lengths and masks of the other family are refused.
pub fn prefix_of(mask: &str, addr: &IpAddr) -> Result<u8, String> {
    let mask = mask.trim().trim_start_matches('/');
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if !mask.is_empty() && mask.bytes().all(|b| b.is_ascii_digit()) {
        return match mask.parse::<u8>() {
            Ok(p) if u32::from(p) <= bits => Ok(p),
            _ => Err(format!("prefix length {mask} out of range 0..={bits}")),
        };
    }
    let m: IpAddr = mask
        .parse()
        .map_err(|_| format!("netmask {mask:?} is neither a prefix length nor an address"))?;
    let value: u128 = match (m, addr) {
        (IpAddr::V4(m), IpAddr::V4(_)) => u128::from(u32::from(m)) << 96,
        (IpAddr::V6(m), IpAddr::V6(_)) => u128::from(m),
        _ => {
            return Err(format!(
                "netmask {mask} is not of the address family of {addr}"
            ));
        }
    };
    let ones = value.leading_ones();
    if value.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("netmask {mask} is not contiguous"));
    }
    u8::try_from(ones).map_err(|_| format!("netmask {mask} too long"))
}

/// An address with its prefix: `ip` may carry `/prefix` itself, else `mask` gives it.
pub fn address_with_prefix(ip: &str, mask: Option<&str>) -> Result<(IpAddr, u8), String> {
    let ip = ip.trim();
    let (addr_text, inline) = match ip.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (ip, None),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| format!("{addr_text:?} is not an IP address"))?;
    let prefix = match (inline, mask.map(str::trim).filter(|m| !m.is_empty())) {
        (Some(p), _) => prefix_of(p, &addr)?,
        (None, Some(m)) => prefix_of(m, &addr)?,
        (None, None) => return Err(format!("no netmask for {addr}")),
    };
    Ok((addr, prefix))
}

/// `addr` with the bits past `prefix` cleared (`ip route` refuses a destination with host bits).
pub fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & keep).into())
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & keep).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            normalize_mac(" BC:76:4E:20:D7:2F").as_deref(),
            Some("bc:76:4e:20:d7:2f")
        );
        assert_eq!(
            normalize_mac("bc-76-4e-20-d7-2f").as_deref(),
            Some("bc:76:4e:20:d7:2f")
        );
        for bad in [
            "",
            "bc:76:4e:20:d7",
            "bc:76:4e:20:d7:2g",
            "bc:76:4e:20:d7:2f0",
            "xx",
        ] {
            assert_eq!(normalize_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn ifnames() {
        assert!(valid_ifname("bond0"));
        assert!(valid_ifname("enp1s0f0.4094"));
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "abcdefghijklmnop"] {
            assert!(!valid_ifname(bad), "{bad}");
        }
    }

    #[test]
    fn netmasks() -> Result<(), String> {
        let v4: IpAddr = "10.0.0.1".parse().map_err(|_| "v4")?;
        let v6: IpAddr = "2001:db8::1".parse().map_err(|_| "v6")?;
        assert_eq!(prefix_of("255.255.255.0", &v4)?, 24);
        assert_eq!(prefix_of("0.0.0.0", &v4)?, 0);
        assert_eq!(prefix_of("255.255.255.255", &v4)?, 32);
        assert_eq!(prefix_of("24", &v4)?, 24);
        assert_eq!(prefix_of("ffff:ffff:ffff:ffff::", &v6)?, 64);
        assert_eq!(prefix_of("::", &v6)?, 0);
        assert_eq!(prefix_of("128", &v6)?, 128);
        for bad in [
            "255.0.255.0",
            "33",
            "999999999999",
            "ffff::",
            "banana",
            "",
            "-1",
        ] {
            assert!(prefix_of(bad, &v4).is_err(), "{bad}");
        }
        assert!(prefix_of("255.255.255.0", &v6).is_err());
        assert!(prefix_of("129", &v6).is_err());
        assert_eq!(
            address_with_prefix("10.0.0.5/16", Some("255.255.255.0"))?,
            (v4_of("10.0.0.5"), 16)
        );
        assert_eq!(
            address_with_prefix("10.0.0.5", Some("255.255.255.0"))?,
            (v4_of("10.0.0.5"), 24)
        );
        assert!(address_with_prefix("10.0.0.5", None).is_err());
        assert!(address_with_prefix("10.0.0.300", Some("24")).is_err());
        assert_eq!(network_of(v4_of("10.1.2.3"), 16), v4_of("10.1.0.0"));
        assert_eq!(network_of(v4_of("10.1.2.3"), 0), v4_of("0.0.0.0"));
        assert_eq!(network_of(v4_of("10.1.2.3"), 32), v4_of("10.1.2.3"));
        Ok(())
    }

    fn v4_of(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }
}
