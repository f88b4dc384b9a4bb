//! The `network_data.json` document (OpenStack's network metadata, written by Ironic into a
//! config drive or virtual-media image at `openstack/latest/network_data.json`) as typed serde
//! structs, and [`parse`].
//!
//! Parsing is lenient where the producers differ: numbers may come as JSON numbers or strings
//! (`"vlan_id": "100"`, `"mtu": "9000"`), `null` stands for an absent value or an empty list,
//! identifiers may be numbers, and unknown fields are ignored. A number that cannot be read is
//! kept as [`Num::Invalid`] so that planning can name it in a warning instead of refusing the
//! whole document. Only a document whose structure is wrong (not JSON, `links` not a list, a
//! link not an object…) is an error.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a `network_data.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetDataError {
    /// Not JSON, or not the structure of a network_data document.
    #[error("network_data.json, line {line} column {column}: {message}")]
    Json {
        /// Line of the error (1-based; 0 when unknown).
        line: usize,
        /// Column of the error (1-based; 0 when unknown).
        column: usize,
        /// What was wrong.
        message: String,
    },
}

/// Reads a `network_data.json` document.
///
/// # Errors
/// [`NetDataError::Json`] naming the line and column of malformed JSON or of a value of the
/// wrong structure.
pub fn parse(text: &str) -> Result<NetworkData, NetDataError> {
    serde_json::from_str(text).map_err(|e| NetDataError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkData {
    /// Layer-2 devices: physical NICs, bonds, VLANs.
    #[serde(deserialize_with = "null_as_empty")]
    pub links: Vec<Link>,
    /// Layer-3 configuration of links.
    #[serde(deserialize_with = "null_as_empty")]
    pub networks: Vec<Network>,
    /// Services for the whole machine (DNS servers).
    #[serde(deserialize_with = "null_as_empty")]
    pub services: Vec<Service>,
}

/// A number as `network_data.json` writers give it (a JSON number or a numeric string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Num {
    /// A non-negative integer.
    Value(u64),
    /// Anything else (negative, fractional, too large, not a number), as written.
    Invalid(String),
}

impl Num {
    /// The value when valid.
    pub fn value(&self) -> Option<u64> {
        match self {
            Num::Value(v) => Some(*v),
            Num::Invalid(_) => None,
        }
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Value(v) => write!(f, "{v}"),
            Num::Invalid(s) => write!(f, "{s:?}"),
        }
    }
}

/// What a link is, from its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `phy`, `physical`, `ethernet`, and every other type (`ovs`, `bridge`, `tap`, `vif`,
    /// `hw_veb`, `vhostuser`, `dvs`, unknown or absent): a NIC of the machine, found by MAC.
    Physical,
    /// `bond`.
    Bond,
    /// `vlan`.
    Vlan,
}

/// One entry of `links`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Link {
    /// Its identifier, referenced by networks, bonds and VLANs.
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    /// `phy`, `bond`, `vlan`, `ovs`… (`null` in some clouds).
    #[serde(rename = "type", deserialize_with = "lenient_opt_string")]
    pub kind: Option<String>,
    /// The MAC address of a physical link (or of the bond).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub ethernet_mac_address: Option<String>,
    /// MTU.
    #[serde(deserialize_with = "lenient_num")]
    pub mtu: Option<Num>,
    /// A name the writer wants for the interface (used for bonds when valid).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub name: Option<String>,
    /// Bonding mode: a name (`active-backup`, `802.3ad`…) or a number 0-6.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub bond_mode: Option<String>,
    /// The link ids of the bond's members.
    #[serde(deserialize_with = "lenient_string_list")]
    pub bond_links: Vec<String>,
    /// MII link monitoring interval in ms.
    #[serde(deserialize_with = "lenient_num")]
    pub bond_miimon: Option<Num>,
    /// Transmit hash policy (`layer2`, `layer3+4`…).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub bond_xmit_hash_policy: Option<String>,
    /// The link id a VLAN sits on.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub vlan_link: Option<String>,
    /// The VLAN id.
    #[serde(deserialize_with = "lenient_num")]
    pub vlan_id: Option<Num>,
    /// The MAC address the VLAN interface takes.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub vlan_mac_address: Option<String>,
    /// Every other field (`vif_id`, other `bond_*` options…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Link {
    /// Its kind, from `type`.
    pub fn kind(&self) -> LinkKind {
        match self.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("bond") => LinkKind::Bond,
            Some("vlan") => LinkKind::Vlan,
            _ => LinkKind::Physical,
        }
    }
}

/// One entry of `networks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// Its identifier (`network0`…).
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    /// `ipv4`, `ipv6`, `ipv4_dhcp`, `ipv6_dhcp`, `ipv6_slaac`, `ipv6_dhcpv6-stateful`,
    /// `ipv6_dhcpv6-stateless`.
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    pub kind: String,
    /// The link id it configures.
    #[serde(deserialize_with = "lenient_string")]
    pub link: String,
    /// The static address, possibly with `/prefix`.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub ip_address: Option<String>,
    /// Dotted IPv4 mask, IPv6 mask, or prefix length.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub netmask: Option<String>,
    /// Routes through this network.
    #[serde(deserialize_with = "null_as_empty")]
    pub routes: Vec<Route>,
    /// Services reached through this network (DNS servers).
    #[serde(deserialize_with = "null_as_empty")]
    pub services: Vec<Service>,
    /// DNS servers (a form some writers use instead of `services`).
    #[serde(deserialize_with = "lenient_string_list")]
    pub dns_nameservers: Vec<String>,
    /// DNS search domains.
    #[serde(deserialize_with = "lenient_string_list")]
    pub dns_search: Vec<String>,
}

/// What a network asks for, from its `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkKind {
    /// `ipv4`: a static IPv4 address.
    Ipv4,
    /// `ipv6`: a static IPv6 address.
    Ipv6,
    /// `ipv4_dhcp`, `ipv6_dhcp`, `ipv6_dhcpv6-stateful`, `ipv6_dhcpv6-stateless`.
    Dhcp,
    /// `ipv6_slaac`: the interface is brought up, the kernel configures it.
    Slaac,
    /// Anything else, as written.
    Unknown(String),
}

impl Network {
    /// Its kind, from `type`.
    pub fn kind(&self) -> NetworkKind {
        match self.kind.to_ascii_lowercase().as_str() {
            "ipv4" => NetworkKind::Ipv4,
            "ipv6" => NetworkKind::Ipv6,
            "ipv4_dhcp" | "ipv6_dhcp" | "ipv6_dhcpv6-stateful" | "ipv6_dhcpv6-stateless" => {
                NetworkKind::Dhcp
            }
            "ipv6_slaac" => NetworkKind::Slaac,
            _ => NetworkKind::Unknown(self.kind.clone()),
        }
    }
}

/// One route of a network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// Destination network (`0.0.0.0` / `::` with mask 0 for the default route).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub network: Option<String>,
    /// Destination mask: dotted, IPv6 form or prefix length.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub netmask: Option<String>,
    /// Next hop.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub gateway: Option<String>,
}

/// A service (`{"type": "dns", "address": "…"}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `dns` (others are ignored).
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    pub kind: String,
    /// Its address.
    #[serde(deserialize_with = "lenient_string")]
    pub address: String,
}

/// `null` → empty list.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A scalar as text: strings as they are, numbers and booleans written out, `null` absent.
fn scalar_text<E: de::Error>(v: Value, what: &str) -> Result<Option<String>, E> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err(E::custom(format!(
            "expected a string or a number for {what}, found {}",
            if v.is_array() { "a list" } else { "an object" }
        ))),
    }
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    scalar_text(Value::deserialize(d)?, "a text field")
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient_opt_string(d)?.unwrap_or_default())
}

fn lenient_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items
            .into_iter()
            .map(|v| scalar_text(v, "a list entry"))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect()),
        // A single value where a list was expected: a list of one.
        other => Ok(scalar_text(other, "a list")?.into_iter().collect()),
    }
}

fn lenient_num<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Num>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::Number(n) => Some(
            n.as_u64()
                .map_or_else(|| Num::Invalid(n.to_string()), Num::Value),
        ),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(
            s.trim()
                .parse::<u64>()
                .map_or_else(|_| Num::Invalid(s.clone()), Num::Value),
        ),
        other => Some(Num::Invalid(other.to_string())),
    })
}
