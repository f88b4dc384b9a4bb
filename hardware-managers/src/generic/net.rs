//! Network interfaces from `/sys/class/net`.
//!
//! Listed: physical NICs (those with a `device` link), VLANs (`<name>.<digits>`) and bonds
//! (with a `bonding/` directory). Loopback and other virtual devices (bridges, tun/tap, ifb,
//! veth, ...) are left out, as are interfaces without a MAC or with a MAC starting `fa:`
//! (IPA's rule for hypervisor-assigned placeholder MACs).

use std::collections::HashMap;
use std::path::Path;

use tracing::debug;

use super::ethtool::{self, LinkInfo};
use super::ifaddrs::InterfaceAddrs;
use super::sysfs::{link_basename, list_dir, natural_cmp, read_trimmed, read_u64};
use crate::inventory::NetworkInterface;

/// Lists the interfaces of `<root>/sys/class/net`, sorted by name, with IP addresses from
/// `addrs` and link speeds from the supported modes `modes` gives for a name.
pub(crate) fn list_interfaces(
    root: &Path,
    addrs: &HashMap<String, InterfaceAddrs>,
    link: &dyn LinkInfo,
) -> Vec<NetworkInterface> {
    let class = root.join("sys/class/net");
    let mut names = list_dir(&class);
    names.sort_by(|a, b| natural_cmp(a, b));
    names
        .into_iter()
        .filter_map(|name| {
            let mut iface = interface(&class.join(&name), &name, addrs.get(&name), link)?;
            iface.speed_mbps = speed_mbps(root, &name, link);
            Some(iface)
        })
        .collect()
}

/// IPA's `speed_mbps`: lshw's capacity (the fastest supported mode it knows), none for the
/// virtual interfaces lshw leaves out; never the current negotiated speed.
fn speed_mbps(root: &Path, name: &str, link: &dyn LinkInfo) -> Option<u64> {
    if ethtool::is_virtual(root, name) {
        return None;
    }
    link.supported_modes(name).and_then(ethtool::capacity_mbps)
}

/// The names IPA's `netutils.list_interfaces()` gives (NICs, VLANs, bonds; not `lo`), in
/// `<root>/sys/class/net` order sorted by name: the interfaces LLDP is listened for on.
pub(crate) fn interface_names(root: &Path) -> Vec<String> {
    let class = root.join("sys/class/net");
    let mut names = list_dir(&class);
    names.sort_by(|a, b| natural_cmp(a, b));
    names.retain(|name| is_listed(&class.join(name), name));
    names
}

/// Whether the interface belongs in the inventory.
fn is_listed(dir: &Path, name: &str) -> bool {
    if name == "lo" {
        return false;
    }
    std::fs::symlink_metadata(dir.join("device")).is_ok()
        || is_vlan_name(name)
        || dir.join("bonding").is_dir()
}

/// `<parent>.<digits>`, the kernel's default VLAN naming.
fn is_vlan_name(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((parent, id)) => {
            !parent.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// As IPA: the permanent MAC the driver reports (`ETHTOOL_GPERMADDR`), else the one kept
/// when the interface is enslaved to a bond (its `address` is then the bond's), else its
/// current one; lower-case.
fn mac_address(dir: &Path, name: &str, link: &dyn LinkInfo) -> Option<String> {
    link.permanent_mac(name)
        .or_else(|| read_trimmed(&dir.join("bonding_slave/perm_hwaddr")))
        .or_else(|| read_trimmed(&dir.join("address")))
        .map(|m| m.to_ascii_lowercase())
}

/// Builds the inventory entry of one interface, or `None` when it is not listed.
fn interface(
    dir: &Path,
    name: &str,
    addrs: Option<&InterfaceAddrs>,
    link: &dyn LinkInfo,
) -> Option<NetworkInterface> {
    if !is_listed(dir, name) {
        return None;
    }
    let Some(mac) = mac_address(dir, name, link) else {
        debug!(interface = name, "no MAC address, not listing it");
        return None;
    };
    if mac.starts_with("fa:") {
        debug!(interface = name, mac, "MAC starts with fa:, not listing it");
        return None;
    }
    let device = dir.join("device");
    Some(NetworkInterface {
        name: name.to_string(),
        mac_address: mac,
        ipv4_address: addrs.and_then(InterfaceAddrs::ipv4),
        ipv6_address: addrs.and_then(|a| a.ipv6(name)),
        has_carrier: read_u64(&dir.join("carrier")) == Some(1),
        lldp: None,
        vendor: read_trimmed(&device.join("vendor")),
        product: read_trimmed(&device.join("device")),
        client_id: None,
        biosdevname: None,
        speed_mbps: None,
        pci_address: link_basename(&device),
        driver: link_basename(&device.join("driver")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_names() {
        assert!(is_vlan_name("eth0.100"));
        assert!(is_vlan_name("bond0.7"));
        assert!(!is_vlan_name("eth0."));
        assert!(!is_vlan_name(".5"));
        assert!(!is_vlan_name("eth0.v5"));
        assert!(!is_vlan_name("eth0"));
    }
}
