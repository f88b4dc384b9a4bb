//! IPA's `ipa-enable-vlan-interfaces` (kernel parameter or `enable_vlan_interfaces` option):
//! which VLAN interfaces to create before looking for the conductor, read as IPA 13 reads it.
//!
//! The value is a comma-separated list, each entry trimmed and empty entries dropped:
//! - `IFACE.VLAN`: VLAN `VLAN` on `IFACE`, an interface name or a MAC address (any case); the
//!   entry is split at its first dot.
//! - `IFACE`: every VLAN that LLDP reports on the interface named `IFACE`.
//! - `all`: every VLAN LLDP reports, on every interface.
//!
//! The interfaces are named `<iface>.<vlan>` and need DHCP like their parent. Unlike IPA,
//! which hands the text to `ip` as it is, an id that is not a decimal number in 1..=4094 is
//! refused with a warning here, and an entry repeated is created once.

use super::addr::{normalize_mac, valid_ifname};
use super::plan::ObservedNic;
use super::step::NetStep;

/// The VLAN interfaces to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VlanPlan {
    /// `CreateVlan` and `LinkUp` for each interface, in order.
    pub steps: Vec<NetStep>,
    /// The names of the interfaces created (they need DHCP).
    pub created: Vec<String>,
    /// What was left out, and why.
    pub warnings: Vec<String>,
}

/// The entries of `spec`, trimmed, empty ones dropped.
fn entries(spec: &str) -> impl Iterator<Item = &str> {
    spec.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Whether `spec` has an entry that needs LLDP (a bare interface or `all`).
pub fn needs_lldp(spec: &str) -> bool {
    entries(spec).any(|e| !e.contains('.'))
}

/// Plans the VLAN interfaces `spec` asks for on a machine with `nics`; `lldp_vlans(name)`
/// returns the VLAN ids LLDP reported on interface `name` (empty when LLDP is not collected).
pub fn plan_vlans(
    spec: &str,
    nics: &[ObservedNic],
    lldp_vlans: &dyn Fn(&str) -> Vec<u16>,
) -> VlanPlan {
    let mut plan = VlanPlan::default();
    for entry in entries(spec) {
        if let Some((iface, vlan)) = entry.split_once('.') {
            let wanted_mac = normalize_mac(iface);
            let nic = nics.iter().find(|n| {
                n.name == iface || (wanted_mac.is_some() && normalize_mac(&n.mac) == wanted_mac)
            });
            let Some(nic) = nic else {
                plan.warnings
                    .push(format!("Provided VLAN interface {iface} does not exist"));
                continue;
            };
            match vlan.parse::<u16>() {
                Ok(id) if vlan.bytes().all(|b| b.is_ascii_digit()) => {
                    add(&mut plan, nic, id, nics);
                }
                _ => plan.warnings.push(format!(
                    "VLAN id {vlan:?} of {entry:?} is not a number in 1..=4094: skipped"
                )),
            }
        } else if entry == "all" {
            for nic in nics {
                for id in lldp_vlans(&nic.name) {
                    add(&mut plan, nic, id, nics);
                }
            }
        } else {
            let Some(nic) = nics.iter().find(|n| n.name == entry) else {
                plan.warnings
                    .push(format!("Provided interface name {entry} was not found"));
                continue;
            };
            let ids = lldp_vlans(&nic.name);
            if ids.is_empty() {
                plan.warnings.push(format!(
                    "Provided interface name {entry} has no VLAN in its LLDP data (or LLDP is \
                     not collected)"
                ));
            }
            for id in ids {
                add(&mut plan, nic, id, nics);
            }
        }
    }
    plan
}

/// Adds VLAN `id` on `nic` unless invalid or already there.
fn add(plan: &mut VlanPlan, nic: &ObservedNic, id: u16, nics: &[ObservedNic]) {
    let name = format!("{}.{id}", nic.name);
    if !(1..=4094).contains(&id) {
        plan.warnings.push(format!(
            "VLAN id {id} on {} is not in 1..=4094: skipped",
            nic.name
        ));
    } else if plan.created.contains(&name) || nics.iter().any(|n| n.name == name) {
        tracing::info!(interface = %name, "VLAN interface has already been added");
    } else if !valid_ifname(&name) {
        plan.warnings.push(format!(
            "VLAN interface name {name} is longer than the kernel accepts: skipped"
        ));
    } else {
        plan.steps.push(NetStep::CreateVlan {
            parent: nic.name.clone(),
            id,
            name: name.clone(),
            mac: None,
        });
        plan.steps.push(NetStep::LinkUp {
            iface: name.clone(),
        });
        plan.created.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nics() -> Vec<ObservedNic> {
        vec![
            ObservedNic {
                name: "eth0".into(),
                mac: "52:54:00:12:34:56".into(),
            },
            ObservedNic {
                name: "eth1".into(),
                mac: "52:54:00:AB:CD:EF".into(),
            },
        ]
    }

    fn lldp(name: &str) -> Vec<u16> {
        match name {
            "eth0" => vec![100, 200],
            "eth1" => vec![300],
            _ => Vec::new(),
        }
    }

    #[test]
    fn explicit_by_name_and_mac() {
        let p = plan_vlans(" eth0.100 , 52:54:00:ab:cd:ef.42,,", &nics(), &lldp);
        assert_eq!(p.created, ["eth0.100", "eth1.42"]);
        assert_eq!(p.warnings, Vec::<String>::new());
        assert_eq!(
            p.steps,
            [
                NetStep::CreateVlan {
                    parent: "eth0".into(),
                    id: 100,
                    name: "eth0.100".into(),
                    mac: None
                },
                NetStep::LinkUp {
                    iface: "eth0.100".into()
                },
                NetStep::CreateVlan {
                    parent: "eth1".into(),
                    id: 42,
                    name: "eth1.42".into(),
                    mac: None
                },
                NetStep::LinkUp {
                    iface: "eth1.42".into()
                },
            ]
        );
        assert!(!needs_lldp(" eth0.100 , 52:54:00:ab:cd:ef.42,,"));
    }

    #[test]
    fn lldp_entries() {
        assert!(needs_lldp("eth1"));
        assert!(needs_lldp("all"));
        let p = plan_vlans("eth1", &nics(), &lldp);
        assert_eq!(p.created, ["eth1.300"]);
        let p = plan_vlans("all,eth0.100", &nics(), &lldp);
        assert_eq!(p.created, ["eth0.100", "eth0.200", "eth1.300"]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let p = plan_vlans("all", &nics(), &|_| Vec::new());
        assert!(p.created.is_empty());
    }

    #[test]
    fn bad_entries_warn() {
        let p = plan_vlans(
            "eth9.5,eth0.0,eth0.4095,eth0.x,eth0.,eth0.99999999999,eth9,eth0.7,eth0.7,eth0.1.2",
            &nics(),
            &|_| Vec::new(),
        );
        assert_eq!(p.created, ["eth0.7"]);
        let w = p.warnings.join("\n");
        assert!(
            w.contains("Provided VLAN interface eth9 does not exist"),
            "{w}"
        );
        assert!(
            w.contains("Provided interface name eth9 was not found"),
            "{w}"
        );
        assert_eq!(p.warnings.len(), 8, "{w}");
        for bad in [
            "id 0 on eth0",
            "id 4095 on eth0",
            "\"x\"",
            "\"\"",
            "\"99999999999\"",
            "\"1.2\"",
        ] {
            assert!(w.contains(bad), "{bad} not in {w}");
        }
        // The name lookup is by name only for LLDP entries, as in IPA.
        let p = plan_vlans("52:54:00:12:34:56", &nics(), &lldp);
        assert!(p.created.is_empty());
        // An existing interface is not created again.
        let mut with_vlan = nics();
        with_vlan.push(ObservedNic {
            name: "eth0.100".into(),
            mac: "52:54:00:12:34:56".into(),
        });
        let p = plan_vlans("eth0.100", &with_vlan, &lldp);
        assert!(p.created.is_empty() && p.warnings.is_empty());
        // Names the kernel refuses.
        let long = vec![ObservedNic {
            name: "enp175s0f0np0".into(),
            mac: "52:54:00:12:34:57".into(),
        }];
        let p = plan_vlans("enp175s0f0np0.100", &long, &lldp);
        assert!(p.created.is_empty() && p.warnings.len() == 1);
    }
}
