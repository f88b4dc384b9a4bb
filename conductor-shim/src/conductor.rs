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

use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::agent_client::{AgentClient, AgentClientOptions};
use crate::clean::{self, CleanOptions, Cleaner};
use crate::deploy::{self, DeployOptions, Deployer};
use crate::rescue::{self, Rescuer};
use crate::steps::refresh::refresh_steps;
use crate::steps::{StepKind, Stop};
use crate::store::{SharedStore, StoreError};

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
            Err(e) => Err(Stop::agent(e)),
        };
        match refreshed {
            Ok(_) => {}
            Err(Stop::Busy(e)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

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
