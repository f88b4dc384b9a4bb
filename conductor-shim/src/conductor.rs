//! What the conductor does after an accepted heartbeat: a node with a deploy requested by
//! `conductor-shim deploy` is handed to [`crate::deploy`], one with cleaning requested by
//! `conductor-shim node provide` / `clean` to [`crate::clean`], one in `rescue wait` (from
//! `conductor-shim rescue`) to [`crate::rescue`]; otherwise, in
//! `wait call-back`, `clean wait` and `service wait` it asks the agent for its steps
//! (`deploy.get_deploy_steps`, ...) once and caches them in `driver_internal_info`, as
//! Ironic's `agent_base` does.
//!
//! Processing runs in its own task; one task per node at a time (a per-node async mutex).
//! A heartbeat arriving while the node is busy is skipped, as Ironic skips heartbeats when
//! it cannot lock the node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::agent_client::{AgentClient, AgentClientError, AgentClientOptions, CommandStatus};
use crate::clean::{self, CleanOptions, Cleaner};
use crate::deploy::{self, DeployOptions, Deployer};
use crate::model::{CachedSteps, JsonMap, Node, Port, Step};
use crate::node_dict::StepsParams;
use crate::rescue::{self, Rescuer};
use crate::store::{SharedStore, StoreError};

pub use crate::steps::StepKind;

/// Errors while processing a heartbeat.
#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    /// Talking to the agent failed.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The agent's command finished unsuccessfully.
    #[error("{command} failed on the agent: {detail}")]
    CommandFailed {
        /// Command name.
        command: &'static str,
        /// Error text reported by the agent.
        detail: String,
    },
    /// The agent returned steps that are not usable.
    #[error("{0}")]
    InvalidSteps(String),
}

/// One async lock per node.
#[derive(Debug, Clone, Default)]
pub struct NodeLocks {
    inner: Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

impl NodeLocks {
    /// Takes the node's lock if it is free.
    pub fn try_lock(&self, node: Uuid) -> Option<OwnedMutexGuard<()>> {
        let lock = {
            let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(node).or_default())
        };
        lock.try_lock_owned().ok()
    }
}

/// The heartbeat-driven part of the conductor.
#[derive(Debug, Clone)]
pub struct Conductor {
    store: SharedStore,
    agent: AgentClientOptions,
    locks: NodeLocks,
    deployer: Deployer,
    cleaner: Cleaner,
    rescuer: Rescuer,
}

impl Conductor {
    /// A conductor working on `store`, reaching agents with `agent` options.
    pub fn new(store: SharedStore, agent: AgentClientOptions) -> Conductor {
        Conductor::with_deploy_options(store, agent, DeployOptions::default())
    }

    /// A conductor whose deploys poll commands as `deploy` says.
    pub fn with_deploy_options(
        store: SharedStore,
        agent: AgentClientOptions,
        deploy: DeployOptions,
    ) -> Conductor {
        Conductor::with_options(store, agent, deploy, CleanOptions::default(), true)
    }

    /// A conductor with all its settings; `fast_track` keeps the agent running after
    /// cleaning (no `standby.power_off`), as Ironic's `[deploy]fast_track`.
    pub fn with_options(
        store: SharedStore,
        agent: AgentClientOptions,
        deploy: DeployOptions,
        clean: CleanOptions,
        fast_track: bool,
    ) -> Conductor {
        let deployer = Deployer::new(store.clone(), agent.clone(), deploy);
        let cleaner = Cleaner::new(store.clone(), agent.clone(), clean, fast_track);
        let rescuer = Rescuer::new(store.clone(), agent.clone());
        Conductor {
            store,
            agent,
            locks: NodeLocks::default(),
            deployer,
            cleaner,
            rescuer,
        }
    }

    /// Collects ramdisk logs of deploys and cleanings as `logs` says (Ironic's
    /// `[agent]deploy_logs_*`).
    pub fn with_ramdisk_logs(mut self, logs: crate::ramdisk_logs::RamdiskLogs) -> Conductor {
        self.deployer.set_ramdisk_logs(logs.clone());
        self.cleaner.set_ramdisk_logs(logs);
        self
    }

    /// The per-node locks.
    pub fn locks(&self) -> &NodeLocks {
        &self.locks
    }

    /// Starts processing an accepted heartbeat in the background.
    pub fn spawn_heartbeat(&self, node: Uuid) {
        let conductor = self.clone();
        tokio::spawn(async move { conductor.process_heartbeat(node).await });
    }

    /// Processes an accepted heartbeat (skipped if the node is being processed already).
    pub async fn process_heartbeat(&self, uuid: Uuid) {
        let Some(_guard) = self.locks.try_lock(uuid) else {
            tracing::debug!(node = %uuid, "node is busy; heartbeat processing skipped");
            return;
        };
        let loaded = self
            .store
            .run(move |s| {
                let node = s
                    .node_by_uuid(uuid)?
                    .ok_or_else(|| StoreError::NodeNotFound(uuid.to_string()))?;
                let ports = s.ports(uuid)?;
                Ok::<_, StoreError>((node, ports))
            })
            .await;
        let (node, ports) = match loaded {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(node = %uuid, error = %e, "cannot load node for heartbeat processing");
                return;
            }
        };
        if deploy::wants_heartbeat(&node) {
            self.deployer.on_heartbeat(node, ports).await;
            return;
        }
        if rescue::wants_heartbeat(&node) {
            self.rescuer.on_heartbeat(node).await;
            return;
        }
        if clean::wants_heartbeat(&node) {
            self.cleaner.on_heartbeat(node, ports).await;
            return;
        }
        let Some(kind) = StepKind::for_state(node.provision_state) else {
            return;
        };
        if kind.cached(&node.driver_internal_info).is_some() {
            return;
        }
        let refreshed = match AgentClient::for_node(&node, &self.agent) {
            Ok(client) => refresh_steps(&self.store, &client, kind, &node, &ports).await,
            Err(e) => Err(ConductorError::Agent(e)),
        };
        match refreshed {
            Ok(count) => {
                tracing::info!(node = %uuid, kind = kind.as_str(), count, "cached the agent's steps");
            }
            Err(ConductorError::Agent(e)) if e.is_in_progress() => {
                tracing::info!(node = %uuid, error = %e, "agent busy; will retry on the next heartbeat");
            }
            Err(e) => {
                let message = format!(
                    "Failed to get {} steps from the agent of node {uuid}: {e}",
                    kind.as_str()
                );
                tracing::error!(node = %uuid, "{message}");
                self.fail(uuid, kind, message).await;
            }
        }
    }

    async fn fail(&self, uuid: Uuid, kind: StepKind, message: String) {
        let written = self
            .store
            .run(move |s| {
                s.update_node(uuid, |n| {
                    if StepKind::for_state(n.provision_state) == Some(kind) {
                        n.provision_state = kind.failed_state();
                    }
                    n.last_error = Some(message);
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        if let Err(e) = written {
            tracing::error!(node = %uuid, error = %e, "cannot record the failure");
        }
    }
}

/// Calls `get_<kind>_steps` (wait=true) and caches the steps and hardware-manager versions
/// in `driver_internal_info` (unless the node left its state meanwhile); returns how many
/// steps were cached.
pub(crate) async fn refresh_steps(
    store: &SharedStore,
    client: &AgentClient,
    kind: StepKind,
    node: &Node,
    ports: &[Port],
) -> Result<usize, ConductorError> {
    let params = StepsParams::new(node, ports);
    let command = kind.get_steps_command();
    let result = client.execute(command, &params, true).await?;
    if result.command_status != CommandStatus::Succeeded {
        let detail = result
            .command_error
            .as_ref()
            .map(|e| e.describe())
            .unwrap_or_else(|| format!("status {:?}", result.command_status));
        return Err(ConductorError::CommandFailed { command, detail });
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
    Ok(count)
}

type Versions = std::collections::BTreeMap<String, Value>;

/// Validates a `get_*_steps` result and groups its steps by interface.
fn parse_steps(
    kind: StepKind,
    node: Uuid,
    result: Option<Value>,
) -> Result<(CachedSteps, Versions), ConductorError> {
    let command = kind.get_steps_command();
    let invalid = |why: String| {
        ConductorError::InvalidSteps(format!(
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
    let by_manager = std::collections::BTreeMap::<String, Vec<JsonMap>>::deserialize(steps_value)
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
#[allow(clippy::unwrap_used)]
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

    #[test]
    fn node_locks_are_exclusive() {
        let locks = NodeLocks::default();
        let a = Uuid::new_v4();
        let guard = locks.try_lock(a).unwrap();
        assert!(locks.try_lock(a).is_none());
        assert!(locks.try_lock(Uuid::new_v4()).is_some());
        drop(guard);
        assert!(locks.try_lock(a).is_some());
    }
}
