//! LLDP (IEEE 802.1AB): receiving one LLDPDU per network interface and reading it.
//!
//! ironic-python-agent collects LLDP for the inventory (`collect_lldp`) and to learn the
//! VLANs a port carries (`enable_vlan_interfaces`): it listens on every interface with a raw
//! socket for ethertype 0x88cc until the first frame or `lldp_timeout` (30 s by default),
//! splits the frame into TLVs and reports each as `[type, "hexvalue"]`.
//!
//! - [`capture`] listens on several interfaces at once, one shared deadline;
//! - [`LldpCache`] keeps what arrived while its TTL holds, so one inspection listens once;
//! - [`parse_lldpdu`] splits an LLDPDU (the Ethernet payload) into [`LldpTlv`]s;
//! - [`vlan_ids`] reads the IEEE 802.1 "VLAN name" TLVs;
//! - [`to_inventory`] renders TLVs as the inventory's `lldp` field;
//! - [`encode_lldpdu`] and [`lldp_frame`] build frames (test switches, tests).

mod cache;
mod capture;
mod parse;
mod sys;

#[cfg(test)]
mod tests;

pub use cache::{LldpCache, MAX_REUSE};
pub use capture::{DEFAULT_LLDP_TIMEOUT, capture};
pub use parse::{
    LldpError, LldpTlv, MAX_LLDPDU_LEN, encode_lldpdu, lldp_frame, parse_lldpdu, to_inventory,
    vlan_ids, vlan_name_tlv,
};

/// IPA's `lldp_raw` / `collect_lldp_data` result: interface name → its first LLDPDU's TLVs as
/// `[type, "lower-case hex"]` (`[]` when nothing arrived in time).
pub type LldpRaw = std::collections::BTreeMap<String, Vec<(u8, String)>>;

/// The LLDP ethertype.
pub const LLDP_ETHERTYPE: u16 = 0x88cc;

/// The "nearest bridge" multicast address LLDP frames are sent to.
pub const LLDP_MULTICAST: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];

/// TLV types used here (IEEE 802.1AB table 8-1).
pub mod tlv_type {
    /// End of LLDPDU.
    pub const END: u8 = 0;
    /// Chassis ID.
    pub const CHASSIS_ID: u8 = 1;
    /// Port ID.
    pub const PORT_ID: u8 = 2;
    /// Time to live.
    pub const TTL: u8 = 3;
    /// Port description.
    pub const PORT_DESCRIPTION: u8 = 4;
    /// System name.
    pub const SYSTEM_NAME: u8 = 5;
    /// Organizationally specific.
    pub const ORG_SPECIFIC: u8 = 127;
}
