//! Ironic's callback timeout (`[conductor]deploy_callback_timeout`, checked every
//! `[conductor]check_provision_state_interval` by `_check_deploy_timeouts`): a deploy
//! waiting for its agent (`wait call-back`) that heard nothing for that long fails.
//!
//! Every accepted heartbeat writes the node, as Ironic's `touch_provisioning`, so the clock
//! is the node's `updated_at`: the time of the deploy request, of the last heartbeat, or of
//! the last step the conductor recorded, whichever is last; and not before this `serve`
//! started (a conductor that was down heard no heartbeats, which says nothing about the
//! agent; Ironic would fail such nodes at once). An agent that died, lost its
//! network or was restarted (a restarted agent cannot get its token back and stays silent,
//! as IPA does) thus ends in `deploy failed` with a `last_error` saying so, instead of a node
//! waiting for ever.
//!
//! Nodes whose lock this process holds (a heartbeat being processed) are skipped, as Ironic
//! skips reserved nodes; each failure is one transaction that checks the node again.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::conductor::NodeLocks;
use crate::model::{DeployPhase, Node};
use crate::state::ProvisionState;
use crate::store::{SharedStore, StoreError};
use crate::timefmt;

/// Ironic's default `[conductor]deploy_callback_timeout`.
pub const DEFAULT_DEPLOY_CALLBACK_TIMEOUT: Duration = Duration::from_secs(1800);

/// Ironic's default `[conductor]check_provision_state_interval`.
pub const DEFAULT_CHECK_PROVISION_STATE_INTERVAL: Duration = Duration::from_secs(60);

/// When and how often provisioning timeouts are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutOptions {
    /// How long a deploy waits for its agent; `None` disables the check.
    pub deploy_callback_timeout: Option<Duration>,
    /// Time between two checks; `None` disables them.
    pub check_interval: Option<Duration>,
}

impl Default for TimeoutOptions {
    fn default() -> Self {
        TimeoutOptions {
            deploy_callback_timeout: Some(DEFAULT_DEPLOY_CALLBACK_TIMEOUT),
            check_interval: Some(DEFAULT_CHECK_PROVISION_STATE_INTERVAL),
        }
    }
}

/// Since when the node has been waiting: its last change (a heartbeat writes the node), or
/// `since` (the conductor's start) if later.
fn waiting_since(node: &Node, since: OffsetDateTime) -> OffsetDateTime {
    node.updated_at.unwrap_or(node.created_at).max(since)
}

/// Whether `node` has waited for a callback `timeout` or longer at `now`, counting from
/// `since` at the earliest.
pub fn timed_out(
    node: &Node,
    timeout: Duration,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    node.provision_state == ProvisionState::DeployWait
        && waiting_since(node, since) + timeout <= now
}

/// The `last_error` of a deploy whose agent went silent: Ironic's text, then what it means.
pub fn callback_timeout_message(node: &Node, timeout: Duration) -> String {
    let last = node
        .driver_internal_info
        .agent_last_heartbeat
        .map_or_else(|| "never".to_string(), timefmt::format);
    format!(
        "Timeout reached while waiting for callback for node {}: no heartbeat from its agent \
         for {} s (last heartbeat: {last}). The agent stopped, lost its network or was \
         restarted (a restarted agent cannot get its token back and stays silent); check the \
         node's console, boot it into the deploy ramdisk again and deploy again",
        node.uuid,
        timeout.as_secs()
    )
}

/// Fails `node` as timed out (the deploy's phase, step and progress as any deploy failure).
fn fail(node: &mut Node, timeout: Duration) {
    let message = callback_timeout_message(node, timeout);
    node.provision_state = ProvisionState::DeployFailed;
    node.last_error = Some(message);
    let dii = &mut node.driver_internal_info;
    if dii.deploy_phase.is_some() {
        dii.deploy_phase = Some(DeployPhase::Failed);
    }
    dii.deploy_step = None;
    dii.deploy_progress = None;
}

/// Fails every deploy in `wait call-back` that has waited `timeout` or longer at `now`
/// (counting from `since` at the earliest), except nodes whose lock is held. Returns the
/// failed nodes.
pub async fn check_deploy_timeouts(
    store: &SharedStore,
    locks: &NodeLocks,
    timeout: Duration,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    let candidates: Vec<Uuid> = store
        .run(move |s| {
            Ok::<_, StoreError>(
                s.list_nodes()?
                    .into_iter()
                    .filter(|n| timed_out(n, timeout, since, now))
                    .map(|n| n.uuid)
                    .collect(),
            )
        })
        .await?;
    let mut failed = Vec::new();
    for uuid in candidates {
        let Some(_guard) = locks.try_lock(uuid) else {
            tracing::debug!(node = %uuid, "node busy; its callback timeout is checked later");
            continue;
        };
        let changed = store
            .run(move |s| {
                s.update_node(uuid, |n| {
                    // Checked again in the transaction: a heartbeat may have come since.
                    if !timed_out(n, timeout, since, now) {
                        return Ok::<_, StoreError>(None);
                    }
                    fail(n, timeout);
                    Ok(n.last_error.clone())
                })
            })
            .await;
        match changed {
            Ok(Some(message)) => {
                tracing::error!(node = %uuid, "deploy failed: {message}");
                failed.push(uuid);
            }
            Ok(None) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(failed)
}

/// Checks the timeouts every `options.check_interval`, the first time one interval after
/// the start, for ever (the task ends with the server). Does nothing when either setting is
/// disabled.
pub async fn run(store: SharedStore, locks: NodeLocks, options: TimeoutOptions) {
    let (Some(timeout), Some(interval)) = (options.deploy_callback_timeout, options.check_interval)
    else {
        tracing::info!("deploy callback timeout disabled");
        return;
    };
    let started = timefmt::now();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Bounded by the server's life: the task ends with the runtime.
    loop {
        ticks.tick().await;
        let now = timefmt::now();
        if let Err(e) = check_deploy_timeouts(&store, &locks, timeout, started, now).await {
            tracing::warn!(error = %e, "checking deploy callback timeouts failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewNode;
    use crate::store::Store;

    fn store_with(states: &[(&str, ProvisionState)]) -> SharedStore {
        let mut store = Store::open_in_memory().unwrap();
        for (name, state) in states {
            store
                .create_node(NewNode {
                    name: Some(name.to_string()),
                    provision_state: *state,
                    ..NewNode::default()
                })
                .unwrap();
        }
        SharedStore::new(store)
    }

    async fn node(store: &SharedStore, name: &'static str) -> Node {
        store.run(move |s| s.get_node(name)).await.unwrap()
    }

    #[tokio::test]
    async fn silent_deploys_fail_after_the_timeout_only() {
        let store = store_with(&[
            ("waiting", ProvisionState::DeployWait),
            ("working", ProvisionState::Deploying),
            ("done", ProvisionState::Active),
        ]);
        let uuid = node(&store, "waiting").await.uuid;
        store
            .run(move |s| {
                s.update_node(uuid, |n| {
                    n.driver_internal_info.deploy_phase = Some(DeployPhase::AgentStep);
                    n.driver_internal_info.deploy_progress = Some(Default::default());
                    Ok::<_, StoreError>(())
                })
            })
            .await
            .unwrap();
        let locks = NodeLocks::default();
        let timeout = Duration::from_secs(600);
        let written = node(&store, "waiting").await.updated_at.unwrap();
        let started = written - Duration::from_secs(3600);

        // Not yet: a heartbeat (any write) less than `timeout` ago.
        let early = written + Duration::from_secs(599);
        let failed = check_deploy_timeouts(&store, &locks, timeout, started, early)
            .await
            .unwrap();
        assert!(failed.is_empty());

        // Not yet either when the conductor started less than `timeout` ago.
        let late = written + timeout;
        let restarted = written + Duration::from_secs(1);
        let failed = check_deploy_timeouts(&store, &locks, timeout, restarted, late)
            .await
            .unwrap();
        assert!(failed.is_empty());

        // A node being processed is left alone.
        let guard = locks.try_lock(uuid).unwrap();
        let failed = check_deploy_timeouts(&store, &locks, timeout, started, late)
            .await
            .unwrap();
        assert!(failed.is_empty());
        drop(guard);

        let failed = check_deploy_timeouts(&store, &locks, timeout, started, late)
            .await
            .unwrap();
        assert_eq!(failed, [uuid]);
        let n = node(&store, "waiting").await;
        assert_eq!(n.provision_state, ProvisionState::DeployFailed);
        assert_eq!(
            n.driver_internal_info.deploy_phase,
            Some(DeployPhase::Failed)
        );
        assert_eq!(n.driver_internal_info.deploy_progress, None);
        let error = n.last_error.unwrap();
        assert!(
            error.starts_with(&format!(
                "Timeout reached while waiting for callback for node {uuid}: no heartbeat \
                 from its agent for 600 s (last heartbeat: never)"
            )),
            "{error}"
        );
        // Only `wait call-back` times out.
        assert_eq!(
            node(&store, "working").await.provision_state,
            ProvisionState::Deploying
        );
        assert_eq!(
            node(&store, "done").await.provision_state,
            ProvisionState::Active
        );
        // Checked again later: nothing more to do.
        let failed = check_deploy_timeouts(&store, &locks, timeout, started, late + timeout)
            .await
            .unwrap();
        assert!(failed.is_empty());
    }
}
