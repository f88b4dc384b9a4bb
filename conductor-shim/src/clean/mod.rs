//! Cleaning through the agent, driven by heartbeats like Ironic's `conductor/cleaning.py`
//! with the `agent_base` interfaces (spec §6, §11.4–11.5, §12.1, §14.1).
//!
//! `conductor-shim node provide` (automated) or `conductor-shim clean --step ...` (manual)
//! stores the request ([`request`]): the node is `clean wait`, `target_provision_state` is
//! `available` or `manageable`, `driver_internal_info.clean_phase = requested`. Then, on
//! heartbeats:
//!
//! 1. `requested`: the node moves to `cleaning` (Ironic's `resume_cleaning`), the erase
//!    settings Ironic hands the agent are put in `driver_internal_info`
//!    ([`EraseSettings`]), `clean.get_clean_steps` (wait=true) is cached with
//!    `hardware_manager_version`, and the plan is stored in `clean_steps` ([`plan`]):
//!    automated cleaning runs the agent's steps with a priority above 0 (after the priority
//!    overrides), highest first; manual cleaning runs the requested steps in their order and
//!    fails before anything runs when one is not offered by the agent. No steps ⇒ done.
//! 2. Each step: `node.clean_step` and `clean_step_index` are recorded, then
//!    `clean.execute_clean_step` (wait=false) with the step, the node (secrets masked), its
//!    ports and `clean_version`; the node waits in `clean wait` (phase `agent_step`).
//!    `raid.create_configuration` first needs a `target_raid_config`.
//! 3. `agent_step`: `GET /v1/commands/` judged by [`crate::steps::judge`]: RUNNING (its
//!    progress is kept in `clean_progress`) or another command ⇒ wait; SUCCEEDED ⇒ the post
//!    step hook (`raid.create_configuration` stores `clean_result` in `raid_config`,
//!    `raid.delete_configuration` empties it) and the next step; FAILED ⇒ `clean failed` with
//!    `Clean step <interface.step> failed on node <uuid>. <agent's error>`;
//!    `CLEAN_VERSION_MISMATCH`/`VERSION_MISMATCH` ⇒ the steps are fetched again and
//!    automated cleaning restarts from its first step (manual cleaning runs the current step
//!    again), at most [`CleanOptions::max_restarts`] times.
//! 4. After the last step: unless fast-track, `standby.power_off` (phase `power_off`,
//!    `power_state` off, token and URL wiped); then `available` (automated) or
//!    `manageable` (manual), with `clean_phase = done`.
//!
//! Every transition is written before the agent call that follows it, so a restarted shim
//! resumes on the next heartbeat. A busy agent (409) leaves the node in `clean wait` to be
//! retried on the next heartbeat.
//!
//! Deliberate differences from Ironic: there is no BMC, so nothing is booted or powered
//! through one; a failed cleaning keeps the agent session (Ironic wipes the token because
//! the next attempt boots a new ramdisk) and does not power the node off; the node is not
//! put in maintenance; an agent without any record of the running step (restarted) gets
//! the step again instead of Ironic's "continue with the next step"; steps asking for a
//! reboot are not rebooted; conductor flow steps (`power_on`, `reboot`, `hold`, ...) are
//! not supported.

pub mod plan;
pub mod raid;
pub mod request;

use serde_json::Value;
use uuid::Uuid;

use crate::agent_client::{AgentClient, AgentClientOptions, CommandResult, CommandStatus};
use crate::model::{CleanPhase, DriverInternalInfo, Node, Port, PowerState, Step};
use crate::node_dict::AgentNodeDict;
use crate::state::ProvisionState;
use crate::steps::{
    self, AgentStepStatus, StepKind, Stop, agent_error, command_error_text, step_id,
};
use crate::store::SharedStore;
pub use plan::PriorityOverrides;

/// How often cleaning may restart after a hardware-manager version mismatch.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;

/// The erase settings Ironic puts in `driver_internal_info` before cleaning
/// (`agent_add_clean_params`, spec §12.2), with Ironic's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseSettings {
    /// `[deploy]shred_random_overwrite_iterations` (1).
    pub shred_random_overwrite_iterations: u32,
    /// `[deploy]shred_final_overwrite_with_zeros` (true).
    pub shred_final_overwrite_with_zeros: bool,
    /// `[deploy]continue_if_disk_secure_erase_fails` (false).
    pub continue_if_disk_secure_erase_fails: bool,
    /// `[deploy]enable_nvme_secure_erase` (true).
    pub enable_nvme_secure_erase: bool,
    /// `[deploy]enable_ata_secure_erase` (true).
    pub enable_ata_secure_erase: bool,
    /// `[deploy]disk_erasure_concurrency` (4).
    pub disk_erasure_concurrency: u32,
    /// `[deploy]erase_skip_read_only` (false).
    pub erase_skip_read_only: bool,
}

impl Default for EraseSettings {
    fn default() -> Self {
        EraseSettings {
            shred_random_overwrite_iterations: 1,
            shred_final_overwrite_with_zeros: true,
            continue_if_disk_secure_erase_fails: false,
            enable_nvme_secure_erase: true,
            enable_ata_secure_erase: true,
            disk_erasure_concurrency: 4,
            erase_skip_read_only: false,
        }
    }
}

impl EraseSettings {
    /// Writes the settings under Ironic's keys (`agent_erase_devices_iterations`, ...).
    pub fn apply(&self, dii: &mut DriverInternalInfo) {
        let secure_fallback = Value::Bool(self.continue_if_disk_secure_erase_fails);
        for (key, value) in [
            (
                "agent_erase_devices_iterations",
                Value::from(self.shred_random_overwrite_iterations),
            ),
            (
                "agent_erase_devices_zeroize",
                Value::Bool(self.shred_final_overwrite_with_zeros),
            ),
            (
                "agent_continue_if_secure_erase_failed",
                secure_fallback.clone(),
            ),
            ("agent_continue_if_ata_erase_failed", secure_fallback),
            (
                "agent_enable_nvme_secure_erase",
                Value::Bool(self.enable_nvme_secure_erase),
            ),
            (
                "agent_enable_ata_secure_erase",
                Value::Bool(self.enable_ata_secure_erase),
            ),
            (
                "disk_erasure_concurrency",
                Value::from(self.disk_erasure_concurrency),
            ),
            (
                "agent_erase_skip_read_only",
                Value::Bool(self.erase_skip_read_only),
            ),
        ] {
            dii.extra.insert(key.to_string(), value);
        }
    }
}

/// Settings of cleaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanOptions {
    /// Priority overrides of the agent's steps.
    pub priorities: PriorityOverrides,
    /// Restarts after a hardware-manager version mismatch before cleaning fails.
    pub max_restarts: u32,
    /// Erase settings handed to the agent.
    pub erase: EraseSettings,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            priorities: PriorityOverrides::default(),
            max_restarts: DEFAULT_MAX_RESTARTS,
            erase: EraseSettings::default(),
        }
    }
}

/// Whether `node` has cleaning the heartbeat should advance.
pub fn wants_heartbeat(node: &Node) -> bool {
    matches!(
        node.provision_state,
        ProvisionState::CleanWait | ProvisionState::Cleaning
    ) && node
        .driver_internal_info
        .clean_phase
        .is_some_and(CleanPhase::in_progress)
}

/// Whether the node's cleaning is manual (it returns to `manageable`).
pub fn is_manual(node: &Node) -> bool {
    node.target_provision_state == Some(ProvisionState::Manageable)
}

/// The `last_error` of a step the agent reported as failed (Ironic's wording).
pub fn step_failed_message(node: Uuid, step: &Step, error: &str) -> String {
    format!(
        "Clean step {} failed on node {node}. {error}",
        step_id(step)
    )
}

/// Drives cleaning on heartbeats.
#[derive(Debug, Clone)]
pub struct Cleaner {
    store: SharedStore,
    agent: AgentClientOptions,
    options: CleanOptions,
    fast_track: bool,
}

impl Cleaner {
    /// A cleaner working on `store`, reaching agents with `agent` options; with
    /// `fast_track` the agent is left running after cleaning.
    pub fn new(
        store: SharedStore,
        agent: AgentClientOptions,
        options: CleanOptions,
        fast_track: bool,
    ) -> Cleaner {
        Cleaner {
            store,
            agent,
            options,
            fast_track,
        }
    }

    /// Advances the cleaning of `node` after an accepted heartbeat. The caller holds the
    /// node's lock.
    pub async fn on_heartbeat(&self, node: Node, ports: Vec<Port>) {
        let uuid = node.uuid;
        match self.advance(node, &ports).await {
            Ok(()) => {}
            Err(Stop::Busy(why)) => {
                tracing::info!(node = %uuid, %why, "agent busy; cleaning continues on the next heartbeat");
                if let Err(e) = self.back_to_wait(uuid).await {
                    tracing::error!(node = %uuid, error = %e, "cannot record the busy agent");
                }
            }
            Err(Stop::Conflict(why)) => {
                tracing::warn!(node = %uuid, %why, "node changed during heartbeat processing; stopped");
            }
            Err(Stop::Failed(message)) => {
                tracing::error!(node = %uuid, "cleaning failed: {message}");
                self.fail(uuid, message).await;
            }
            Err(Stop::Store(e)) => {
                tracing::error!(node = %uuid, error = %e, "store failure during cleaning");
                self.fail(uuid, format!("Internal error of the conductor shim: {e}"))
                    .await;
            }
        }
    }

    async fn advance(&self, node: Node, ports: &[Port]) -> Result<(), Stop> {
        use CleanPhase as P;
        use ProvisionState as S;
        let client = AgentClient::for_node(&node, &self.agent).map_err(agent_error(format!(
            "Cannot reach the agent of node {}",
            node.uuid
        )))?;
        match (node.provision_state, node.driver_internal_info.clean_phase) {
            (S::CleanWait | S::Cleaning, Some(P::Requested)) => {
                self.start(node, ports, &client).await
            }
            (S::CleanWait | S::Cleaning, Some(P::AgentStep)) => {
                self.check_agent_step(node, ports, &client).await
            }
            (S::CleanWait | S::Cleaning, Some(P::StepRunning | P::PowerOff)) => {
                self.update(node.uuid, |n| {
                    if !wants_heartbeat(n) {
                        return Err(Stop::Conflict("cleaning was reset".into()));
                    }
                    n.provision_state = S::Cleaning;
                    Ok(())
                })
                .await?;
                self.continue_steps(node.uuid, ports, &client).await
            }
            _ => Ok(()),
        }
    }

    /// Phase `requested`: `cleaning`, erase settings, the agent's steps, the plan; then the
    /// first step.
    async fn start(&self, node: Node, ports: &[Port], client: &AgentClient) -> Result<(), Stop> {
        let uuid = node.uuid;
        let erase = self.options.erase.clone();
        let node = self
            .update(uuid, move |n| {
                if n.driver_internal_info.clean_phase != Some(CleanPhase::Requested) {
                    return Err(Stop::Conflict("the cleaning request changed".into()));
                }
                n.provision_state = ProvisionState::Cleaning;
                // The agent heartbeats, so the machine is on.
                n.power_state = Some(PowerState::On);
                erase.apply(&mut n.driver_internal_info);
                Ok(())
            })
            .await?;
        let first = "Node failed to start the first cleaning step";
        steps::refresh(&self.store, client, StepKind::Clean, &node, ports)
            .await
            .map_err(|e| e.context(first))?;
        let node = self.load(uuid).await?;
        let dii = &node.driver_internal_info;
        let cached = dii.agent_cached_clean_steps.as_ref();
        let planned = match &dii.requested_clean_steps {
            Some(requested) => plan::manual(requested, cached, &self.options.priorities)
                .map_err(|e| Stop::Failed(format!("{first}: {e}")))?,
            None => plan::automated(cached, &self.options.priorities),
        };
        let names: Vec<String> = planned.iter().map(step_id).collect();
        tracing::info!(node = %uuid, manual = is_manual(&node), steps = ?names, "starting cleaning");
        self.update(uuid, move |n| {
            if n.driver_internal_info.clean_phase != Some(CleanPhase::Requested) {
                return Err(Stop::Conflict("the cleaning request changed".into()));
            }
            set_plan(n, planned);
            Ok(())
        })
        .await?;
        self.continue_steps(uuid, ports, client).await
    }

    /// Sends `clean_steps[clean_step_index]`, or finishes when all are done.
    async fn continue_steps(
        &self,
        uuid: Uuid,
        ports: &[Port],
        client: &AgentClient,
    ) -> Result<(), Stop> {
        let node = self.load(uuid).await?;
        if node.provision_state != ProvisionState::Cleaning {
            return Err(Stop::Conflict(format!(
                "expected cleaning, found {}",
                node.provision_state
            )));
        }
        let dii = &node.driver_internal_info;
        let index = dii.clean_step_index.unwrap_or(0);
        let Some(step) = dii
            .clean_steps
            .as_ref()
            .and_then(|steps| steps.get(index))
            .cloned()
        else {
            return self.finish(node, client).await;
        };
        tracing::info!(node = %uuid, step = %step_id(&step), index, "clean step");
        self.send_agent_step(node, &step, ports, client).await
    }

    /// Sends `clean.execute_clean_step` for `step` and waits for the agent (phase
    /// `agent_step`, node `clean wait`).
    async fn send_agent_step(
        &self,
        node: Node,
        step: &Step,
        ports: &[Port],
        client: &AgentClient,
    ) -> Result<(), Stop> {
        let uuid = node.uuid;
        let id = step_id(step);
        let step_error = |why: String| Stop::Failed(format!("Node {uuid} failed step {id}: {why}"));
        let mut dict_node = node.clone();
        if step.interface == "raid" && step.step == "create_configuration" {
            let args = step.extra.get("args").and_then(Value::as_object);
            let target = raid::filter_target_raid_config(&node, args).map_err(step_error)?;
            dict_node
                .driver_internal_info
                .extra
                .insert("target_raid_config".into(), Value::Object(target));
        }
        let call = serde_json::to_value(step)
            .map_err(|e| Stop::Failed(format!("Cannot encode clean step {id}: {e}")))?;
        let dict = AgentNodeDict::new(&dict_node);
        let result = steps::send_step(client, StepKind::Clean, call, dict, ports, &node)
            .await
            .map_err(agent_error(format!("Node {uuid} failed step {id}")))?;
        if result.command_status == CommandStatus::Failed {
            return Err(Stop::Failed(step_failed_message(
                uuid,
                step,
                &command_error_text(result.command_error.as_ref()),
            )));
        }
        self.update(uuid, |n| {
            n.driver_internal_info.clean_phase = Some(CleanPhase::AgentStep);
            n.driver_internal_info.clean_progress = None;
            n.provision_state = ProvisionState::CleanWait;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Phase `agent_step`: looks at the agent's last command (§6 rules).
    async fn check_agent_step(
        &self,
        node: Node,
        ports: &[Port],
        client: &AgentClient,
    ) -> Result<(), Stop> {
        let uuid = node.uuid;
        let index = node.driver_internal_info.clean_step_index.unwrap_or(0);
        let Some(step) = node.clean_step.clone() else {
            return Err(Stop::Failed(format!(
                "Node {uuid} waits for a clean step but has no current clean_step"
            )));
        };
        let id = step_id(&step);
        let commands = client.commands().await.map_err(agent_error(format!(
            "Failed to get the command status of the agent of node {uuid} while waiting for \
             clean step {id}"
        )))?;
        match steps::judge(StepKind::Clean, &commands, &step) {
            AgentStepStatus::Restarted => {
                tracing::warn!(node = %uuid, step = %id,
                    "the agent has no record of the clean step (restarted?); sending it again");
                self.rerun_step(uuid, ports, client).await
            }
            AgentStepStatus::Waiting(why) => {
                tracing::info!(node = %uuid, step = %id, %why, "waiting");
                Ok(())
            }
            AgentStepStatus::Running(progress) => {
                if let Some(progress) = progress {
                    self.update(uuid, move |n| {
                        if n.driver_internal_info.clean_phase == Some(CleanPhase::AgentStep) {
                            n.driver_internal_info.clean_progress = Some(progress);
                        }
                        Ok(())
                    })
                    .await?;
                }
                Ok(())
            }
            AgentStepStatus::Succeeded(done) => {
                tracing::info!(node = %uuid, step = %id, "clean step finished on the agent");
                self.post_step_hook(uuid, &step, *done).await?;
                self.next_step(uuid, index).await?;
                self.continue_steps(uuid, ports, client).await
            }
            AgentStepStatus::Failed(error) => {
                Err(Stop::Failed(step_failed_message(uuid, &step, &error)))
            }
            AgentStepStatus::VersionMismatch(error) => {
                self.version_mismatch(node, ports, client, error).await
            }
            AgentStepStatus::Unknown => Err(Stop::Failed(format!(
                "Agent returned unknown status for clean step {id} on node {uuid}."
            ))),
        }
    }

    /// A hardware-manager version mismatch: fresh steps, then automated cleaning restarts
    /// from its first step and manual cleaning runs the current step again.
    async fn version_mismatch(
        &self,
        node: Node,
        ports: &[Port],
        client: &AgentClient,
        error: String,
    ) -> Result<(), Stop> {
        let uuid = node.uuid;
        let restarts = node.driver_internal_info.clean_restarts.unwrap_or(0) + 1;
        if restarts > self.options.max_restarts {
            return Err(Stop::Failed(format!(
                "Cleaning of node {uuid} stopped after {} restarts for hardware manager \
                 version mismatches: {error}",
                self.options.max_restarts
            )));
        }
        let manual = is_manual(&node);
        tracing::warn!(node = %uuid, %error, restarts, manual,
            "hardware manager version mismatch; refreshing the clean steps");
        steps::refresh(&self.store, client, StepKind::Clean, &node, ports)
            .await
            .map_err(|e| e.context(format_args!("Could not continue cleaning on node {uuid}")))?;
        let node = self.load(uuid).await?;
        let planned = (!manual).then(|| {
            plan::automated(
                node.driver_internal_info.agent_cached_clean_steps.as_ref(),
                &self.options.priorities,
            )
        });
        self.update(uuid, move |n| {
            if n.driver_internal_info.clean_phase != Some(CleanPhase::AgentStep) {
                return Err(Stop::Conflict("cleaning moved on".into()));
            }
            n.driver_internal_info.clean_restarts = Some(restarts);
            match planned {
                Some(planned) => set_plan(n, planned),
                None => {
                    n.driver_internal_info.clean_phase = Some(CleanPhase::StepRunning);
                    n.driver_internal_info.clean_progress = None;
                    n.provision_state = ProvisionState::Cleaning;
                }
            }
            Ok(())
        })
        .await?;
        self.continue_steps(uuid, ports, client).await
    }

    /// Ironic's post clean step hooks: the RAID configuration after the RAID steps.
    async fn post_step_hook(
        &self,
        uuid: Uuid,
        step: &Step,
        done: CommandResult,
    ) -> Result<(), Stop> {
        let (hook, id) = match (step.interface.as_str(), step.step.as_str()) {
            ("raid", "create_configuration") => ("_create_configuration_final", step_id(step)),
            ("raid", "delete_configuration") => ("_delete_configuration_final", step_id(step)),
            _ => return Ok(()),
        };
        let failed = move |cls: &str, why: String| {
            Stop::Failed(format!(
                "For node {uuid}, post clean step hook {hook} failed for clean step {id}.{cls}: \
                 {why}"
            ))
        };
        if step.step == "delete_configuration" {
            return self
                .update(uuid, |n| {
                    raid::clear_raid_info(n);
                    Ok(())
                })
                .await
                .map(|_| ());
        }
        let built = done
            .command_result
            .as_ref()
            .and_then(|r| r.get(StepKind::Clean.outcome_key()))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned();
        let Some(built) = built else {
            let shown = serde_json::to_string(&done).unwrap_or_default();
            return Err(failed(
                "IronicException",
                format!(
                    "Agent ramdisk didn't return a proper command result while building RAID \
                     on {uuid}. It returned '{shown}' after command execution."
                ),
            ));
        };
        self.update(uuid, move |n| {
            raid::update_raid_info(n, &built).map_err(|e| failed("InvalidParameterValue", e))
        })
        .await
        .map(|_| ())
    }

    /// Moves to the step after `index` (phase `step_running`, node `cleaning`).
    async fn next_step(&self, uuid: Uuid, index: usize) -> Result<(), Stop> {
        self.update(uuid, move |n| {
            if n.driver_internal_info.clean_step_index != Some(index) {
                return Err(Stop::Conflict("the clean step index changed".into()));
            }
            let dii = &mut n.driver_internal_info;
            dii.clean_step_index = Some(index + 1);
            dii.clean_phase = Some(CleanPhase::StepRunning);
            dii.clean_progress = None;
            n.clean_step = dii
                .clean_steps
                .as_ref()
                .and_then(|s| s.get(index + 1))
                .cloned();
            n.provision_state = ProvisionState::Cleaning;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Sends the current step again.
    async fn rerun_step(
        &self,
        uuid: Uuid,
        ports: &[Port],
        client: &AgentClient,
    ) -> Result<(), Stop> {
        self.update(uuid, |n| {
            n.driver_internal_info.clean_phase = Some(CleanPhase::StepRunning);
            n.driver_internal_info.clean_progress = None;
            n.provision_state = ProvisionState::Cleaning;
            Ok(())
        })
        .await?;
        self.continue_steps(uuid, ports, client).await
    }

    /// All steps done: tear down (power off unless fast-track), then `available` or
    /// `manageable`.
    async fn finish(&self, node: Node, client: &AgentClient) -> Result<(), Stop> {
        let uuid = node.uuid;
        if !self.fast_track {
            let resuming = node.driver_internal_info.clean_phase == Some(CleanPhase::PowerOff);
            if !(resuming && steps::power_off_sent(client, uuid).await?) {
                self.update(uuid, |n| {
                    n.driver_internal_info.clean_phase = Some(CleanPhase::PowerOff);
                    n.clean_step = None;
                    Ok(())
                })
                .await?;
                steps::power_off(client, uuid).await.map_err(|e| {
                    e.context(format_args!(
                        "Failed to tear down from cleaning for node {uuid}, reason"
                    ))
                })?;
            }
        }
        let fast_track = self.fast_track;
        let node = self
            .update(uuid, move |n| {
                n.provision_state = if is_manual(n) {
                    ProvisionState::Manageable
                } else {
                    ProvisionState::Available
                };
                n.target_provision_state = None;
                n.clean_step = None;
                n.last_error = None;
                let dii = &mut n.driver_internal_info;
                dii.clean_phase = Some(CleanPhase::Done);
                dii.clean_steps = None;
                dii.clean_step_index = None;
                dii.clean_progress = None;
                dii.clean_restarts = None;
                dii.requested_clean_steps = None;
                dii.agent_cached_clean_steps = None;
                dii.agent_cached_clean_steps_refreshed = None;
                if !fast_track {
                    n.power_state = Some(PowerState::Off);
                    dii.wipe_token_and_url();
                }
                Ok(())
            })
            .await?;
        tracing::info!(node = %uuid, state = %node.provision_state, "cleaning finished");
        Ok(())
    }

    /// `cleaning` ⇒ `clean wait` (the phase stays): retried on the next heartbeat.
    async fn back_to_wait(&self, uuid: Uuid) -> Result<(), Stop> {
        self.update(uuid, |n| {
            if n.provision_state == ProvisionState::Cleaning {
                n.provision_state = ProvisionState::CleanWait;
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// `clean failed` with `message` as `last_error`.
    async fn fail(&self, uuid: Uuid, message: String) {
        let written = self
            .update(uuid, move |n| {
                if matches!(
                    n.provision_state,
                    ProvisionState::Cleaning | ProvisionState::CleanWait
                ) {
                    n.provision_state = ProvisionState::CleanFailed;
                }
                n.last_error = Some(message);
                n.target_provision_state = None;
                n.clean_step = None;
                let dii = &mut n.driver_internal_info;
                dii.clean_phase = Some(CleanPhase::Failed);
                dii.clean_step_index = None;
                dii.clean_progress = None;
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::error!(node = %uuid, error = %e, "cannot record the cleaning failure");
        }
    }

    async fn load(&self, uuid: Uuid) -> Result<Node, Stop> {
        steps::load_node(&self.store, uuid).await
    }

    async fn update<F>(&self, uuid: Uuid, f: F) -> Result<Node, Stop>
    where
        F: FnOnce(&mut Node) -> Result<(), Stop> + Send + 'static,
    {
        steps::update_node(&self.store, uuid, f).await
    }
}

/// Stores a fresh plan: `clean_steps`, index 0, the first step current (phase
/// `step_running`, node `cleaning`).
fn set_plan(n: &mut Node, planned: Vec<Step>) {
    n.clean_step = planned.first().cloned();
    let dii = &mut n.driver_internal_info;
    dii.clean_step_index = Some(0);
    dii.clean_steps = Some(planned);
    dii.clean_phase = Some(CleanPhase::StepRunning);
    dii.clean_progress = None;
    n.provision_state = ProvisionState::Cleaning;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn erase_settings_use_ironics_keys() {
        let mut dii = DriverInternalInfo::default();
        EraseSettings::default().apply(&mut dii);
        let v = serde_json::to_value(&dii).unwrap();
        assert_eq!(
            v,
            json!({
                "agent_erase_devices_iterations": 1,
                "agent_erase_devices_zeroize": true,
                "agent_continue_if_secure_erase_failed": false,
                "agent_continue_if_ata_erase_failed": false,
                "agent_enable_nvme_secure_erase": true,
                "agent_enable_ata_secure_erase": true,
                "disk_erasure_concurrency": 4,
                "agent_erase_skip_read_only": false
            })
        );
    }

    #[test]
    fn failure_messages() {
        let step = Step {
            interface: "deploy".into(),
            step: "erase_devices".into(),
            priority: 10,
            extra: Default::default(),
        };
        assert_eq!(
            step_failed_message(Uuid::nil(), &step, "boom"),
            format!(
                "Clean step deploy.erase_devices failed on node {}. boom",
                Uuid::nil()
            )
        );
    }
}
