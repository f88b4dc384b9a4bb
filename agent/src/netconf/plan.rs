//! From a [`NetworkData`] and the machine's NICs to an ordered list of [`NetStep`]s.
//!
//! Planning is pure (it reads nothing and touches nothing) and total: bad or partial data
//! becomes a warning naming the link or network, the part concerned and whatever depends on
//! it is left out, and every NIC left without configuration goes to the DHCP list.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::addr::{address_with_prefix, network_of, normalize_mac, prefix_of, valid_ifname};
use super::model::{Link, LinkKind, NetworkData, NetworkKind, Num};
use super::step::NetStep;

/// The smallest MTU accepted (IPv4's minimum).
const MIN_MTU: u64 = 68;
/// The largest MTU accepted.
const MAX_MTU: u64 = 65535;
/// The MII monitoring interval of a bond whose data gives none (ms).
pub const DEFAULT_MIIMON: u64 = 100;

/// A physical network interface of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNic {
    /// Its kernel name (`eth0`, `enp1s0`).
    pub name: String,
    /// Its MAC address (any case).
    pub mac: String,
}

/// What to do to the network, from [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The actions, in order: NICs, bonds, VLANs (each with its MTU and link up), addresses,
    /// routes, `resolv.conf`.
    pub steps: Vec<NetStep>,
    /// Interfaces that still need DHCP: those with a DHCP network, those the data describes
    /// without any usable configuration, and every NIC the data does not use at all.
    pub dhcp: Vec<String>,
    /// Interfaces that get a static address.
    pub static_ifaces: Vec<String>,
    /// What was left out, and why.
    pub warnings: Vec<String>,
}

/// A bond being planned.
struct Bond {
    name: String,
    mode: &'static str,
    options: Vec<(String, String)>,
    members: Vec<String>,
}

/// How an interface of the plan is used by the networks.
#[derive(Default)]
struct Use {
    /// It has a DHCP network.
    dhcp: bool,
    /// It has a usable static or SLAAC network.
    configured: bool,
    /// It is a bond member or a VLAN parent.
    lower: bool,
}

/// Plans `data` on a machine whose physical interfaces are `nics`.
pub fn plan(data: &NetworkData, nics: &[ObservedNic]) -> Plan {
    let mut p = Planner::new(data, nics);
    p.resolve_physical();
    p.resolve_bonds();
    p.resolve_vlans();
    p.emit_links();
    p.emit_networks();
    p.emit_dns();
    p.finish()
}

struct Planner<'a> {
    data: &'a NetworkData,
    nics: &'a [ObservedNic],
    /// Normalised MAC → NIC name (the first NIC with it).
    by_mac: HashMap<String, &'a str>,
    /// Every link id of the document.
    known_ids: HashSet<&'a str>,
    /// Link id → interface name, for the links planned.
    iface_of: HashMap<&'a str, String>,
    /// Interface names taken (NICs and created interfaces).
    taken: HashSet<String>,
    /// Physical interfaces planned (not bond members), in order, with their link.
    physical: Vec<(String, &'a Link)>,
    bonds: Vec<(Bond, &'a Link)>,
    /// Bond member → its bond.
    enslaved: HashMap<String, String>,
    /// VLANs planned: the step and the link.
    vlans: Vec<(NetStep, &'a Link)>,
    uses: HashMap<String, Use>,
    steps: Vec<NetStep>,
    static_ifaces: Vec<String>,
    warnings: Vec<String>,
}

impl<'a> Planner<'a> {
    fn new(data: &'a NetworkData, nics: &'a [ObservedNic]) -> Self {
        let mut by_mac = HashMap::new();
        for nic in nics {
            if let Some(mac) = normalize_mac(&nic.mac) {
                by_mac.entry(mac).or_insert(nic.name.as_str());
            }
        }
        Planner {
            data,
            nics,
            by_mac,
            known_ids: data.links.iter().map(|l| l.id.as_str()).collect(),
            iface_of: HashMap::new(),
            taken: nics.iter().map(|n| n.name.clone()).collect(),
            physical: Vec::new(),
            bonds: Vec::new(),
            enslaved: HashMap::new(),
            vlans: Vec::new(),
            uses: HashMap::new(),
            steps: Vec::new(),
            static_ifaces: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn uses(&mut self, iface: &str) -> &mut Use {
        self.uses.entry(iface.to_string()).or_default()
    }

    /// The links of `kind`, with a usable and first-seen id (others warned about once, in the
    /// physical pass).
    fn links_of(&self, kind: LinkKind) -> Vec<(usize, &'a Link)> {
        let mut seen = HashSet::new();
        self.data
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.id.is_empty() && seen.insert(l.id.as_str()))
            .filter(|(_, l)| l.kind() == kind)
            .collect()
    }

    fn resolve_physical(&mut self) {
        let mut seen = HashSet::new();
        for (i, link) in self.data.links.iter().enumerate() {
            if link.id.is_empty() {
                self.warn(format!("link {i} has no id: skipped"));
            } else if !seen.insert(link.id.as_str()) {
                self.warn(format!(
                    "link {:?} is defined more than once: only the first is used",
                    link.id
                ));
            }
        }
        for (_, link) in self.links_of(LinkKind::Physical) {
            let id = &link.id;
            let Some(mac_text) = link.ethernet_mac_address.as_deref() else {
                self.warn(format!(
                    "link {id:?} (type {}) has no ethernet_mac_address: skipped",
                    link.kind.as_deref().unwrap_or("null")
                ));
                continue;
            };
            let Some(mac) = normalize_mac(mac_text) else {
                self.warn(format!(
                    "link {id:?}: {mac_text:?} is not a MAC address: skipped"
                ));
                continue;
            };
            let Some(nic) = self.by_mac.get(&mac).map(|n| n.to_string()) else {
                self.warn(format!(
                    "link {id:?}: no network interface has MAC {mac}: skipped"
                ));
                continue;
            };
            self.iface_of.insert(id, nic.clone());
            if !self.physical.iter().any(|(n, _)| *n == nic) {
                self.physical.push((nic, link));
            }
        }
    }

    fn resolve_bonds(&mut self) {
        for (_, link) in self.links_of(LinkKind::Bond) {
            let id = &link.id;
            let mode = match link.bond_mode.as_deref() {
                None => "balance-rr",
                Some(m) => match bond_mode(m) {
                    Some(mode) => mode,
                    None => {
                        self.warn(format!(
                            "bond {id:?}: unknown bond_mode {m:?}: bond skipped"
                        ));
                        continue;
                    }
                },
            };
            let mut members = Vec::new();
            for member in &link.bond_links {
                let physical = self
                    .data
                    .links
                    .iter()
                    .find(|l| l.id == *member)
                    .is_some_and(|l| l.kind() == LinkKind::Physical);
                match self.iface_of.get(member.as_str()) {
                    Some(nic) if physical => {
                        if self.enslaved.contains_key(nic) || members.contains(nic) {
                            self.warn(format!(
                                "bond {id:?}: member {member:?} ({nic}) is already in a bond: \
                                 left out"
                            ));
                        } else {
                            members.push(nic.clone());
                        }
                    }
                    _ if !self.known_ids.contains(member.as_str()) => self.warn(format!(
                        "bond {id:?}: member link {member:?} is not in the network data"
                    )),
                    _ if !physical => self.warn(format!(
                        "bond {id:?}: member link {member:?} is not a physical link: left out"
                    )),
                    _ => self.warn(format!(
                        "bond {id:?}: member link {member:?} matches no network interface"
                    )),
                }
            }
            if members.is_empty() {
                self.warn(format!(
                    "bond {id:?}: none of its bond_links {:?} matches a network interface: \
                     bond skipped",
                    link.bond_links
                ));
                continue;
            }
            let mut options = Vec::new();
            let miimon = match &link.bond_miimon {
                None => DEFAULT_MIIMON,
                Some(Num::Value(v)) => *v,
                Some(bad @ Num::Invalid(_)) => {
                    self.warn(format!(
                        "bond {id:?}: bond_miimon {bad} is not a number: {DEFAULT_MIIMON} used"
                    ));
                    DEFAULT_MIIMON
                }
            };
            options.push(("miimon".to_string(), miimon.to_string()));
            if let Some(policy) = &link.bond_xmit_hash_policy {
                self.bond_option(id, "xmit_hash_policy", policy, &mut options);
            }
            for (key, value) in &link.other {
                let Some(option) = key.strip_prefix("bond_") else {
                    continue;
                };
                let text = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => u8::from(*b).to_string(),
                    _ => {
                        self.warn(format!("bond {id:?}: {key} is not a single value: ignored"));
                        continue;
                    }
                };
                self.bond_option(id, option, &text, &mut options);
            }
            let name = match link.name.as_deref() {
                Some(n) if valid_ifname(n) && !self.taken.contains(n) => n.to_string(),
                // bond0, bond1…: the lowest free number (there are fewer bonds than 2^16).
                _ => match (0..=u16::MAX)
                    .map(|k| format!("bond{k}"))
                    .find(|n| !self.taken.contains(n))
                {
                    Some(n) => n,
                    None => {
                        self.warn(format!("bond {id:?}: no free interface name: skipped"));
                        continue;
                    }
                },
            };
            self.taken.insert(name.clone());
            for m in &members {
                self.enslaved.insert(m.clone(), name.clone());
            }
            for m in &members {
                self.uses(m).lower = true;
            }
            self.iface_of.insert(id, name.clone());
            self.bonds.push((
                Bond {
                    name,
                    mode,
                    options,
                    members,
                },
                link,
            ));
        }
        // Members are configured through their bond.
        let enslaved = &self.enslaved;
        self.physical.retain(|(nic, _)| !enslaved.contains_key(nic));
    }

    fn bond_option(
        &mut self,
        id: &str,
        option: &str,
        value: &str,
        options: &mut Vec<(String, String)>,
    ) {
        let known = matches!(option, "mode" | "links" | "miimon");
        if known || options.iter().any(|(o, _)| o == option) {
            return;
        }
        let name_ok = !option.is_empty()
            && option
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let value = value.trim();
        let value_ok = !value.is_empty()
            && value.len() <= 256
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if name_ok && value_ok {
            options.push((option.to_string(), value.to_string()));
        } else {
            self.warn(format!(
                "bond {id:?}: option bond_{option} = {value:?} is not usable: ignored"
            ));
        }
    }

    fn resolve_vlans(&mut self) {
        let mut pending = self.links_of(LinkKind::Vlan);
        // VLANs may sit on VLANs listed later: go round while something was resolved.
        loop {
            let before = pending.len();
            pending.retain(|(_, link)| !self.try_vlan(link, false));
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        for (_, link) in pending {
            self.try_vlan(link, true);
        }
    }

    /// Plans VLAN `link` if its parent is planned; `last` reports why not. True when it is
    /// settled (planned or refused for good).
    fn try_vlan(&mut self, link: &'a Link, last: bool) -> bool {
        let id = &link.id;
        let Some(parent_link) = link.vlan_link.as_deref() else {
            self.warn(format!("vlan {id:?} has no vlan_link: skipped"));
            return true;
        };
        let vlan = match &link.vlan_id {
            None => {
                self.warn(format!("vlan {id:?} has no vlan_id: skipped"));
                return true;
            }
            Some(Num::Value(v)) if (1..=4094).contains(v) => *v as u16,
            Some(bad) => {
                self.warn(format!(
                    "vlan {id:?}: vlan_id {bad} is not in 1..=4094: skipped"
                ));
                return true;
            }
        };
        let Some(parent) = self.iface_of.get(parent_link).cloned() else {
            if last {
                let why = if parent_link == id.as_str() {
                    "is the VLAN itself"
                } else if self.known_ids.contains(parent_link) {
                    "was not configured"
                } else {
                    "is not in the network data"
                };
                self.warn(format!(
                    "vlan {id:?}: its vlan_link {parent_link:?} {why}: skipped"
                ));
            }
            return last;
        };
        if let Some(bond) = self.enslaved.get(&parent) {
            let message = format!(
                "vlan {id:?}: its vlan_link {parent_link:?} is a member of bond {bond}: skipped"
            );
            self.warn(message);
            return true;
        }
        let mac = match link.vlan_mac_address.as_deref() {
            None => None,
            Some(text) => {
                let mac = normalize_mac(text);
                if mac.is_none() {
                    self.warn(format!(
                        "vlan {id:?}: vlan_mac_address {text:?} is not a MAC address: ignored"
                    ));
                }
                mac
            }
        };
        // The same VLAN twice (two links for one tag): one interface.
        let existing = self.vlans.iter().find_map(|(step, _)| match step {
            NetStep::CreateVlan {
                parent: p,
                id: v,
                name,
                ..
            } if *p == parent && *v == vlan => Some(name.clone()),
            _ => None,
        });
        if let Some(name) = existing {
            self.warn(format!(
                "vlan {id:?}: VLAN {vlan} on {parent} is already planned as {name}"
            ));
            self.iface_of.insert(id, name);
            return true;
        }
        let conventional = format!("{parent}.{vlan}");
        let name = if valid_ifname(&conventional) && !self.taken.contains(&conventional) {
            conventional
        } else {
            let Some(free) = (0..)
                .map(|k: u32| {
                    if k == 0 {
                        format!("vlan{vlan}")
                    } else {
                        format!("vlan{vlan}-{k}")
                    }
                })
                .take(100)
                .find(|n| !self.taken.contains(n))
            else {
                self.warn(format!("vlan {id:?}: no free interface name: skipped"));
                return true;
            };
            self.warn(format!(
                "vlan {id:?}: {conventional} is not a usable interface name: named {free}"
            ));
            free
        };
        self.taken.insert(name.clone());
        self.uses(&parent).lower = true;
        self.iface_of.insert(id, name.clone());
        self.vlans.push((
            NetStep::CreateVlan {
                parent,
                id: vlan,
                name,
                mac,
            },
            link,
        ));
        true
    }

    /// The MTU step of `link` on `iface`, if it has a valid MTU.
    fn mtu_step(&mut self, link: &Link, iface: &str) -> Option<NetStep> {
        match &link.mtu {
            None => None,
            Some(Num::Value(v)) if (MIN_MTU..=MAX_MTU).contains(v) => Some(NetStep::SetMtu {
                iface: iface.to_string(),
                mtu: *v as u32,
            }),
            Some(bad) => {
                self.warn(format!(
                    "link {:?}: mtu {bad} is not in {MIN_MTU}..={MAX_MTU}: ignored",
                    link.id
                ));
                None
            }
        }
    }

    fn emit_links(&mut self) {
        for (nic, link) in std::mem::take(&mut self.physical) {
            if let Some(step) = self.mtu_step(link, &nic) {
                self.steps.push(step);
            }
            self.steps.push(NetStep::LinkUp { iface: nic });
        }
        for (bond, link) in std::mem::take(&mut self.bonds) {
            let name = bond.name.clone();
            self.steps.push(NetStep::CreateBond {
                name: bond.name,
                mode: bond.mode.to_string(),
                options: bond.options,
                members: bond.members,
            });
            if let Some(step) = self.mtu_step(link, &name) {
                self.steps.push(step);
            }
            self.uses(&name);
            self.steps.push(NetStep::LinkUp { iface: name });
        }
        for (step, link) in std::mem::take(&mut self.vlans) {
            let Some(name) = step.iface().map(str::to_string) else {
                continue;
            };
            self.steps.push(step);
            if let Some(mtu) = self.mtu_step(link, &name) {
                self.steps.push(mtu);
            }
            self.uses(&name);
            self.steps.push(NetStep::LinkUp { iface: name });
        }
    }

    fn emit_networks(&mut self) {
        let mut routes = Vec::new();
        let mut default_v4 = false;
        let mut default_v6 = false;
        for (i, net) in self.data.networks.iter().enumerate() {
            let label = if net.id.is_empty() {
                format!("networks[{i}]")
            } else {
                format!("{:?}", net.id)
            };
            let Some(iface) = self.iface_of.get(net.link.as_str()).cloned() else {
                let why = if net.link.is_empty() {
                    "has no link".to_string()
                } else if self.known_ids.contains(net.link.as_str()) {
                    format!("is on link {:?}, which was not configured", net.link)
                } else {
                    format!("is on unknown link {:?}", net.link)
                };
                self.warn(format!("network {label} {why}: skipped"));
                continue;
            };
            if let Some(bond) = self.enslaved.get(&iface) {
                let message = format!(
                    "network {label} is on link {:?}, a member of bond {bond}: skipped",
                    net.link
                );
                self.warn(message);
                continue;
            }
            match net.kind() {
                NetworkKind::Dhcp => self.uses(&iface).dhcp = true,
                NetworkKind::Slaac => self.uses(&iface).configured = true,
                NetworkKind::Unknown(kind) => self.warn(format!(
                    "network {label} has unknown type {kind:?}: skipped"
                )),
                NetworkKind::Ipv4 | NetworkKind::Ipv6 => {
                    let Some(ip) = net.ip_address.as_deref() else {
                        self.warn(format!("network {label} has no ip_address: skipped"));
                        continue;
                    };
                    let (addr, prefix) = match address_with_prefix(ip, net.netmask.as_deref()) {
                        Ok(a) => a,
                        Err(e) => {
                            self.warn(format!("network {label}: {e}: skipped"));
                            continue;
                        }
                    };
                    self.steps.push(NetStep::AddAddress {
                        iface: iface.clone(),
                        addr,
                        prefix,
                    });
                    self.uses(&iface).configured = true;
                    if !self.static_ifaces.contains(&iface) {
                        self.static_ifaces.push(iface.clone());
                    }
                    for (r, route) in net.routes.iter().enumerate() {
                        match route_step(route, &iface) {
                            Ok(step) => {
                                if let NetStep::AddRoute {
                                    dest, prefix: 0, ..
                                } = &step
                                {
                                    let seen = if dest.is_ipv4() {
                                        &mut default_v4
                                    } else {
                                        &mut default_v6
                                    };
                                    if *seen {
                                        self.warn(format!(
                                            "network {label}: route {r} is a second default \
                                             route: ignored"
                                        ));
                                        continue;
                                    }
                                    *seen = true;
                                }
                                routes.push(step);
                            }
                            Err(e) => {
                                self.warn(format!("network {label}: route {r}: {e}: ignored"));
                            }
                        }
                    }
                }
            }
        }
        self.steps.extend(routes);
    }

    fn emit_dns(&mut self) {
        let mut nameservers: Vec<IpAddr> = Vec::new();
        let mut search: Vec<String> = Vec::new();
        let mut add = |p: &mut Self, text: &str, whose: &str| match text.trim().parse::<IpAddr>() {
            Ok(a) if !nameservers.contains(&a) => nameservers.push(a),
            Ok(_) => {}
            Err(_) => p.warn(format!(
                "{whose}: DNS server {text:?} is not an IP address: ignored"
            )),
        };
        let top: Vec<&str> = dns_of(&self.data.services).collect();
        for s in top {
            add(self, s, "services");
        }
        for (i, net) in self.data.networks.iter().enumerate() {
            let whose = if net.id.is_empty() {
                format!("networks[{i}]")
            } else {
                format!("network {:?}", net.id)
            };
            let servers: Vec<&str> = dns_of(&net.services)
                .chain(net.dns_nameservers.iter().map(String::as_str))
                .collect();
            for s in servers {
                add(self, s, &whose);
            }
            for domain in &net.dns_search {
                let d = domain.trim();
                if d.is_empty()
                    || d.len() > 253
                    || d.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    self.warn(format!("{whose}: DNS search domain {domain:?} ignored"));
                } else if !search.iter().any(|s| s == d) {
                    search.push(d.to_string());
                }
            }
        }
        if !nameservers.is_empty() || !search.is_empty() {
            self.steps.push(NetStep::WriteResolvConf {
                nameservers,
                search,
            });
        }
    }

    fn finish(mut self) -> Plan {
        let needs_dhcp = |u: Option<&Use>| u.is_none_or(|u| u.dhcp || (!u.configured && !u.lower));
        let mut dhcp = Vec::new();
        for nic in self.nics {
            if needs_dhcp(self.uses.get(&nic.name)) && !dhcp.contains(&nic.name) {
                dhcp.push(nic.name.clone());
            }
        }
        for step in &self.steps {
            if let NetStep::CreateBond { name, .. } | NetStep::CreateVlan { name, .. } = step
                && needs_dhcp(self.uses.get(name))
                && !dhcp.contains(name)
            {
                dhcp.push(name.clone());
            }
        }
        self.warnings.dedup();
        Plan {
            steps: self.steps,
            dhcp,
            static_ifaces: self.static_ifaces,
            warnings: self.warnings,
        }
    }
}

/// The addresses of the `dns` services.
fn dns_of(services: &[super::model::Service]) -> impl Iterator<Item = &str> {
    services
        .iter()
        .filter(|s| s.kind.eq_ignore_ascii_case("dns"))
        .map(|s| s.address.as_str())
}

/// The kernel's name of bonding mode `text` (a name or a number 0-6).
pub fn bond_mode(text: &str) -> Option<&'static str> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "0" | "balance-rr" => "balance-rr",
        "1" | "active-backup" => "active-backup",
        "2" | "balance-xor" => "balance-xor",
        "3" | "broadcast" => "broadcast",
        "4" | "802.3ad" => "802.3ad",
        "5" | "balance-tlb" => "balance-tlb",
        "6" | "balance-alb" => "balance-alb",
        _ => return None,
    })
}

/// The route step of `route` through `iface`.
fn route_step(route: &super::model::Route, iface: &str) -> Result<NetStep, String> {
    let network = route
        .network
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("no network")?;
    let (dest_text, inline) = match network.split_once('/') {
        Some((d, p)) => (d, Some(p)),
        None => (network, None),
    };
    let dest: IpAddr = dest_text
        .parse()
        .map_err(|_| format!("network {dest_text:?} is not an IP address"))?;
    let mask = inline.or(route
        .netmask
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty()));
    let prefix = match mask {
        Some(m) => prefix_of(m, &dest)?,
        None if dest.is_unspecified() => 0,
        None if dest.is_ipv4() => 32,
        None => 128,
    };
    let gateway = match route
        .gateway
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        None => None,
        Some(g) => {
            let gw: IpAddr = g
                .parse()
                .map_err(|_| format!("gateway {g:?} is not an IP address"))?;
            if gw.is_ipv4() != dest.is_ipv4() {
                return Err(format!("gateway {gw} is not of the family of {dest}"));
            }
            Some(gw)
        }
    };
    Ok(NetStep::AddRoute {
        iface: iface.to_string(),
        dest: network_of(dest, prefix),
        prefix,
        gateway,
    })
}
