//! [`NetStep`]: one network configuration action, the unit of a [`Plan`](super::Plan), of
//! [`NetOps`](super::NetOps) and of the recording (one JSON object per step, tagged by
//! `"step"`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One configuration action, in the order of a [`Plan`](super::Plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum NetStep {
    /// Creates bond `name` in `mode`, sets `options` (sysfs `bonding/` file name, value; the
    /// first is always `miimon`), then enslaves `members`.
    CreateBond {
        /// The bond's interface name.
        name: String,
        /// The kernel's mode name (`active-backup`, `802.3ad`…).
        mode: String,
        /// Further bonding options, in order.
        options: Vec<(String, String)>,
        /// The NICs enslaved.
        members: Vec<String>,
    },
    /// Creates VLAN interface `name` with tag `id` on `parent`, with MAC `mac` when given.
    CreateVlan {
        /// The interface it sits on.
        parent: String,
        /// The VLAN id (1-4094).
        id: u16,
        /// The new interface's name (`<parent>.<id>`).
        name: String,
        /// Its MAC address (lower case), when the data sets one.
        mac: Option<String>,
    },
    /// Sets the MTU of `iface`.
    SetMtu {
        /// The interface.
        iface: String,
        /// The MTU.
        mtu: u32,
    },
    /// Brings `iface` up.
    LinkUp {
        /// The interface.
        iface: String,
    },
    /// Adds `addr/prefix` to `iface`.
    AddAddress {
        /// The interface.
        iface: String,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Adds the route to `dest/prefix` (prefix 0: the default route) through `iface`.
    AddRoute {
        /// The interface.
        iface: String,
        /// The destination network (host bits cleared).
        dest: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// The next hop, when there is one.
        gateway: Option<IpAddr>,
    },
    /// Writes `resolv.conf`.
    WriteResolvConf {
        /// `nameserver` lines, in order.
        nameservers: Vec<IpAddr>,
        /// `search` domains.
        search: Vec<String>,
    },
}

impl NetStep {
    /// The interface this step creates or configures (`None` for `resolv.conf`).
    pub fn iface(&self) -> Option<&str> {
        match self {
            NetStep::CreateBond { name, .. } | NetStep::CreateVlan { name, .. } => Some(name),
            NetStep::SetMtu { iface, .. }
            | NetStep::LinkUp { iface }
            | NetStep::AddAddress { iface, .. }
            | NetStep::AddRoute { iface, .. } => Some(iface),
            NetStep::WriteResolvConf { .. } => None,
        }
    }

    /// The interfaces that must be in order for this step to make sense: a bond's members, a
    /// VLAN's parent, the configured interface itself.
    pub fn needs(&self) -> Vec<&str> {
        match self {
            NetStep::CreateBond { members, .. } => members.iter().map(String::as_str).collect(),
            NetStep::CreateVlan { parent, .. } => vec![parent.as_str()],
            NetStep::WriteResolvConf { .. } => Vec::new(),
            other => other.iface().into_iter().collect(),
        }
    }
}
