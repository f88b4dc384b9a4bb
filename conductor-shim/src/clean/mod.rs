//! Cleaning through the agent, driven by heartbeats like Ironic's `conductor/cleaning.py`
//! with the `agent_base` interfaces.
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
//! The run of the plan on heartbeats is shared with deploys ([`crate::steps`]); this module
//! adds how cleaning starts (erase settings, plan), the RAID hooks, the restarts and the end.
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

use crate::agent_client::{AgentClient, AgentClientOptions, CommandResult};
use crate::model::{CleanPhase, DriverInternalInfo, Node, Port, PowerState, Step};
use crate::node_dict::AgentNodeDict;
use crate::state::ProvisionState;
use crate::steps::runner::{self, Agent, Flow, Runner};
use crate::steps::{StepKind, Stop, step_id};
use crate::store::SharedStore;
pub use plan::PriorityOverrides;

/// How often cleaning may restart after a hardware-manager version mismatch.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;

/// The erase settings Ironic puts in `driver_internal_info` before cleaning
/// (`agent_add_clean_params`), with Ironic's defaults.
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
    runner::wants_heartbeat::<Cleaner>(node)
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
    run: Runner,
    options: CleanOptions,
    fast_track: bool,
}

impl Cleaner {
    /// Collects the agent's logs as `logs` says (on failure, always or never).
    pub fn set_ramdisk_logs(&mut self, logs: crate::ramdisk_logs::RamdiskLogs) {
        self.run.logs = logs;
    }

    /// A cleaner working on `store`, reaching agents with `agent` options; with
    /// `fast_track` the agent is left running after cleaning.
    pub fn new(
        store: SharedStore,
        agent: AgentClientOptions,
        options: CleanOptions,
        fast_track: bool,
    ) -> Cleaner {
        Cleaner {
            run: Runner::new(store, agent),
            options,
            fast_track,
        }
    }

    /// Advances the cleaning of `node` after an accepted heartbeat. The caller holds the
    /// node's lock.
    pub async fn on_heartbeat(&self, node: Node, ports: Vec<Port>) {
        runner::on_heartbeat(self, node, ports).await;
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
            return self.run.set(uuid, raid::clear_raid_info).await;
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
        self.run
            .update(uuid, move |n| {
                raid::update_raid_info(n, &built).map_err(|e| failed("InvalidParameterValue", e))
            })
            .await
            .map(|_| ())
    }
}

impl Flow for Cleaner {
    type Phase = CleanPhase;

    fn runner(&self) -> &Runner {
        &self.run
    }

    fn clear_on_failure(n: &mut Node) {
        n.target_provision_state = None;
        n.driver_internal_info.clean_step_index = None;
    }

    /// Phase `requested`: `cleaning`, erase settings, the agent's steps, the plan; then the
    /// first step.
    async fn start(&self, node: Node, agent: Agent<'_>) -> Result<(), Stop> {
        let uuid = node.uuid;
        let erase = self.options.erase.clone();
        let node = self
            .run
            .update(uuid, move |n| {
                runner::check_requested::<Cleaner>(n)?;
                n.provision_state = ProvisionState::Cleaning;
                // The agent heartbeats, so the machine is on.
                n.power_state = Some(PowerState::On);
                erase.apply(&mut n.driver_internal_info);
                Ok(())
            })
            .await?;
        let first = "Node failed to start the first cleaning step";
        self.run
            .refresh(StepKind::Clean, &node, agent)
            .await
            .map_err(|e| e.context(first))?;
        let node = self.run.load(uuid).await?;
        let dii = &node.driver_internal_info;
        let cached = dii.agent_cached_clean_steps.as_ref();
        let planned = match &dii.requested_clean_steps {
            Some(requested) => plan::manual(requested, cached, &self.options.priorities)
                .map_err(|e| Stop::Failed(format!("{first}: {e}")))?,
            None => plan::automated(cached, &self.options.priorities),
        };
        let names: Vec<String> = planned.iter().map(step_id).collect();
        tracing::info!(node = %uuid, manual = is_manual(&node), steps = ?names, "starting cleaning");
        runner::start_plan(self, uuid, planned, |_| {}, agent).await
    }

    /// Every clean step runs on the agent.
    async fn run_conductor_step(
        &self,
        _node: &Node,
        _step: &Step,
        _client: &AgentClient,
    ) -> Result<bool, Stop> {
        Ok(false)
    }

    /// The step as listed, the node with its secrets masked; `raid.create_configuration`
    /// first needs a `target_raid_config`.
    fn agent_call(&self, node: &Node, step: &Step) -> Result<(Value, AgentNodeDict), Stop> {
        let uuid = node.uuid;
        let id = step_id(step);
        let step_error = |why: String| Stop::Failed(format!("Node {uuid} failed step {id}: {why}"));
        let mut dict_node = node.clone();
        if step.interface == "raid" && step.step == "create_configuration" {
            let args = step.extra.get("args").and_then(Value::as_object);
            let target = raid::filter_target_raid_config(node, args).map_err(step_error)?;
            dict_node
                .driver_internal_info
                .extra
                .insert("target_raid_config".into(), Value::Object(target));
        }
        let call = runner::encode_step(StepKind::Clean, step)?;
        Ok((call, AgentNodeDict::new(&dict_node)))
    }

    fn send_failed_context(uuid: Uuid, step: &Step) -> String {
        format!("Node {uuid} failed step {}", step_id(step))
    }

    fn step_failed_message(uuid: Uuid, step: &Step, error: &str) -> String {
        step_failed_message(uuid, step, error)
    }

    fn unknown_status_message(uuid: Uuid, step: &Step) -> String {
        format!(
            "Agent returned unknown status for clean step {} on node {uuid}.",
            step_id(step)
        )
    }

    async fn step_done(&self, uuid: Uuid, step: &Step, done: CommandResult) -> Result<(), Stop> {
        self.post_step_hook(uuid, step, done).await
    }

    /// A hardware-manager version mismatch: fresh steps, then automated cleaning restarts
    /// from its first step and manual cleaning runs the current step again.
    async fn restart(&self, node: Node, agent: Agent<'_>, error: String) -> Result<(), Stop> {
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
        self.run
            .refresh(StepKind::Clean, &node, agent)
            .await
            .map_err(|e| e.context(format_args!("Could not continue cleaning on node {uuid}")))?;
        let node = self.run.load(uuid).await?;
        let planned = (!manual).then(|| {
            plan::automated(
                node.driver_internal_info.agent_cached_clean_steps.as_ref(),
                &self.options.priorities,
            )
        });
        self.run
            .update(uuid, move |n| {
                if n.driver_internal_info.clean_phase != Some(CleanPhase::AgentStep) {
                    return Err(Stop::Conflict("cleaning moved on".into()));
                }
                n.driver_internal_info.clean_restarts = Some(restarts);
                match planned {
                    Some(planned) => runner::set_plan::<Cleaner>(n, planned),
                    None => runner::rerun_current::<Cleaner>(n),
                }
                Ok(())
            })
            .await?;
        runner::continue_steps(self, uuid, agent).await
    }

    /// All steps done: tear down (power off unless fast-track), then `available` or
    /// `manageable`.
    async fn finish(&self, node: Node, client: &AgentClient) -> Result<(), Stop> {
        let uuid = node.uuid;
        if !self.fast_track {
            let context = format!("Failed to tear down from cleaning for node {uuid}, reason");
            runner::power_off_once(self, &node, client, |n| n.clean_step = None, Some(context))
                .await?;
        }
        let fast_track = self.fast_track;
        let node = self
            .run
            .update(uuid, move |n| {
                n.provision_state = if is_manual(n) {
                    ProvisionState::Manageable
                } else {
                    ProvisionState::Available
                };
                n.target_provision_state = None;
                runner::set_done::<Cleaner>(n);
                let dii = &mut n.driver_internal_info;
                dii.clean_restarts = None;
                dii.requested_clean_steps = None;
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
}

#[cfg(test)]
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
        let step = Step::new("deploy", "erase_devices", 10);
        assert_eq!(
            step_failed_message(Uuid::nil(), &step, "boom"),
            format!(
                "Clean step deploy.erase_devices failed on node {}. boom",
                Uuid::nil()
            )
        );
    }
}
