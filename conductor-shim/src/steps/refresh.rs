//! `get_<kind>_steps`: asking the agent for its steps, checking the answer and caching the
//! steps (grouped by interface) and the hardware-manager versions in `driver_internal_info`,
//! as Ironic's `agent_base` does.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{StepKind, Stop};
use crate::agent_client::{AgentClient, CommandStatus};
use crate::model::{CachedSteps, JsonMap, Node, Port, Step};
use crate::node_dict::StepsParams;
use crate::store::{SharedStore, StoreError};

/// The agent's hardware-manager versions (`hardware_manager_version`).
type Versions = BTreeMap<String, Value>;

/// Calls `get_<kind>_steps` (wait=true) and caches the steps and hardware-manager versions
/// in `driver_internal_info` (unless the node left its state meanwhile); returns how many
/// steps were cached. A busy agent is [`Stop::Busy`]; any other problem [`Stop::Failed`]
/// with the reason alone (callers add their context with [`Stop::context`]), or
/// [`Stop::Store`].
pub(crate) async fn refresh_steps(
    store: &SharedStore,
    client: &AgentClient,
    kind: StepKind,
    node: &Node,
    ports: &[Port],
) -> Result<usize, Stop> {
    let params = StepsParams::new(node, ports);
    let command = kind.get_steps_command();
    let result = client
        .execute(command, &params, true)
        .await
        .map_err(Stop::agent)?;
    if result.command_status != CommandStatus::Succeeded {
        let detail = result
            .command_error
            .as_ref()
            .map(|e| e.describe())
            .unwrap_or_else(|| format!("status {:?}", result.command_status));
        return Err(Stop::Failed(format!(
            "{command} failed on the agent: {detail}"
        )));
    }
    let (steps, versions) = parse_steps(kind, node.uuid, result.command_result)?;
    let count = steps.values().map(Vec::len).sum();
    let uuid = node.uuid;
    let state = node.provision_state;
    store
        .run(move |s| {
            s.update_node(uuid, |n| {
                if n.provision_state == state {
                    n.driver_internal_info.hardware_manager_version = Some(versions);
                    kind.store_cached(&mut n.driver_internal_info, steps);
                }
                Ok::<_, StoreError>(())
            })
        })
        .await?;
    tracing::info!(node = %uuid, kind = kind.as_str(), count, "cached the agent's steps");
    Ok(count)
}

/// Validates a `get_*_steps` result and groups its steps by interface.
fn parse_steps(
    kind: StepKind,
    node: Uuid,
    result: Option<Value>,
) -> Result<(CachedSteps, Versions), Stop> {
    let command = kind.get_steps_command();
    let invalid = |why: String| {
        Stop::Failed(format!(
            "agent {command} for node {node} returned an invalid result: {why}"
        ))
    };
    let result = result.unwrap_or(Value::Null);
    // `{"<kind>_steps": {manager: [step, ...]}, "hardware_manager_version": {...}}`
    let keys =
        JsonMap::deserialize(&result).map_err(|e| invalid(format!("{e}; result: {result}")))?;
    let key = kind.steps_key();
    let (Some(steps_value), Some(versions_value)) =
        (keys.get(key), keys.get("hardware_manager_version"))
    else {
        let missing: Vec<&str> = [key, "hardware_manager_version"]
            .into_iter()
            .filter(|k| !keys.contains_key(*k))
            .collect();
        return Err(invalid(format!(
            "keys {missing:?} are missing from result {result}"
        )));
    };
    let by_manager = BTreeMap::<String, Vec<JsonMap>>::deserialize(steps_value)
        .map_err(|e| invalid(format!("{key}: {e}")))?;
    let versions = Versions::deserialize(versions_value)
        .map_err(|e| invalid(format!("hardware_manager_version: {e}")))?;
    let mut grouped = CachedSteps::new();
    for step in by_manager.into_values().flatten() {
        let missing: Vec<&str> = ["interface", "step", "priority"]
            .into_iter()
            .filter(|k| !step.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "step {} is missing keys {missing:?}",
                Value::Object(step)
            )));
        }
        let mut step = Step::deserialize(&Value::Object(step.clone()))
            .map_err(|e| invalid(format!("step {}: {e}", Value::Object(step))))?;
        if kind == StepKind::Clean {
            step.extra
                .insert("requires_ramdisk".to_string(), Value::Bool(true));
        }
        grouped
            .entry(step.interface.clone())
            .or_default()
            .push(step);
    }
    Ok((grouped, versions))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn groups_steps_by_interface() {
        let result = json!({
            "deploy_steps": {"GenericHardwareManager": [
                {"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false},
                {"step": "apply_configuration", "priority": 0, "interface": "raid"}
            ]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"}
        });
        let (steps, versions) = parse_steps(StepKind::Deploy, Uuid::nil(), Some(result)).unwrap();
        assert_eq!(steps["deploy"][0].step, "write_image");
        assert_eq!(steps["raid"][0].step, "apply_configuration");
        assert_eq!(versions["generic_hardware_manager"], "1.2");
    }

    #[test]
    fn clean_steps_require_ramdisk() {
        let result = json!({
            "clean_steps": {"M": [{"step": "erase_devices_metadata", "priority": 99, "interface": "deploy"}]},
            "hardware_manager_version": {}
        });
        let (steps, _) = parse_steps(StepKind::Clean, Uuid::nil(), Some(result)).unwrap();
        assert_eq!(steps["deploy"][0].extra["requires_ramdisk"], json!(true));
    }

    #[test]
    fn rejects_bad_results() {
        let missing_priority = json!({
            "deploy_steps": {"M": [{"step": "x", "interface": "deploy"}]},
            "hardware_manager_version": {}
        });
        let err = parse_steps(StepKind::Deploy, Uuid::nil(), Some(missing_priority)).unwrap_err();
        assert!(err.to_string().contains("priority"), "{err}");
        let no_versions = json!({"deploy_steps": {}});
        let err = parse_steps(StepKind::Deploy, Uuid::nil(), Some(no_versions)).unwrap_err();
        assert!(
            err.to_string().contains("hardware_manager_version"),
            "{err}"
        );
        assert!(parse_steps(StepKind::Deploy, Uuid::nil(), None).is_err());
        assert!(parse_steps(StepKind::Deploy, Uuid::nil(), Some(json!([1]))).is_err());
    }
}
