//! Static network configuration for networks without DHCP: OpenStack's `network_data.json`
//! (which Ironic writes into the config drive or virtual-media image at
//! `openstack/latest/network_data.json`) and IPA's `ipa-enable-vlan-interfaces`.
//!
//! Three layers, each usable alone:
//! - [`parse`] reads the document into [`NetworkData`] ([`model`]), leniently: numbers as
//!   strings, `null`s, unknown fields are all accepted.
//! - [`plan()`] turns it, with the machine's NICs ([`ObservedNic`]), into a [`Plan`]: ordered
//!   [`NetStep`]s, the interfaces still needing DHCP, and warnings. [`plan_vlans`] does the
//!   same for `ipa-enable-vlan-interfaces` ([`vlans`]). Both are pure.
//! - [`apply_plan`] carries a plan out through a [`NetOps`]: [`SystemNetOps`] (`ip`, bonding
//!   sysfs, `resolv.conf`) or [`RecordingNetOps`] (dry run, tests).
//!
//! Supported: physical links (every link type but `bond` and `vlan`, matched to a NIC by MAC
//! address, case-insensitively), bonds (`bond0`, `bond1`… or the link's valid `name`; modes
//! 0-6 by number or name; `miimon` 100 unless given; `xmit_hash_policy` and other `bond_*`
//! options), VLANs (`<parent>.<id>`, on NICs, bonds or VLANs, with `vlan_mac_address`), MTUs,
//! static IPv4/IPv6 addresses (netmask dotted, IPv6-form or prefix length, or `/prefix` on
//! the address), routes (network `0.0.0.0`/`::` with mask 0 is the default route; one
//! default route per family, the first), DNS servers (`services` of type `dns`, top level then
//! per network, and `dns_nameservers`; deduplicated in order) and search domains.
//! `ipv4_dhcp` and the `ipv6_dhcp*` types put the interface in the DHCP list; `ipv6_slaac` only
//! brings it up.
//!
//! DHCP fall-back: an interface is in [`Plan::dhcp`] when a network asks for DHCP on it, and
//! otherwise unless it carries a usable static or SLAAC network or is a bond member or VLAN
//! parent. So every NIC the data does not mention (or mentions only through a link that could
//! not be planned) keeps DHCP, and a NIC the data configures statically does not get it. After
//! [`apply_plan`], interfaces whose configuration failed, and the NICs under a bond or VLAN
//! that could not be created, are added back ([`ApplyReport::dhcp`]).
//!
//! Applying a plan twice (the ramdisk's `/init`, then the agent) is harmless: addresses and
//! routes are `replace`d, an existing VLAN interface is kept, and a bond's mode, options and
//! slaves are written only when they differ.

pub mod addr;
pub mod apply;
pub mod model;
pub mod plan;
pub mod step;
pub mod vlans;

#[cfg(test)]
mod tests;

pub use apply::{
    ApplyReport, NetOpError, NetOps, RecordingNetOps, SystemNetOps, apply_plan, ip_commands,
    resolv_conf_text,
};
pub use model::{
    Link, LinkKind, NetDataError, Network, NetworkData, NetworkKind, Num, Route, Service, parse,
};
pub use plan::{ObservedNic, Plan, plan};
pub use step::NetStep;
pub use vlans::{VlanPlan, needs_lldp, plan_vlans};
