//! The parts of Ironic's node and port objects that the agent reads.
//!
//! Ironic sends the whole node (about 65 keys); we type the fields we use and keep the rest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An Ironic node as sent in `params.node` or the lookup response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Node UUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// `properties` (root_device hints, capabilities, skip_block_devices, ...).
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// `instance_info` (image, root_device, ...).
    #[serde(default)]
    pub instance_info: Map<String, Value>,
    /// `driver_info` (burn-in settings, ...).
    #[serde(default)]
    pub driver_info: Map<String, Value>,
    /// `driver_internal_info` (erase settings, ...).
    #[serde(default)]
    pub driver_internal_info: Map<String, Value>,
    /// `target_raid_config`.
    #[serde(default)]
    pub target_raid_config: Option<Value>,
    /// Everything else Ironic sends.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An Ironic port as sent in `params.ports`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// The port's MAC address.
    #[serde(default)]
    pub address: Option<String>,
    /// Port UUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
