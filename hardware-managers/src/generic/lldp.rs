//! LLDP for the inventory: IPA's `collect_lldp_data` and what `list_network_interfaces` does
//! with it when `collect_lldp` (`ipa-collect-lldp`) is on.
//!
//! IPA listens on the interfaces `netutils.list_interfaces()` names (physical NICs, VLANs,
//! bonds; never `lo`) for the first LLDPDU each, up to `lldp_timeout`, and reports each TLV as
//! `[type, "lower-case hex of the value"]`, the End TLV included (`[0, ""]`). An interface
//! that got nothing in time has `[]`. IPA caches none of it: every `list_network_interfaces`
//! call listens again (so does `poll.get_hardware_info`; lookup and inspection reuse IPA's
//! cached inventory instead).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::inventory::NetworkInterface;
use crate::lldp;

/// The `lldp_raw` of IPA's inspection data: interface name → `[[type, hex], ...]`.
pub type LldpRaw = BTreeMap<String, Vec<(u8, String)>>;

/// IPA's `collect_lldp_data(interface_names)`: the first LLDPDU of each of `names` (`lo`
/// dropped), all listened to at once for at most `timeout`, as `[type, hex]` pairs.
pub fn collect_lldp_data(names: &[String], timeout: Duration) -> LldpRaw {
    let names: Vec<String> = names.iter().filter(|n| *n != "lo").cloned().collect();
    lldp::capture(&names, timeout)
        .into_iter()
        .map(|(name, tlvs)| (name, lldp::to_inventory(&tlvs)))
        .collect()
}

/// IPA's `collect_lldp_data()` without names: every interface `<root>/sys/class/net` lists
/// as a NIC, VLAN or bond (the `lldp` inspection collector's `lldp_raw`).
///
/// The listening itself always happens on the running system's interfaces of those names.
pub fn collect_lldp_raw(root: &Path, timeout: Duration) -> LldpRaw {
    collect_lldp_data(&super::net::interface_names(root), timeout)
}

/// Fills each interface's `lldp` from `data` as IPA's `_get_lldp_data` does: the entry of
/// that name (`[]` when nothing arrived), or null when `data` has no entry for it.
pub(crate) fn fill(interfaces: &mut [NetworkInterface], data: &LldpRaw) {
    for iface in interfaces {
        iface.lldp = data.get(&iface.name).cloned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_reports_tlvs_empty_lists_and_nulls_as_ipa() {
        let nic = |name: &str| NetworkInterface {
            name: name.into(),
            mac_address: "52:54:00:00:00:01".into(),
            ipv4_address: None,
            ipv6_address: None,
            has_carrier: true,
            lldp: None,
            vendor: None,
            product: None,
            client_id: None,
            biosdevname: None,
            speed_mbps: None,
            pci_address: None,
            driver: None,
        };
        let mut ifaces = vec![nic("eth0"), nic("eth1"), nic("eth2")];
        let mut data = LldpRaw::new();
        data.insert(
            "eth0".into(),
            vec![(1, "04525400123456".into()), (0, String::new())],
        );
        data.insert("eth1".into(), Vec::new());
        fill(&mut ifaces, &data);
        let json: Vec<serde_json::Value> = ifaces
            .iter()
            .map(|i| serde_json::to_value(i).unwrap()["lldp"].clone())
            .collect();
        assert_eq!(
            json,
            vec![
                serde_json::json!([[1, "04525400123456"], [0, ""]]),
                serde_json::json!([]),
                serde_json::Value::Null,
            ]
        );
    }
}
