//! Locking an agent down, as Ironic's `AgentClient.lockdown` does for a node with
//! `disable_power_off` (deploy step `tear_down_agent`, end of servicing): `standby.sync`
//! (wait), `system.lockdown`, then `GET /v1/commands/` at once and every
//! `post_deploy_get_power_state_retry_interval` until the connection fails, at most
//! `post_deploy_get_power_state_retries + 1` times. The machine is never powered off.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::agent_client::{AgentClient, AgentClientError};

/// Ironic's `[agent]post_deploy_get_power_state_retry_interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Ironic's `[agent]post_deploy_get_power_state_retries`.
pub const DEFAULT_POLL_RETRIES: u32 = 6;

/// Why a lockdown failed.
#[derive(Debug, thiserror::Error)]
pub enum LockdownError {
    /// `standby.sync` or `system.lockdown` could not be sent.
    #[error("{command} failed: {source}")]
    Command {
        /// The command.
        command: &'static str,
        /// The agent client's error.
        source: AgentClientError,
    },
    /// The agent still answered after every poll (Ironic's `AgentCommandTimeout`).
    #[error(
        "Failed to lock down node {node} in at least {waited:?}: agent is still available \
         (last answer: {last})"
    )]
    StillAvailable {
        /// Node UUID.
        node: Uuid,
        /// Time between the first and the last poll.
        waited: Duration,
        /// What the last poll got.
        last: String,
    },
}

/// Sends the lockdown and waits (bounded) until the agent's API is gone.
pub async fn lockdown(
    client: &AgentClient,
    node: Uuid,
    interval: Duration,
    retries: u32,
) -> Result<(), LockdownError> {
    // Ironic does not look at the sync's status; only an API error stops it.
    client
        .execute("standby.sync", &json!({}), true)
        .await
        .map_err(|source| LockdownError::Command {
            command: "standby.sync",
            source,
        })?;
    let result = client
        .execute("system.lockdown", &json!({}), false)
        .await
        .map_err(|source| LockdownError::Command {
            command: "system.lockdown",
            source,
        })?;
    tracing::info!(%node, status = ?result.command_status, "lockdown sent; waiting for the agent to go away");
    let attempts = retries.saturating_add(1);
    let mut last = String::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        match client.commands().await {
            Err(e) if e.is_connection() => {
                tracing::info!(%node, attempt, "agent locked down: its API no longer answers");
                return Ok(());
            }
            Err(e) => last = e.to_string(),
            Ok(commands) => last = format!("{} command results", commands.len()),
        }
        tracing::debug!(%node, attempt, %last, "agent still available; waiting for the lockdown");
    }
    Err(LockdownError::StillAvailable {
        node,
        waited: interval.saturating_mul(attempts.saturating_sub(1)),
        last,
    })
}
