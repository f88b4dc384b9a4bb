//! LLDP for the inventory: IPA's `collect_lldp_data` and what `list_network_interfaces` does
//! with it when `collect_lldp` (`ipa-collect-lldp`) is on.
//!
//! IPA listens on the interfaces `netutils.list_interfaces()` names (physical NICs, VLANs,
//! bonds; never `lo`) for the first LLDPDU each, up to `lldp_timeout`, and reports each TLV as
//! `[type, "lower-case hex of the value"]`, the End TLV included (`[0, ""]`). An interface
//! that got nothing in time has `[]`. IPA caches none of it: every `list_network_interfaces`
//! call listens again. The generic manager keeps what arrived while the frame's TTL holds
//! ([`crate::lldp::LldpCache`]), so the start-up wait for interfaces, the DHCP wait, the
//! inventory, the `lldp` collector and the log bundle of one inspection share one listen.

use crate::inventory::NetworkInterface;

pub use crate::lldp::LldpRaw;

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
