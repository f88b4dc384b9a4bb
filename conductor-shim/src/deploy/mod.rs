//! Deploying an image through the agent, driven by heartbeats like Ironic's `agent_base` with
//! the `direct` deploy interface.
//!
//! `conductor-shim deploy` stores the request ([`request`]) and puts the node in
//! `wait call-back` with `driver_internal_info.deploy_phase = requested`. Then, on heartbeats:
//!
//! 1. `requested`: `deploy.get_deploy_steps` if no steps are cached, `GET /v1/commands/`
//!    (waiting while a command runs), then the plan is stored in `deploy_steps`: the
//!    conductor's steps `write_image` (80), `prepare_instance_boot` (60), `tear_down_agent`
//!    (40) and every in-band deploy step of the agent with a priority above 0, by priority.
//!    The node moves to `deploying` and the steps run in order:
//!    * `write_image` and in-band steps: `deploy.execute_deploy_step` (wait=false) with the
//!      step, the node (config drive unmasked), its ports and `deploy_version`; the node
//!      moves to `wait call-back` (phase `agent_step`).
//!    * `prepare_instance_boot`: `standby.get_partition_uuids` (wait=true), stores
//!      `root_uuid_or_disk_id`; then `image.install_bootloader` (POST, then polling
//!      `GET /v1/commands/`) for partition images with a root UUID and whole-disk images in
//!      UEFI mode. An agent without that command (404 unknown extension, 400 unknown
//!      command) is recorded in `deploy_warnings` and skipped.
//!    * `tear_down_agent`: `standby.power_off` (wait=false); `power_state` becomes
//!      `power off`. A node with `disable_power_off` is locked down instead
//!      ([`crate::lockdown`]: `standby.sync`, `system.lockdown`, polls until the agent's API
//!      is gone) and stays `power on`.
//!
//!    After the last step the node is `active`, its token and callback URL are wiped (the
//!    agent's next heartbeat is refused, as with Ironic).
//! 2. `agent_step`: `GET /v1/commands/`, only the last entry counts: another
//!    command, RUNNING (its `command_result.progress` is stored in `deploy_progress`) or a
//!    SUCCEEDED result for another step ⇒ wait; FAILED ⇒ `deploy failed` with the agent's
//!    error; `CLEAN_VERSION_MISMATCH`/`VERSION_MISMATCH` ⇒ steps refreshed and the step sent
//!    again; SUCCEEDED for our step ⇒ next step. An agent with no command at all (or only
//!    `get_deploy_steps`) was restarted: the step is sent again (Ironic would go on to the
//!    next step, assuming the step rebooted on purpose; `write_image` never does).
//!
//! Sending in-band steps, judging the agent's command list, refreshing the steps,
//! `standby.power_off` and running the plan step by step on heartbeats are shared with
//! cleaning ([`crate::steps`]); this module adds the conductor's own steps and the deploy's
//! start, end and messages.
//!
//! Every transition is written to SQLite before the agent call that follows it, so a
//! restarted shim resumes on the next heartbeat (`step_running`, `install_bootloader` and
//! `power_off` are also resumed from `deploying`). A shim killed after the agent accepted a
//! step but before the answer was recorded (`step_running`) finds the step in the agent's
//! command list, after the `agent_commands_seen` it counted before sending, and waits for it
//! instead of sending it again; `install_bootloader` and `power_off` are recognised as the
//! agent's last command. A busy agent (409) leaves the node in
//! `wait call-back` to be retried on the next heartbeat. Any other agent error fails the
//! deploy with a `last_error` naming the step.

pub mod image_info;
pub mod request;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agent_client::CommandStatus;
use crate::agent_client::{AgentClient, AgentClientError, AgentClientOptions, CommandResult};
use crate::model::Step;
use crate::model::{CachedSteps, DeployPhase, DeployProgress, Node, Port, PowerState};
use crate::node_dict::AgentNodeDict;
use crate::state::ProvisionState;
use crate::steps::runner::{self, Agent, Flow, Runner};
use crate::steps::{self, StepKind, Stop, agent_error, command_error_text};
use crate::store::SharedStore;

/// Ironic's `[agent]command_wait_interval`: seconds between polls of a polled command.
pub const DEFAULT_COMMAND_WAIT_INTERVAL: Duration = Duration::from_secs(6);

/// Ironic's `[agent]command_wait_attempts`.
pub const DEFAULT_COMMAND_WAIT_ATTEMPTS: u32 = 100;

/// The conductor's own deploy steps (Ironic's `direct` deploy interface, after `deploy`).
pub const WRITE_IMAGE: &str = "write_image";
/// See [`WRITE_IMAGE`].
pub const PREPARE_INSTANCE_BOOT: &str = "prepare_instance_boot";
/// See [`WRITE_IMAGE`].
pub const TEAR_DOWN_AGENT: &str = "tear_down_agent";

/// Names of the `deploy` interface's out-of-band steps; in-band steps with these names are
/// not scheduled (the conductor's step wins).
const OOB_STEP_NAMES: &[&str] = &[
    "deploy",
    WRITE_IMAGE,
    PREPARE_INSTANCE_BOOT,
    TEAR_DOWN_AGENT,
    "switch_to_tenant_network",
    "boot_instance",
];

/// Settings of the deploy driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOptions {
    /// Time between two `GET /v1/commands/` while polling `install_bootloader`.
    pub command_wait_interval: Duration,
    /// Polls before giving up on `install_bootloader`.
    pub command_wait_attempts: u32,
    /// Time between two `GET /v1/commands/` waiting for a locked-down agent to go away
    /// (Ironic's `[agent]post_deploy_get_power_state_retry_interval`).
    pub lockdown_poll_interval: Duration,
    /// Polls after the first one before a lockdown fails (Ironic's
    /// `[agent]post_deploy_get_power_state_retries`).
    pub lockdown_poll_retries: u32,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            command_wait_interval: DEFAULT_COMMAND_WAIT_INTERVAL,
            command_wait_attempts: DEFAULT_COMMAND_WAIT_ATTEMPTS,
            lockdown_poll_interval: crate::lockdown::DEFAULT_POLL_INTERVAL,
            lockdown_poll_retries: crate::lockdown::DEFAULT_POLL_RETRIES,
        }
    }
}

/// Whether a failed POST means "this agent does not have the command".
fn command_unavailable(e: &AgentClientError) -> bool {
    match e {
        AgentClientError::AgentApi {
            status,
            faultstring,
        } => {
            let text = faultstring.to_ascii_lowercase();
            (*status == 404 && text.contains("extension"))
                || (*status == 400 && text.contains("unknown command"))
        }
        _ => false,
    }
}

/// An out-of-band step of the conductor, as Ironic lists it.
fn oob_step(name: &str, priority: i64) -> Step {
    let mut step = Step::new("deploy", name, priority);
    step.extra.insert("argsinfo".to_string(), Value::Null);
    step
}

/// The deploy steps to run: the conductor's `write_image`, `prepare_instance_boot` and
/// `tear_down_agent` plus the agent's in-band steps with a priority above 0, highest
/// priority first (the conductor's steps first on ties).
pub fn plan(cached: Option<&CachedSteps>) -> Vec<Step> {
    let mut steps = vec![
        oob_step(WRITE_IMAGE, 80),
        oob_step(PREPARE_INSTANCE_BOOT, 60),
        oob_step(TEAR_DOWN_AGENT, 40),
    ];
    let in_band = cached
        .into_iter()
        .flat_map(|c| c.values().flatten())
        .filter(|s| s.priority > 0)
        .filter(|s| !(s.interface == "deploy" && OOB_STEP_NAMES.contains(&s.step.as_str())));
    steps.extend(in_band.cloned());
    steps.sort_by_key(|s| std::cmp::Reverse(s.priority));
    steps
}

/// Whether this step runs on the agent through `execute_deploy_step`.
fn runs_on_agent(step: &Step) -> bool {
    !(step.interface == "deploy"
        && [PREPARE_INSTANCE_BOOT, TEAR_DOWN_AGENT].contains(&step.step.as_str()))
}

/// `step.interface`.`step.step`.
fn step_name(step: &Step) -> String {
    steps::step_id(step)
}

/// Whether `node` has a deploy the heartbeat should advance.
pub fn wants_heartbeat(node: &Node) -> bool {
    runner::wants_heartbeat::<Deployer>(node)
}

/// `image.install_bootloader` params.
#[derive(Debug, Clone, Serialize)]
struct InstallBootloaderParams {
    root_uuid: Option<String>,
    efi_system_part_uuid: Option<String>,
    prep_boot_part_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_boot_mode: Option<String>,
}

/// The `standby.get_partition_uuids` result.
#[derive(Debug, Clone, Default, Deserialize)]
struct PartitionUuids {
    #[serde(rename = "root uuid", default)]
    root_uuid: Option<String>,
    #[serde(rename = "efi system partition uuid", default)]
    efi_system_partition_uuid: Option<String>,
    #[serde(rename = "PReP Boot partition uuid", default)]
    prep_boot_partition_uuid: Option<String>,
}

/// The progress of a running `execute_deploy_step`, if it is the agent's last command.
pub fn running_progress(commands: &[CommandResult]) -> Option<DeployProgress> {
    steps::running_progress(StepKind::Deploy, commands)
}

/// Drives deploys on heartbeats.
#[derive(Debug, Clone)]
pub struct Deployer {
    run: Runner,
    options: DeployOptions,
}

impl Deployer {
    /// Collects the agent's logs as `logs` says (on failure, always or never).
    pub fn set_ramdisk_logs(&mut self, logs: crate::ramdisk_logs::RamdiskLogs) {
        self.run.logs = logs;
    }

    /// A deployer working on `store`, reaching agents with `agent` options.
    pub fn new(store: SharedStore, agent: AgentClientOptions, options: DeployOptions) -> Deployer {
        Deployer {
            run: Runner::new(store, agent),
            options,
        }
    }

    /// Advances the deploy of `node` after an accepted heartbeat. The caller holds the
    /// node's lock.
    pub async fn on_heartbeat(&self, node: Node, ports: Vec<Port>) {
        runner::on_heartbeat(self, node, ports).await;
    }

    /// `deploy.get_deploy_steps`, cached in `driver_internal_info`.
    async fn refresh_steps(&self, node: &Node, agent: Agent<'_>) -> Result<(), Stop> {
        let uuid = node.uuid;
        self.run
            .refresh(StepKind::Deploy, node, agent)
            .await
            .map_err(|e| {
                e.context(format_args!(
                    "Failed to get deploy steps from the agent of node {uuid}"
                ))
            })?;
        Ok(())
    }

    /// `prepare_instance_boot`: partition UUIDs, then the bootloader when needed.
    async fn prepare_instance_boot(&self, node: &Node, client: &AgentClient) -> Result<(), Stop> {
        let uuid = node.uuid;
        if node.driver_internal_info.deploy_phase == Some(DeployPhase::InstallBootloader) {
            // Resuming: the command may be on the agent already.
            let commands = client.commands().await.map_err(agent_error(format!(
                "Failed to get the command status of the agent of node {uuid}"
            )))?;
            if let Some(last) = commands.last()
                && last.command_name == "install_bootloader"
            {
                return self.finish_bootloader(uuid, client, last.clone()).await;
            }
        }
        let result = client
            .execute("standby.get_partition_uuids", &json!({}), true)
            .await
            .map_err(agent_error(format!(
                "Failed to get partition UUIDs from the agent of node {uuid}"
            )))?;
        if result.command_status != CommandStatus::Succeeded {
            return Err(Stop::Failed(format!(
                "Failed to get partition UUIDs from the agent of node {uuid}: {}",
                command_error_text(result.command_error.as_ref())
            )));
        }
        let uuids = result
            .command_result
            .as_ref()
            .and_then(|v| PartitionUuids::deserialize(v).ok())
            .unwrap_or_default();
        let whole_disk = !image_info::is_partition_image(node);
        let boot_mode = image_info::boot_mode(node);
        let software_raid = image_info::software_raid(node);
        let (root, efi) = (
            uuids.root_uuid.clone(),
            uuids.efi_system_partition_uuid.clone(),
        );
        self.run
            .set(uuid, move |n| {
                n.driver_internal_info.root_uuid_or_disk_id = root;
                n.driver_internal_info.efi_system_partition_uuid = efi;
            })
            .await?;
        // Software RAID: the root filesystem's UUID comes from the image's metadata
        // (`instance_info.image_rootfs_uuid`), else from the agent, as with Ironic.
        let root_uuid = if software_raid {
            node.instance_info
                .get("image_rootfs_uuid")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(uuids.root_uuid.clone())
        } else {
            uuids.root_uuid.clone()
        };
        let needed = software_raid
            || if whole_disk {
                boot_mode == "uefi"
            } else {
                uuids.root_uuid.is_some()
            };
        if !needed {
            if !whole_disk {
                self.warn(
                    uuid,
                    format!(
                        "The agent reported no root UUID for the partition image of node {uuid}; \
                     no bootloader was installed"
                    ),
                )
                .await?;
            }
            tracing::info!(node = %uuid, whole_disk, %boot_mode, "no bootloader installation needed");
            return Ok(());
        }
        self.run
            .set(uuid, |n| {
                n.driver_internal_info.deploy_phase = Some(DeployPhase::InstallBootloader);
            })
            .await?;
        let mut params = InstallBootloaderParams {
            root_uuid,
            efi_system_part_uuid: uuids.efi_system_partition_uuid,
            prep_boot_part_uuid: uuids.prep_boot_partition_uuid,
            target_boot_mode: Some(boot_mode),
        };
        let context = format!("Failed to install a bootloader when deploying node {uuid}");
        let first = client
            .execute("image.install_bootloader", &params, false)
            .await;
        let result = match first {
            Ok(result) => result,
            Err(e) if command_unavailable(&e) => {
                return self.bootloader_unavailable(uuid, &e).await;
            }
            Err(e @ AgentClientError::AgentApi { .. })
                if !(software_raid && params.target_boot_mode.as_deref() == Some("uefi")) =>
            {
                // Ironic retries without target_boot_mode, for agents predating it (not for
                // UEFI on software RAID, which needs the mode).
                tracing::warn!(node = %uuid, error = %e, "install_bootloader refused; retrying without target_boot_mode");
                params.target_boot_mode = None;
                match client
                    .execute("image.install_bootloader", &params, false)
                    .await
                {
                    Ok(result) => result,
                    Err(e) if command_unavailable(&e) => {
                        return self.bootloader_unavailable(uuid, &e).await;
                    }
                    Err(e) => return Err(agent_error(context)(e)),
                }
            }
            Err(e) => return Err(agent_error(context)(e)),
        };
        self.finish_bootloader(uuid, client, result).await
    }

    async fn bootloader_unavailable(&self, uuid: Uuid, e: &AgentClientError) -> Result<(), Stop> {
        self.warn(
            uuid,
            format!(
                "The agent of node {uuid} has no image.install_bootloader ({e}); the bootloader \
             was not installed"
            ),
        )
        .await
    }

    /// Polls `install_bootloader` until it finishes; fails the deploy if it failed.
    async fn finish_bootloader(
        &self,
        uuid: Uuid,
        client: &AgentClient,
        initial: CommandResult,
    ) -> Result<(), Stop> {
        let done = self
            .poll_command(uuid, client, "install_bootloader", initial)
            .await?;
        match done.command_status {
            CommandStatus::Succeeded => {
                tracing::info!(node = %uuid, "bootloader installed");
                // Failures the agent ignored (ignore_bootloader_failure) are kept as warnings.
                let ignored: Vec<String> = done
                    .command_result
                    .as_ref()
                    .and_then(|r| r.get("warnings"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|w| format!("install_bootloader on node {uuid}: {w}"))
                    .collect();
                for w in ignored {
                    self.warn(uuid, w).await?;
                }
                Ok(())
            }
            _ => Err(Stop::Failed(format!(
                "Failed to install a bootloader when deploying node {uuid}: {}",
                command_error_text(done.command_error.as_ref())
            ))),
        }
    }

    /// Ironic's `poll=True`: `GET /v1/commands/` (at once, then every
    /// `command_wait_interval`) until the newest `short` result is no longer RUNNING.
    async fn poll_command(
        &self,
        uuid: Uuid,
        client: &AgentClient,
        short: &str,
        initial: CommandResult,
    ) -> Result<CommandResult, Stop> {
        if initial.command_status != CommandStatus::Running {
            return Ok(initial);
        }
        let attempts = self.options.command_wait_attempts.max(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.options.command_wait_interval).await;
            }
            let commands = client.commands().await.map_err(agent_error(format!(
                "Failed to get the status of {short} from the agent of node {uuid}"
            )))?;
            if let Some(latest) = commands.iter().rev().find(|c| c.command_name == short)
                && latest.command_status != CommandStatus::Running
            {
                return Ok(latest.clone());
            }
        }
        Err(Stop::Failed(format!(
            "Timed out waiting for {short} on the agent of node {uuid} after {attempts} polls \
             {:?} apart",
            self.options.command_wait_interval
        )))
    }

    /// `tear_down_agent`: `standby.power_off`, or for a node with `disable_power_off` the
    /// agent's lockdown (the machine stays on).
    async fn tear_down_agent(&self, node: &Node, client: &AgentClient) -> Result<(), Stop> {
        if node.disable_power_off {
            tracing::info!(node = %node.uuid, "node does not support power off; locking down the agent");
            crate::lockdown::lockdown(
                client,
                node.uuid,
                self.options.lockdown_poll_interval,
                self.options.lockdown_poll_retries,
            )
            .await
            .map_err(|e| match e {
                crate::lockdown::LockdownError::Command { source, .. }
                    if source.is_in_progress() =>
                {
                    Stop::Busy(source.to_string())
                }
                e => Stop::Failed(format!(
                    "Error rebooting node {} after deploy. {e}",
                    node.uuid
                )),
            })?;
            return self
                .run
                .set(node.uuid, |n| n.power_state = Some(PowerState::On))
                .await;
        }
        runner::power_off_once(self, node, client, |_| {}, None).await?;
        self.run
            .set(node.uuid, |n| n.power_state = Some(PowerState::Off))
            .await
    }

    /// Records a non-fatal problem.
    async fn warn(&self, uuid: Uuid, message: String) -> Result<(), Stop> {
        tracing::warn!(node = %uuid, "{message}");
        self.run
            .set(uuid, move |n| {
                n.driver_internal_info.deploy_warnings.push(message)
            })
            .await
    }
}

impl Flow for Deployer {
    type Phase = DeployPhase;
    const START_STATE: Option<ProvisionState> = Some(ProvisionState::DeployWait);

    fn runner(&self) -> &Runner {
        &self.run
    }

    /// Phase `requested`: steps, the agent idle, the plan; then the first step.
    async fn start(&self, node: Node, agent: Agent<'_>) -> Result<(), Stop> {
        let uuid = node.uuid;
        let mut node = node;
        if node
            .driver_internal_info
            .agent_cached_deploy_steps
            .is_none()
        {
            self.refresh_steps(&node, agent).await?;
            node = self.run.load(uuid).await?;
        }
        let commands = agent.client.commands().await.map_err(agent_error(format!(
            "Failed to get the command status of the agent of node {uuid}"
        )))?;
        if let Some(last) = commands.last()
            && last.command_status == CommandStatus::Running
        {
            return Err(Stop::Busy(format!(
                "the agent is still running {}",
                last.command_name
            )));
        }
        // A request that cannot be sent fails now, before anything runs.
        image_info::write_image_args(&node).map_err(|e| Stop::Failed(e.to_string()))?;
        let steps = plan(node.driver_internal_info.agent_cached_deploy_steps.as_ref());
        let names: Vec<String> = steps.iter().map(step_name).collect();
        tracing::info!(node = %uuid, steps = ?names, "starting the deploy");
        // The agent heartbeats, so the machine is on; the first step comes after the
        // commands just listed.
        let seen = commands.len();
        let also = move |n: &mut Node| {
            n.power_state = Some(PowerState::On);
            n.driver_internal_info.agent_commands_seen = Some(seen);
        };
        runner::start_plan(self, uuid, steps, also, agent).await
    }

    /// `prepare_instance_boot` and `tear_down_agent`; the other steps run on the agent.
    async fn run_conductor_step(
        &self,
        node: &Node,
        step: &Step,
        client: &AgentClient,
    ) -> Result<bool, Stop> {
        if runs_on_agent(step) {
            return Ok(false);
        }
        if step.step == PREPARE_INSTANCE_BOOT {
            self.prepare_instance_boot(node, client).await?;
        } else {
            self.tear_down_agent(node, client).await?;
        }
        Ok(true)
    }

    /// All but `prepare_instance_boot` and `tear_down_agent`.
    fn is_agent_step(step: &Step) -> bool {
        runs_on_agent(step)
    }

    /// `write_image` with the image's arguments, other steps with `args` (`{}` if none);
    /// the node with its config drive.
    fn agent_call(&self, node: &Node, step: &Step) -> Result<(Value, AgentNodeDict), Stop> {
        let call = if step.interface == "deploy" && step.step == WRITE_IMAGE {
            let args =
                image_info::write_image_args(node).map_err(|e| Stop::Failed(e.to_string()))?;
            json!({"interface": "deploy", "step": WRITE_IMAGE, "args": args})
        } else {
            let mut call = runner::encode_step(StepKind::Deploy, step)?;
            if let Some(map) = call.as_object_mut() {
                map.entry("args").or_insert_with(|| json!({}));
            }
            call
        };
        Ok((call, AgentNodeDict::with_configdrive(node)))
    }

    fn send_failed_context(uuid: Uuid, step: &Step) -> String {
        format!(
            "Failed to start deploy step {} on the agent of node {uuid}",
            step_name(step)
        )
    }

    fn step_failed_message(uuid: Uuid, step: &Step, error: &str) -> String {
        format!(
            "Agent returned error for deploy step {} on node {uuid}: {error}",
            step_name(step)
        )
    }

    fn unknown_status_message(uuid: Uuid, step: &Step) -> String {
        format!(
            "Agent returned an unknown status for deploy step {} on node {uuid}",
            step_name(step)
        )
    }

    /// `write_image` leaves its `deploy_result`.
    async fn step_done(&self, uuid: Uuid, step: &Step, done: CommandResult) -> Result<(), Stop> {
        let is_write = step.interface == "deploy" && step.step == WRITE_IMAGE;
        let deploy_result = done
            .command_result
            .as_ref()
            .and_then(|r| r.get(StepKind::Deploy.outcome_key()))
            .cloned();
        self.run
            .set(uuid, move |n| {
                if is_write {
                    n.driver_internal_info.deploy_result = deploy_result;
                }
            })
            .await
    }

    /// Fresh steps, then the step runs again.
    async fn restart(&self, node: Node, agent: Agent<'_>, error: String) -> Result<(), Stop> {
        tracing::warn!(node = %node.uuid, %error,
            "hardware manager version mismatch; refreshing the steps and running the step again");
        self.refresh_steps(&node, agent).await?;
        runner::rerun_step(self, node.uuid, agent).await
    }

    /// All steps done: `active`, token and URL wiped.
    async fn finish(&self, node: Node, _client: &AgentClient) -> Result<(), Stop> {
        let uuid = node.uuid;
        self.run
            .set(uuid, |n| {
                n.provision_state = ProvisionState::Active;
                runner::set_done::<Deployer>(n);
                n.driver_internal_info.wipe_token_and_url();
            })
            .await?;
        tracing::info!(node = %uuid, "deploy finished; node is active");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_orders_steps_by_priority() {
        let mut cached = CachedSteps::new();
        cached.insert(
            "deploy".into(),
            vec![
                Step::new("deploy", "write_image", 0),
                Step::new("deploy", "erase_devices_metadata", 0),
                Step::new("deploy", "write_image", 95),
                Step::new("deploy", "custom_early", 90),
                Step::new("deploy", "custom_late", 50),
            ],
        );
        cached.insert(
            "raid".into(),
            vec![Step::new("raid", "apply_configuration", 0)],
        );
        let names: Vec<String> = plan(Some(&cached)).iter().map(step_name).collect();
        assert_eq!(
            names,
            [
                "deploy.custom_early",
                "deploy.write_image",
                "deploy.prepare_instance_boot",
                "deploy.custom_late",
                "deploy.tear_down_agent"
            ]
        );
        let names: Vec<String> = plan(None).iter().map(step_name).collect();
        assert_eq!(
            names,
            [
                "deploy.write_image",
                "deploy.prepare_instance_boot",
                "deploy.tear_down_agent"
            ]
        );
        assert_eq!(
            serde_json::to_value(&plan(None)[0]).unwrap(),
            json!({"interface": "deploy", "step": "write_image", "priority": 80, "argsinfo": null})
        );
    }

    #[test]
    fn unavailable_commands() {
        let api = |status, text: &str| AgentClientError::AgentApi {
            status,
            faultstring: text.into(),
        };
        assert!(command_unavailable(&api(
            404,
            "Not found: Extension with id image not found."
        )));
        assert!(command_unavailable(&api(
            400,
            "Invalid command: Unknown command: image.install_bootloader"
        )));
        assert!(!command_unavailable(&api(
            400,
            "Invalid command parameters"
        )));
        assert!(!command_unavailable(&api(500, "Unknown command")));
    }
}
