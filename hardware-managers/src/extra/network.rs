//! `network` facts per NIC (as `lshw` sees them: interfaces backed by a device, loopback and
//! virtual ones left out): bus info, firmware, size, IPv4 with netmask/CIDR/network, link,
//! driver, duplex, speed, PCI latency, auto-negotiation and the MAC as `serial`; then the
//! `ethtool -a`/`-k` lines and the `lldptool` neighbour (tools run only when present).

use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;

use super::{Facts, Root, ethtool, lldptool, tools};
use crate::generic::sysfs::{link_basename, list_dir, natural_cmp, read_trimmed};

/// `lshw`'s bus info for a NIC whose `device` link ends in `device`: `pci@0000:00:03.0`,
/// `virtio@2`.
pub fn businfo(device: &str) -> Option<String> {
    if let Some(n) = device.strip_prefix("virtio") {
        return n
            .chars()
            .all(|c| c.is_ascii_digit())
            .then(|| format!("virtio@{n}"));
    }
    let b = device.as_bytes();
    let pci = b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.';
    pci.then(|| format!("pci@{device}"))
}

/// `lshw`'s speed text for a speed in Mbit/s: `100Mbit/s`, `1Gbit/s`, `2.5Gbit/s`.
pub fn speed_text(mbps: u64) -> String {
    if mbps < 1000 {
        format!("{mbps}Mbit/s")
    } else if mbps.is_multiple_of(1000) {
        format!("{}Gbit/s", mbps / 1000)
    } else {
        format!("{}Gbit/s", mbps as f64 / 1000.0)
    }
}

/// `ipv4-netmask`, `ipv4-cidr` and `ipv4-network` for an address and its netmask.
pub fn ipv4_facts(addr: Ipv4Addr, mask: Ipv4Addr) -> [(&'static str, String); 3] {
    let bits = u32::from(mask);
    // `hardware-detect` counts the bits up to the last one set.
    let cidr = 32 - bits.trailing_zeros().min(32);
    let network = Ipv4Addr::from(u32::from(addr) & bits);
    [
        ("ipv4-netmask", mask.to_string()),
        ("ipv4-cidr", cidr.to_string()),
        ("ipv4-network", network.to_string()),
    ]
}

/// The first IPv4 address of `ifname` and its netmask.
fn ipv4_of(ifname: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    getifaddrs().ok()?.find_map(|e| {
        if e.interface_name != ifname {
            return None;
        }
        let addr = e.address.as_ref()?.as_sockaddr_in()?.ip();
        let mask = e.netmask.as_ref()?.as_sockaddr_in()?.ip();
        Some((addr, mask))
    })
}

/// The NICs `lshw` lists: every interface with a `device` link, except loopback.
pub fn interfaces(root: &Root) -> Vec<String> {
    let dir = root.path("/sys/class/net");
    let mut names: Vec<String> = list_dir(&dir)
        .into_iter()
        .filter(|n| dir.join(n).join("device").exists())
        .filter(|n| read_trimmed(&dir.join(n).join("type")).as_deref() != Some("772"))
        .collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names
}

/// Adds the `network` (and `lldp`) facts; returns the first NIC's MAC.
pub fn detect(root: &Root, facts: &mut Facts) -> Option<String> {
    let mut first_mac = None;
    for name in interfaces(root) {
        let mac = nic(root, &name, facts);
        if first_mac.is_none() {
            first_mac = mac;
        }
    }
    first_mac
}

fn nic(root: &Root, name: &str, facts: &mut Facts) -> Option<String> {
    let dir = root.path(&format!("/sys/class/net/{name}"));
    let attr = |a: &str| read_trimmed(&dir.join(a));
    let device = link_basename(&dir.join("device"));
    let ioctl = if root.is_system() {
        ethtool::query(name)
    } else {
        ethtool::EthtoolInfo::default()
    };
    let mut push = |key: &str, v: String| facts.push("network", name, key, v);
    if let Some(b) = device.as_deref().and_then(businfo) {
        push("businfo", b);
    }
    if let Some(fw) = ioctl.firmware.clone() {
        push("firmware", fw);
    }
    let speed: Option<u64> = attr("speed")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0 && *s != i64::from(u32::MAX))
        .map(|s| s.unsigned_abs());
    if let Some(s) = speed {
        push("size", (s * 1_000_000).to_string());
    }
    if root.is_system()
        && let Some((addr, mask)) = ipv4_of(name)
    {
        push("ipv4", addr.to_string());
        for (k, v) in ipv4_facts(addr, mask) {
            push(k, v);
        }
    }
    let link = ioctl
        .link
        .or_else(|| (!root.is_system()).then(|| attr("carrier").as_deref() == Some("1")));
    if let Some(l) = link {
        push("link", if l { "yes" } else { "no" }.to_string());
    }
    if let Some(d) = link_basename(&dir.join("device/driver")) {
        push("driver", d);
    }
    if let Some(d) = attr("duplex").filter(|d| d == "full" || d == "half") {
        push("duplex", d);
    }
    if let Some(s) = speed {
        push("speed", speed_text(s));
    }
    if device
        .as_deref()
        .is_some_and(|d| businfo(d).is_some_and(|b| b.starts_with("pci@")))
    {
        let config = std::fs::read(dir.join("device/config")).unwrap_or_default();
        if let Some(latency) = config.get(0x0D) {
            push("latency", latency.to_string());
        }
    }
    if let Some(a) = ioctl.autoneg {
        push("autonegotiation", if a { "on" } else { "off" }.to_string());
    }
    let mac = attr("address").map(|m| m.to_lowercase());
    if let Some(m) = mac.clone() {
        push("serial", m);
    }
    for flag in ["-a", "-k"] {
        if let Some(out) = tools::run(root, "ethtool", &[flag, name], tools::TOOL_TIMEOUT) {
            ethtool::parse_text(facts, name, &out.stdout);
        }
    }
    if let Some(out) = tools::run(
        root,
        "lldptool",
        &["-t", "-n", "-i", name],
        tools::TOOL_TIMEOUT,
    ) {
        lldptool::parse(facts, name, &out.stdout);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_and_speed() {
        assert_eq!(businfo("virtio2").as_deref(), Some("virtio@2"));
        assert_eq!(businfo("0000:3b:00.1").as_deref(), Some("pci@0000:3b:00.1"));
        assert_eq!(businfo("1-1:1.0"), None);
        assert_eq!(speed_text(100), "100Mbit/s");
        assert_eq!(speed_text(1000), "1Gbit/s");
        assert_eq!(speed_text(2500), "2.5Gbit/s");
        assert_eq!(speed_text(25000), "25Gbit/s");
    }

    #[test]
    fn ipv4_derived() {
        let f = ipv4_facts(Ipv4Addr::new(192, 0, 2, 7), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(f[0].1, "255.255.255.0");
        assert_eq!(f[1].1, "24");
        assert_eq!(f[2].1, "192.0.2.0");
        let f = ipv4_facts(Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(f[1].1, "20");
        assert_eq!(f[2].1, "10.1.0.0");
    }

    #[test]
    fn fixture_nic() {
        let dir = tempfile::tempdir().expect("tmp");
        let devices = dir.path().join("devices/pci0000:00/0000:00:03.0");
        let drv = dir.path().join("drivers/e1000e");
        std::fs::create_dir_all(&devices).expect("mk");
        std::fs::create_dir_all(&drv).expect("mk");
        std::os::unix::fs::symlink(&drv, devices.join("driver")).expect("ln");
        let mut config = vec![0u8; 64];
        config[0x0D] = 0;
        std::fs::write(devices.join("config"), config).expect("w");
        let net = dir.path().join("sys/class/net");
        for n in ["eth0", "lo"] {
            std::fs::create_dir_all(net.join(n)).expect("mk");
        }
        std::fs::create_dir_all(net.join("ifb0")).expect("mk");
        std::os::unix::fs::symlink(&devices, net.join("eth0/device")).expect("ln");
        std::os::unix::fs::symlink(&devices, net.join("lo/device")).expect("ln");
        std::fs::write(net.join("lo/type"), "772\n").expect("w");
        for (a, v) in [
            ("address", "52:54:00:AB:CD:EF"),
            ("speed", "1000"),
            ("duplex", "full"),
            ("carrier", "1"),
        ] {
            std::fs::write(net.join("eth0").join(a), v).expect("w");
        }
        let mut facts = Facts::default();
        let mac = detect(&Root::at(dir.path()), &mut facts);
        assert_eq!(mac.as_deref(), Some("52:54:00:ab:cd:ef"));
        let got: Vec<String> = facts
            .iter()
            .map(|f| format!("{}={}", f.key(), f.value()))
            .collect();
        assert_eq!(
            got,
            [
                "businfo=\"pci@0000:00:03.0\"",
                "size=\"1000000000\"",
                "link=\"yes\"",
                "driver=\"e1000e\"",
                "duplex=\"full\"",
                "speed=\"1Gbit/s\"",
                "latency=\"0\"",
                "serial=\"52:54:00:ab:cd:ef\"",
            ]
        );
    }
}
