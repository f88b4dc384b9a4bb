//! The node and port dictionaries sent to the agent as `params.node` / `params.ports`, shaped
//! like Ironic's `Node.as_dict(secure=True)` and `Port.as_dict()` (secrets masked).

use serde::Serialize;
use uuid::Uuid;

use crate::mask;
use crate::model::{JsonMap, Node, Port, PowerState};
use crate::state::ProvisionState;
use crate::timefmt;

/// `params.node`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentNodeDict {
    /// Node UUID.
    pub uuid: Uuid,
    /// Node name.
    pub name: Option<String>,
    /// Provision state.
    pub provision_state: ProvisionState,
    /// Target provision state (the shim has none).
    pub target_provision_state: Option<ProvisionState>,
    /// Power state.
    pub power_state: Option<PowerState>,
    /// Target power state (the shim has none).
    pub target_power_state: Option<PowerState>,
    /// `properties`.
    pub properties: JsonMap,
    /// `instance_info`, secrets masked.
    pub instance_info: JsonMap,
    /// `driver_info`, secrets masked.
    pub driver_info: JsonMap,
    /// `driver_internal_info`, secrets (the agent token) masked.
    pub driver_internal_info: JsonMap,
    /// `extra`.
    pub extra: JsonMap,
    /// `instance_uuid`.
    pub instance_uuid: Option<Uuid>,
    /// `maintenance`.
    pub maintenance: bool,
    /// `last_error`.
    pub last_error: Option<String>,
    /// `driver`.
    pub driver: &'static str,
    /// `target_raid_config`.
    pub target_raid_config: JsonMap,
    /// `raid_config`.
    pub raid_config: JsonMap,
    /// `created_at` (RFC 3339).
    pub created_at: String,
    /// `updated_at` (RFC 3339).
    pub updated_at: Option<String>,
}

/// One entry of `params.ports`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentPortDict {
    /// Port UUID.
    pub uuid: Uuid,
    /// MAC address.
    pub address: String,
    /// The owning node.
    pub node_uuid: Uuid,
    /// `extra`.
    pub extra: JsonMap,
    /// `local_link_connection`.
    pub local_link_connection: JsonMap,
    /// `internal_info`.
    pub internal_info: JsonMap,
    /// `pxe_enabled`.
    pub pxe_enabled: bool,
    /// `physical_network`.
    pub physical_network: Option<String>,
    /// `is_smartnic`.
    pub is_smartnic: bool,
    /// `name`.
    pub name: Option<String>,
    /// `created_at` (RFC 3339).
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: Option<String>,
}

impl AgentNodeDict {
    /// Builds the dictionary of `node` with secrets masked.
    pub fn new(node: &Node) -> AgentNodeDict {
        AgentNodeDict::build(node, true)
    }

    /// Builds the dictionary of `node` with secrets masked except `instance_info.configdrive`
    /// (Ironic's `as_dict(secure=True, mask_configdrive=False)`, sent with
    /// `execute_deploy_step`).
    pub fn with_configdrive(node: &Node) -> AgentNodeDict {
        AgentNodeDict::build(node, false)
    }

    fn build(node: &Node, mask_configdrive: bool) -> AgentNodeDict {
        let mut instance_info = mask::mask_map(&node.instance_info);
        if !mask_configdrive && let Some(configdrive) = node.instance_info.get("configdrive") {
            instance_info.insert("configdrive".to_string(), configdrive.clone());
        }
        let dii = serde_json::to_value(&node.driver_internal_info)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let target_raid_config = if node.target_raid_config.is_empty() {
            node.instance_info
                .get("target_raid_config")
                .or_else(|| node.properties.get("target_raid_config"))
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
        } else {
            node.target_raid_config.clone()
        };
        AgentNodeDict {
            uuid: node.uuid,
            name: node.name.clone(),
            provision_state: node.provision_state,
            target_provision_state: target_provision_state(node),
            power_state: node.power_state,
            target_power_state: None,
            properties: node.properties.clone(),
            instance_info,
            driver_info: mask::mask_map(&node.driver_info),
            driver_internal_info: mask::mask_map(&dii),
            extra: JsonMap::new(),
            instance_uuid: None,
            maintenance: false,
            last_error: node.last_error.clone(),
            driver: "conductor-shim",
            target_raid_config,
            raid_config: node.raid_config.clone(),
            created_at: timefmt::format(node.created_at),
            updated_at: node.updated_at.map(timefmt::format),
        }
    }
}

/// The node's `target_provision_state` (set while cleaning), else `active` while a deploy
/// runs (Ironic's target of `deploying` / `wait call-back`).
fn target_provision_state(node: &Node) -> Option<ProvisionState> {
    if node.target_provision_state.is_some() {
        return node.target_provision_state;
    }
    let deploying = matches!(
        node.provision_state,
        ProvisionState::Deploying | ProvisionState::DeployWait
    ) && node
        .driver_internal_info
        .deploy_phase
        .is_some_and(crate::model::DeployPhase::in_progress);
    deploying.then_some(ProvisionState::Active)
}

impl AgentPortDict {
    /// Builds the dictionary of `port`.
    pub fn new(port: &Port) -> AgentPortDict {
        AgentPortDict {
            uuid: port.uuid,
            address: port.address.clone(),
            node_uuid: port.node_uuid,
            extra: JsonMap::new(),
            local_link_connection: JsonMap::new(),
            internal_info: JsonMap::new(),
            pxe_enabled: true,
            physical_network: None,
            is_smartnic: false,
            name: None,
            created_at: timefmt::format(port.created_at),
            updated_at: None,
        }
    }
}

/// The `{"node": ..., "ports": [...]}` params of `get_*_steps`.
#[derive(Debug, Clone, Serialize)]
pub struct StepsParams {
    /// The node.
    pub node: AgentNodeDict,
    /// Its ports.
    pub ports: Vec<AgentPortDict>,
}

impl StepsParams {
    /// Builds the params for `node` and its `ports`.
    pub fn new(node: &Node, ports: &[Port]) -> StepsParams {
        StepsParams {
            node: AgentNodeDict::new(node),
            ports: ports.iter().map(AgentPortDict::new).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::NewNode;
    use crate::store::Store;

    #[test]
    fn masks_token_and_passwords() {
        let mut store = Store::open_in_memory().unwrap();
        let node = store
            .create_node(NewNode {
                macs: vec!["02:fc:00:00:00:01".into()],
                driver_info: json!({"ipmi_password": "pw"}).as_object().unwrap().clone(),
                ..Default::default()
            })
            .unwrap();
        let mut node = node;
        node.driver_internal_info.agent_secret_token = Some("secret".into());
        let ports = store.ports(node.uuid).unwrap();
        let v = serde_json::to_value(StepsParams::new(&node, &ports)).unwrap();
        assert_eq!(
            v["node"]["driver_internal_info"]["agent_secret_token"],
            "******"
        );
        assert_eq!(v["node"]["driver_info"]["ipmi_password"], "******");
        assert_eq!(v["node"]["provision_state"], "enroll");
        assert_eq!(v["ports"][0]["address"], "02:fc:00:00:00:01");
        assert_eq!(v["ports"][0]["node_uuid"], json!(node.uuid.to_string()));
    }

    #[test]
    fn configdrive_unmasked_on_request() {
        let mut store = Store::open_in_memory().unwrap();
        let node = store
            .create_node(NewNode {
                instance_info: json!({"configdrive": "H4sI", "image_password": "x"})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..Default::default()
            })
            .unwrap();
        let masked = serde_json::to_value(AgentNodeDict::new(&node)).unwrap();
        assert_eq!(masked["instance_info"]["configdrive"], "******");
        let open = serde_json::to_value(AgentNodeDict::with_configdrive(&node)).unwrap();
        assert_eq!(open["instance_info"]["configdrive"], "H4sI");
        assert_eq!(open["instance_info"]["image_password"], "******");
    }

    #[test]
    fn raid_configs_and_target_state() {
        let mut store = Store::open_in_memory().unwrap();
        let mut node = store.create_node(NewNode::default()).unwrap();
        let v = serde_json::to_value(AgentNodeDict::new(&node)).unwrap();
        assert_eq!(v["target_raid_config"], json!({}));
        assert_eq!(v["target_provision_state"], json!(null));
        node.target_raid_config = json!({"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}]})
            .as_object()
            .unwrap()
            .clone();
        node.raid_config = json!({"logical_disks": []}).as_object().unwrap().clone();
        node.provision_state = ProvisionState::Cleaning;
        node.target_provision_state = Some(ProvisionState::Available);
        let v = serde_json::to_value(AgentNodeDict::new(&node)).unwrap();
        assert_eq!(
            v["target_raid_config"]["logical_disks"][0]["raid_level"],
            "1"
        );
        assert_eq!(v["raid_config"], json!({"logical_disks": []}));
        assert_eq!(v["provision_state"], "cleaning");
        assert_eq!(v["target_provision_state"], "available");
    }
}
