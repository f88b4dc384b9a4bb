//! Rescue, as Ironic's `agent` rescue interface drives it.
//!
//! `conductor-shim rescue NODE --password PW` ([`request`]) stores the password's SHA-512 crypt
//! hash in `instance_info.hashed_rescue_password` (the plain password is never stored), forgets
//! the agent's token and URL (a rescue ramdisk boots and looks up afresh) and puts the node
//! from `active` (or `rescue` / `rescue failed`) into `rescue wait`. The shim cannot boot the
//! rescue ramdisk: the agent of that node must be started (or restarted) by the operator.
//!
//! On the agent's next heartbeat ([`Rescuer::on_heartbeat`]) the conductor sends
//! `rescue.finalize_rescue` with `{"rescue_password": <hash>, "hashed": true}`; a `SUCCEEDED`
//! answer moves the node to `rescue`, anything else to `rescue failed` with `last_error`
//! (Ironic's `_heartbeat_rescue_wait`). Either way the hash is removed from `instance_info`
//! (Ironic's `remove_node_rescue_password`). The agent stops serving and heartbeating after its
//! answer.

use serde::Serialize;
use sha_crypt::{PasswordHasher, ShaCrypt};
use uuid::Uuid;

use crate::agent_client::{AgentClient, AgentClientOptions, CommandStatus};
use crate::model::Node;
use crate::state::ProvisionState;
use crate::steps::command_error_text;
use crate::store::{SharedStore, Store, StoreError};

/// The `instance_info` key of the hashed rescue password (Ironic's).
pub const HASHED_PASSWORD_KEY: &str = "hashed_rescue_password";

/// The `instance_info` key of the plain rescue password (Ironic keeps it too; the shim never
/// stores it, but removes it like Ironic when a rescue ends).
pub const PASSWORD_KEY: &str = "rescue_password";

/// A rescue request the node cannot take.
#[derive(Debug, thiserror::Error)]
pub enum RescueRequestError {
    /// A parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The node's state does not allow a rescue.
    #[error(
        "the requested action \"rescue\" can not be performed on node {node} while it is in \
         state \"{state}\" (it must be active, rescue or rescue failed)"
    )]
    WrongState {
        /// Node UUID.
        node: String,
        /// Its state.
        state: ProvisionState,
    },
    /// The password could not be hashed.
    #[error("hashing the rescue password: {0}")]
    Hash(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The SHA-512 crypt hash (`$6$...`) of `password` with a random salt (Ironic's
/// `hash_password` with `[conductor]rescue_password_hash_algorithm = sha512`).
pub fn hash_password(password: &str) -> Result<String, RescueRequestError> {
    let salt: [u8; 12] = rand::random();
    ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.as_str().to_string())
        .map_err(|e| RescueRequestError::Hash(e.to_string()))
}

/// Stores the request: hash in `instance_info`, token and URL forgotten, node in
/// `rescue wait` (target `rescue`). Nothing is written when the request is refused.
pub fn request(store: &mut Store, ident: &str, password: &str) -> Result<Node, RescueRequestError> {
    if password.trim().is_empty() {
        return Err(RescueRequestError::Invalid(
            "the rescue password must not be empty".to_string(),
        ));
    }
    let hash = hash_password(password)?;
    let uuid = store.get_node(ident)?.uuid;
    store.update_node(uuid, move |n| {
        if !matches!(
            n.provision_state,
            ProvisionState::Active | ProvisionState::Rescue | ProvisionState::RescueFailed
        ) {
            return Err(RescueRequestError::WrongState {
                node: n.uuid.to_string(),
                state: n.provision_state,
            });
        }
        n.instance_info
            .insert(HASHED_PASSWORD_KEY.to_string(), hash.into());
        n.driver_internal_info.wipe_token_and_url();
        n.provision_state = ProvisionState::RescueWait;
        n.target_provision_state = Some(ProvisionState::Rescue);
        n.last_error = None;
        Ok(n.clone())
    })
}

/// `rescue.finalize_rescue` params as Ironic sends them.
#[derive(Serialize)]
struct FinalizeParams<'a> {
    rescue_password: &'a str,
    hashed: bool,
}

/// Finishes rescues on heartbeats.
#[derive(Debug, Clone)]
pub struct Rescuer {
    store: SharedStore,
    agent: AgentClientOptions,
}

/// Whether `node` waits for its rescue to be finalized.
pub fn wants_heartbeat(node: &Node) -> bool {
    node.provision_state == ProvisionState::RescueWait
}

impl Rescuer {
    /// A rescuer working on `store`, reaching agents with `agent` options.
    pub fn new(store: SharedStore, agent: AgentClientOptions) -> Rescuer {
        Rescuer { store, agent }
    }

    /// Ironic's `_heartbeat_rescue_wait`: `finalize_rescue`, then `rescue` or `rescue failed`.
    /// The caller holds the node's lock.
    pub async fn on_heartbeat(&self, node: Node) {
        let uuid = node.uuid;
        let outcome = self.finalize(&node).await;
        let (state, error) = match outcome {
            Ok(()) => (ProvisionState::Rescue, None),
            Err(reason) => {
                let message = format!("Node failed to perform rescue operation: {reason}");
                tracing::error!(node = %uuid, "{message}");
                (ProvisionState::RescueFailed, Some(message))
            }
        };
        let written = self
            .store
            .run(move |s| {
                s.update_node(uuid, |n| {
                    // Someone else (the CLI) changed the node meanwhile: leave it alone.
                    if n.provision_state != ProvisionState::RescueWait {
                        return Ok::<_, StoreError>(());
                    }
                    n.instance_info.remove(HASHED_PASSWORD_KEY);
                    n.instance_info.remove(PASSWORD_KEY);
                    n.provision_state = state;
                    n.target_provision_state = None;
                    n.last_error = error;
                    Ok(())
                })
            })
            .await;
        match written {
            Ok(()) if state == ProvisionState::Rescue => {
                tracing::info!(node = %uuid, "rescue finalized; node is in rescue");
            }
            Ok(()) => {}
            Err(e) => tracing::error!(node = %uuid, error = %e, "cannot record the rescue outcome"),
        }
    }

    /// Ironic's `AgentClient.finalize_rescue` and the result check of `_finalize_rescue`.
    async fn finalize(&self, node: &Node) -> Result<(), String> {
        let uuid: Uuid = node.uuid;
        let hash = node
            .instance_info
            .get(HASHED_PASSWORD_KEY)
            .and_then(|v| v.as_str())
            .filter(|h| !h.is_empty())
            .ok_or("Agent rescue requires rescue_password in instance_info")?;
        let client = AgentClient::for_node(node, &self.agent).map_err(|e| e.to_string())?;
        let params = FinalizeParams {
            rescue_password: hash,
            hashed: true,
        };
        tracing::info!(node = %uuid, "finalizing the rescue through the agent");
        let result = client
            .execute("rescue.finalize_rescue", &params, false)
            .await
            .map_err(|e| e.to_string())?;
        if result.command_status != CommandStatus::Succeeded {
            return Err(format!(
                "Agent returned bad result for command finalize_rescue: {}",
                command_error_text(result.command_error.as_ref())
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sha_crypt::PasswordVerifier;

    use super::*;
    use crate::model::NewNode;

    #[test]
    fn hashes_are_sha512_crypt_and_verify() {
        let h = hash_password("rescue me").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(
            ShaCrypt::default()
                .verify_password(b"rescue me", h.as_str())
                .is_ok()
        );
        assert!(
            ShaCrypt::default()
                .verify_password(b"rescue mE", h.as_str())
                .is_err()
        );
        assert_ne!(h, hash_password("rescue me").unwrap());
    }

    #[test]
    fn requests_need_an_active_node_and_a_password() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .create_node(NewNode {
                name: Some("a".into()),
                provision_state: ProvisionState::Active,
                ..Default::default()
            })
            .unwrap();
        store
            .create_node(NewNode {
                name: Some("m".into()),
                provision_state: ProvisionState::Manageable,
                ..Default::default()
            })
            .unwrap();
        assert!(matches!(
            request(&mut store, "a", " "),
            Err(RescueRequestError::Invalid(_))
        ));
        assert!(matches!(
            request(&mut store, "m", "pw"),
            Err(RescueRequestError::WrongState { .. })
        ));
        assert!(
            store
                .get_node("m")
                .unwrap()
                .instance_info
                .get(HASHED_PASSWORD_KEY)
                .is_none()
        );
        let n = request(&mut store, "a", "pw").unwrap();
        assert_eq!(n.provision_state, ProvisionState::RescueWait);
        assert_eq!(n.target_provision_state, Some(ProvisionState::Rescue));
        let stored = n.instance_info[HASHED_PASSWORD_KEY].as_str().unwrap();
        assert!(stored.starts_with("$6$") && !stored.contains("pw$"));
        assert!(!serde_json::to_string(&n).unwrap().contains("\"pw\""));
    }
}
