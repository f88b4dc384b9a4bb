//! ironic-agent: a statically linked, wire-compatible replacement for ironic-python-agent.
//!
//! The agent boots in a deploy ramdisk, is inspected, looks its node up in Ironic, heartbeats,
//! and serves IPA's REST API through which the conductor drives the machine. Hardware work goes
//! through the [`hardware_managers::Chain`].

pub mod agent;
pub mod api;
pub mod bootloader;
pub mod clean;
pub mod commands;
pub mod conductor;
pub mod config;
pub mod context;
pub mod deploy;
pub mod devices;
pub mod disk;
pub mod efibootmgr;
pub mod fetch;
pub mod image;
pub mod limits;
pub mod logbuf;
pub mod mdns;
pub mod media;
pub mod netconf;
pub mod netsetup;
pub mod network;
pub mod ntp;
pub mod power;
pub mod record;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod stop;
pub mod tls;
pub mod tools;

#[cfg(any(test, feature = "test-support"))]
pub mod testutil;

/// The version reported in `/v1/status` and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
