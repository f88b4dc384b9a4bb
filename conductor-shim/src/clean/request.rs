//! What the CLI stores to start cleaning (`node provide`, `clean`) and the other
//! provision-state verbs around it (`node manage`), plus `node set`. Every check happens
//! before anything is written: a refused request leaves the node as it was.
//!
//! A cleaning request puts the node in `clean wait` with `target_provision_state`
//! `available` (automated) or `manageable` (manual, with the requested steps in
//! `driver_internal_info.requested_clean_steps`) and `clean_phase = requested`; the agent's
//! next heartbeat starts it ([`crate::clean`]). The agent session (URL, token, certificate)
//! is kept: the shim cannot boot a new ramdisk, so the running agent does the cleaning.

use serde_json::Value;

use super::raid;
use crate::model::{CleanPhase, JsonMap, Node, RequestedStep};
use crate::state::ProvisionState;
use crate::store::{Store, StoreError};

/// A request the node cannot take.
#[derive(Debug, thiserror::Error)]
pub enum CleanRequestError {
    /// A parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The node's state does not allow the action.
    #[error(
        "the requested action \"{action}\" can not be performed on node {node} while it is in \
         state \"{state}\"{hint}"
    )]
    WrongState {
        /// The verb (`provide`, `clean`, `manage`, `set`).
        action: &'static str,
        /// Node UUID.
        node: String,
        /// Its state.
        state: ProvisionState,
        /// What to do instead.
        hint: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const NEEDS_MANAGEABLE: &str = " (it must be manageable; see `conductor-shim node manage`)";

/// Whether the node is busy with a step-driven operation.
fn busy(n: &Node) -> bool {
    matches!(
        n.provision_state,
        ProvisionState::Cleaning
            | ProvisionState::CleanWait
            | ProvisionState::Deploying
            | ProvisionState::DeployWait
            | ProvisionState::ServiceWait
            | ProvisionState::Servicing
    )
}

/// Starts cleaning of a `manageable` node: `steps` empty ⇒ automated (ends `available`),
/// else manual (ends `manageable`).
fn request(
    store: &mut Store,
    ident: &str,
    action: &'static str,
    steps: Option<Vec<RequestedStep>>,
) -> Result<Node, CleanRequestError> {
    let uuid = store.get_node(ident)?.uuid;
    store.update_node(uuid, move |n| {
        if n.provision_state != ProvisionState::Manageable {
            return Err(CleanRequestError::WrongState {
                action,
                node: n.uuid.to_string(),
                state: n.provision_state,
                hint: NEEDS_MANAGEABLE,
            });
        }
        let manual = steps.is_some();
        n.provision_state = ProvisionState::CleanWait;
        n.target_provision_state = Some(if manual {
            ProvisionState::Manageable
        } else {
            ProvisionState::Available
        });
        n.clean_step = None;
        n.last_error = None;
        let dii = &mut n.driver_internal_info;
        dii.wipe_clean_info();
        dii.requested_clean_steps = steps;
        dii.clean_phase = Some(CleanPhase::Requested);
        Ok(n.clone())
    })
}

/// `node provide`: automated cleaning of a `manageable` node, ending `available`.
pub fn request_provide(store: &mut Store, ident: &str) -> Result<Node, CleanRequestError> {
    request(store, ident, "provide", None)
}

/// `clean --step ...`: manual cleaning of a `manageable` node with `steps` in this order,
/// ending `manageable`.
pub fn request_clean(
    store: &mut Store,
    ident: &str,
    steps: &[RequestedStep],
) -> Result<Node, CleanRequestError> {
    if steps.is_empty() {
        return Err(CleanRequestError::Invalid(
            "manual cleaning needs at least one step (--step)".to_string(),
        ));
    }
    request(store, ident, "clean", Some(steps.to_vec()))
}

/// `node manage`: `enroll`, `available`, `clean failed`, `inspect failed` or `adopt failed`
/// ⇒ `manageable` (Ironic's `manage` verb; the shim has no BMC to verify).
pub fn manage(store: &mut Store, ident: &str) -> Result<Node, CleanRequestError> {
    let uuid = store.get_node(ident)?.uuid;
    store.update_node(uuid, |n| {
        if !matches!(
            n.provision_state,
            ProvisionState::Enroll
                | ProvisionState::Available
                | ProvisionState::CleanFailed
                | ProvisionState::InspectFailed
                | ProvisionState::AdoptFailed
        ) {
            return Err(CleanRequestError::WrongState {
                action: "manage",
                node: n.uuid.to_string(),
                state: n.provision_state,
                hint: " (manage takes enroll, available, clean failed, inspect failed or adopt failed nodes)",
            });
        }
        n.provision_state = ProvisionState::Manageable;
        n.target_provision_state = None;
        n.clean_step = None;
        n.driver_internal_info.clean_progress = None;
        Ok(n.clone())
    })
}

/// What `node set` changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeUpdate {
    /// New `target_raid_config` (`{}` clears it).
    pub target_raid_config: Option<Value>,
    /// `properties` entries to set.
    pub properties: JsonMap,
    /// `driver_info` entries to set.
    pub driver_info: JsonMap,
    /// `instance_info` entries to set.
    pub instance_info: JsonMap,
    /// New `disable_power_off`.
    pub disable_power_off: Option<bool>,
}

/// `node set`: changes fields of a node that is not busy cleaning, deploying or servicing.
pub fn update(
    store: &mut Store,
    ident: &str,
    change: NodeUpdate,
) -> Result<Node, CleanRequestError> {
    if change == NodeUpdate::default() {
        return Err(CleanRequestError::Invalid(
            "nothing to set (use --target-raid-config, --property, --driver-info, \
             --instance-info or --disable-power-off)"
                .to_string(),
        ));
    }
    let raid = change
        .target_raid_config
        .as_ref()
        .map(raid::validate_target_raid_config)
        .transpose()
        .map_err(CleanRequestError::Invalid)?;
    let uuid = store.get_node(ident)?.uuid;
    store.update_node(uuid, move |n| {
        if busy(n) {
            return Err(CleanRequestError::WrongState {
                action: "set",
                node: n.uuid.to_string(),
                state: n.provision_state,
                hint: " (wait until it is done)",
            });
        }
        if let Some(raid) = raid {
            n.target_raid_config = raid;
        }
        n.properties.extend(change.properties);
        n.driver_info.extend(change.driver_info);
        n.instance_info.extend(change.instance_info);
        if let Some(disable) = change.disable_power_off {
            n.disable_power_off = disable;
        }
        Ok(n.clone())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::NewNode;

    fn store_with(state: ProvisionState) -> Store {
        let mut store = Store::open_in_memory().unwrap();
        store
            .create_node(NewNode {
                name: Some("n1".into()),
                provision_state: state,
                ..Default::default()
            })
            .unwrap();
        store
    }

    #[test]
    fn provide_and_clean_need_manageable() {
        let mut store = store_with(ProvisionState::Available);
        let err = request_provide(&mut store, "n1").unwrap_err();
        assert!(matches!(err, CleanRequestError::WrongState { .. }), "{err}");
        assert!(err.to_string().contains("\"provide\""), "{err}");
        assert_eq!(
            store.get_node("n1").unwrap().provision_state,
            ProvisionState::Available,
            "nothing changed"
        );
        assert!(request_provide(&mut store, "missing").is_err());
        manage(&mut store, "n1").unwrap();
        let node = request_provide(&mut store, "n1").unwrap();
        assert_eq!(node.provision_state, ProvisionState::CleanWait);
        assert_eq!(node.target_provision_state, Some(ProvisionState::Available));
        let dii = &node.driver_internal_info;
        assert_eq!(dii.clean_phase, Some(CleanPhase::Requested));
        assert!(dii.requested_clean_steps.is_none());
        // Busy now.
        assert!(request_provide(&mut store, "n1").is_err());
        assert!(manage(&mut store, "n1").is_err());
        assert!(
            update(
                &mut store,
                "n1",
                NodeUpdate {
                    target_raid_config: Some(json!({})),
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn manual_cleaning_keeps_the_steps() {
        let mut store = store_with(ProvisionState::Manageable);
        assert!(matches!(
            request_clean(&mut store, "n1", &[]),
            Err(CleanRequestError::Invalid(_))
        ));
        let steps: Vec<RequestedStep> = vec!["erase_devices_metadata".parse().unwrap()];
        let node = request_clean(&mut store, "n1", &steps).unwrap();
        assert_eq!(
            node.target_provision_state,
            Some(ProvisionState::Manageable)
        );
        assert_eq!(node.driver_internal_info.requested_clean_steps, Some(steps));
    }

    #[test]
    fn sets_fields() {
        let mut store = store_with(ProvisionState::Manageable);
        assert!(matches!(
            update(&mut store, "n1", NodeUpdate::default()),
            Err(CleanRequestError::Invalid(_))
        ));
        let raid = json!({"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}]});
        let mut props = JsonMap::new();
        props.insert("cpus".into(), json!(4));
        let node = update(
            &mut store,
            "n1",
            NodeUpdate {
                target_raid_config: Some(raid.clone()),
                properties: props,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(Value::Object(node.target_raid_config), raid);
        assert_eq!(node.properties["cpus"], json!(4));
        let err = update(
            &mut store,
            "n1",
            NodeUpdate {
                target_raid_config: Some(json!({"logical_disks": "x"})),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("logical_disks"), "{err}");
        let node = store.get_node("n1").unwrap();
        assert_eq!(Value::Object(node.target_raid_config), raid, "unchanged");
    }
}
