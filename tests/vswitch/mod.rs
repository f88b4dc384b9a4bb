//! A userspace Ethernet switch with 802.1Q VLANs for the VM tests (the test host's kernel has
//! neither a bridge nor 8021q): the `vswitch` binary (`tests/bin/vswitch.rs`) is
//! [`run`] over a [`Config`].
//!
//! - [`frame`]: parsing, tagging and untagging frames;
//! - [`switch`]: VLAN membership, MAC learning per VLAN, flooding (pure, unit-tested);
//! - [`beacon`]: the LLDP frames announcing the VLANs on trunks;
//! - [`config`], [`port`], [`run`]: command line, UDP and tap ports, the poll loop.

pub mod beacon;
pub mod config;
pub mod frame;
pub mod port;
mod run;
pub mod switch;

#[cfg(test)]
mod tests;

pub use config::{Config, Endpoint, PortSpec};
pub use run::run;
pub use switch::{Mode, Switch};
