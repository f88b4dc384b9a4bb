//! The agent step protocol shared by deploys ([`crate::deploy`]) and cleaning
//! ([`crate::clean`]), as Ironic's `agent_base` drives it for every step type:
//!
//! * `send_step`: `<kind>.execute_<kind>_step` (wait=false) with `step`, `node`, `ports`
//!   and `<kind>_version` (the cached `hardware_manager_version`);
//! * [`judge`]: on each heartbeat, `GET /v1/commands/` and only the last entry counts:
//!   no record of the step (a restarted agent), another command or a SUCCEEDED result of
//!   another step (wait), RUNNING (wait, with its progress), SUCCEEDED, FAILED,
//!   `CLEAN_VERSION_MISMATCH`/`VERSION_MISMATCH`, or an unknown status;
//! * `refresh`: `get_<kind>_steps`, validated and cached in `driver_internal_info` (also
//!   for [`crate::conductor`]'s plain wait states);
//! * `power_off`: `standby.power_off`, the in-band tear-down;
//! * `Stop`, `load_node`, `update_node`: how a heartbeat's work stops early and how each
//!   transition is committed before the next agent call;
//! * `runner`: the heartbeat-driven run of a plan of steps, given what an operation adds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::agent_client::CommandStatus;
use crate::agent_client::{AgentClient, AgentClientError, CommandError, CommandResult};
use crate::model::{CachedSteps, DeployProgress, DriverInternalInfo, Node, Port, Step};
use crate::node_dict::{AgentNodeDict, AgentPortDict};
use crate::state::ProvisionState;
use crate::store::{SharedStore, StoreError};
use crate::timefmt;

pub(crate) mod refresh;
pub(crate) mod runner;

/// The kind of step-driven operation a `*wait` state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Deployment (`wait call-back`).
    Deploy,
    /// Cleaning (`clean wait`).
    Clean,
    /// Servicing (`service wait`).
    Service,
}

impl StepKind {
    /// The operation waiting for the agent in `state`, if any.
    pub fn for_state(state: ProvisionState) -> Option<StepKind> {
        match state {
            ProvisionState::DeployWait => Some(StepKind::Deploy),
            ProvisionState::CleanWait => Some(StepKind::Clean),
            ProvisionState::ServiceWait => Some(StepKind::Service),
            _ => None,
        }
    }

    /// `deploy`, `clean` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy",
            StepKind::Clean => "clean",
            StepKind::Service => "service",
        }
    }

    /// `Deploy`, `Clean` or `Service`, to start a sentence.
    pub fn title(self) -> &'static str {
        match self {
            StepKind::Deploy => "Deploy",
            StepKind::Clean => "Clean",
            StepKind::Service => "Service",
        }
    }

    /// The agent command listing the steps.
    pub fn get_steps_command(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy.get_deploy_steps",
            StepKind::Clean => "clean.get_clean_steps",
            StepKind::Service => "service.get_service_steps",
        }
    }

    /// The short name of [`StepKind::get_steps_command`] in command results.
    pub fn get_steps_name(self) -> &'static str {
        match self {
            StepKind::Deploy => "get_deploy_steps",
            StepKind::Clean => "get_clean_steps",
            StepKind::Service => "get_service_steps",
        }
    }

    /// The agent command running one step.
    pub fn execute_command(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy.execute_deploy_step",
            StepKind::Clean => "clean.execute_clean_step",
            StepKind::Service => "service.execute_service_step",
        }
    }

    /// The short name of [`StepKind::execute_command`] in command results.
    pub fn execute_name(self) -> &'static str {
        match self {
            StepKind::Deploy => "execute_deploy_step",
            StepKind::Clean => "execute_clean_step",
            StepKind::Service => "execute_service_step",
        }
    }

    /// The params key carrying the hardware-manager versions (`deploy_version`, ...).
    pub fn version_key(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy_version",
            StepKind::Clean => "clean_version",
            StepKind::Service => "service_version",
        }
    }

    /// The key of the steps in the `get_*_steps` result.
    pub fn steps_key(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy_steps",
            StepKind::Clean => "clean_steps",
            StepKind::Service => "service_steps",
        }
    }

    /// The key of the echoed step in an `execute_*_step` result (`deploy_step`, ...).
    pub fn step_key(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy_step",
            StepKind::Clean => "clean_step",
            StepKind::Service => "service_step",
        }
    }

    /// The key of the step's own result in an `execute_*_step` result (`clean_result`, ...).
    pub fn outcome_key(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy_result",
            StepKind::Clean => "clean_result",
            StepKind::Service => "service_result",
        }
    }

    /// The state the node waits for the agent in (`wait call-back`, ...).
    pub fn wait_state(self) -> ProvisionState {
        match self {
            StepKind::Deploy => ProvisionState::DeployWait,
            StepKind::Clean => ProvisionState::CleanWait,
            StepKind::Service => ProvisionState::ServiceWait,
        }
    }

    /// The state the conductor works on the node in (`deploying`, ...).
    pub fn working_state(self) -> ProvisionState {
        match self {
            StepKind::Deploy => ProvisionState::Deploying,
            StepKind::Clean => ProvisionState::Cleaning,
            StepKind::Service => ProvisionState::Servicing,
        }
    }

    /// The operation in messages (`deploy failed`, `cleaning failed`).
    pub fn noun(self) -> &'static str {
        match self {
            StepKind::Deploy => "deploy",
            StepKind::Clean => "cleaning",
            StepKind::Service => "servicing",
        }
    }

    /// [`StepKind::noun`] with an article where English needs one (`the deploy continues`).
    pub fn noun_phrase(self) -> &'static str {
        match self {
            StepKind::Deploy => "the deploy",
            StepKind::Clean => "cleaning",
            StepKind::Service => "servicing",
        }
    }

    /// The state a failure moves the node to.
    pub fn failed_state(self) -> ProvisionState {
        match self {
            StepKind::Deploy => ProvisionState::DeployFailed,
            StepKind::Clean => ProvisionState::CleanFailed,
            StepKind::Service => ProvisionState::ServiceFailed,
        }
    }

    /// The cached steps of this kind.
    pub fn cached(self, dii: &DriverInternalInfo) -> Option<&CachedSteps> {
        match self {
            StepKind::Deploy => dii.agent_cached_deploy_steps.as_ref(),
            StepKind::Clean => dii.agent_cached_clean_steps.as_ref(),
            StepKind::Service => dii.agent_cached_service_steps.as_ref(),
        }
    }

    /// Caches `steps` (with the time) as the agent's steps of this kind.
    pub(crate) fn store_cached(self, dii: &mut DriverInternalInfo, steps: CachedSteps) {
        let (cached, refreshed) = self.cache_slots(dii);
        *cached = Some(steps);
        *refreshed = Some(timefmt::now());
    }

    /// Forgets the cached steps of this kind.
    pub(crate) fn clear_cached(self, dii: &mut DriverInternalInfo) {
        let (cached, refreshed) = self.cache_slots(dii);
        *cached = None;
        *refreshed = None;
    }

    fn cache_slots(
        self,
        dii: &mut DriverInternalInfo,
    ) -> (&mut Option<CachedSteps>, &mut Option<OffsetDateTime>) {
        match self {
            StepKind::Deploy => (
                &mut dii.agent_cached_deploy_steps,
                &mut dii.agent_cached_deploy_steps_refreshed,
            ),
            StepKind::Clean => (
                &mut dii.agent_cached_clean_steps,
                &mut dii.agent_cached_clean_steps_refreshed,
            ),
            StepKind::Service => (
                &mut dii.agent_cached_service_steps,
                &mut dii.agent_cached_service_steps_refreshed,
            ),
        }
    }
}

/// Why heartbeat processing of a step-driven operation stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    /// The agent is busy: retry on the next heartbeat.
    #[error("agent busy: {0}")]
    Busy(String),
    /// The node was changed by someone else (e.g. the CLI): leave it alone.
    #[error("node changed concurrently: {0}")]
    Conflict(String),
    /// The operation failed; the text becomes `last_error`.
    #[error("{0}")]
    Failed(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Stop {
    /// An agent error: busy ⇒ [`Stop::Busy`], else [`Stop::Failed`] with the error's text.
    pub(crate) fn agent(e: AgentClientError) -> Stop {
        if e.is_in_progress() {
            Stop::Busy(e.to_string())
        } else {
            Stop::Failed(e.to_string())
        }
    }

    /// Prefixes the text of a failure with `context`.
    pub(crate) fn context(self, context: impl std::fmt::Display) -> Stop {
        match self {
            Stop::Failed(why) => Stop::Failed(format!("{context}: {why}")),
            other => other,
        }
    }
}

/// Maps an agent error: busy ⇒ [`Stop::Busy`], else a failure described by `context`.
pub(crate) fn agent_error(context: impl Into<String>) -> impl FnOnce(AgentClientError) -> Stop {
    let context = context.into();
    move |e| Stop::agent(e).context(context)
}

/// The text Ironic reports for a failed command (`details`, `message`, or the whole error).
pub fn command_error_text(error: Option<&CommandError>) -> String {
    error.map_or_else(|| "unknown error".to_string(), CommandError::describe)
}

/// `interface.step`, Ironic's `step_id`.
pub fn step_id(step: &Step) -> String {
    format!("{}.{}", step.interface, step.step)
}

/// Whether a reported step is `step` (Ironic compares `interface` and `step` only).
pub fn same_step(step: &Step, reported: Option<&Value>) -> bool {
    let Some(Value::Object(reported)) = reported else {
        return false;
    };
    reported.get("interface").and_then(Value::as_str) == Some(step.interface.as_str())
        && reported.get("step").and_then(Value::as_str) == Some(step.step.as_str())
}

/// What the agent's command list says about the step the conductor waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentStepStatus {
    /// No command, or only `get_<kind>_steps`: the agent has no record of the step (it
    /// was restarted).
    Restarted,
    /// Another command is the last one, or the last SUCCEEDED result is for another step:
    /// wait for the next heartbeat.
    Waiting(String),
    /// The step is still running; its `command_result.progress`, if any.
    Running(Option<DeployProgress>),
    /// The step finished; the whole command result (hooks read `<kind>_result`).
    Succeeded(Box<CommandResult>),
    /// The step failed with this error text.
    Failed(String),
    /// The agent's hardware managers changed since the steps were fetched.
    VersionMismatch(String),
    /// A status the conductor does not know.
    Unknown,
}

/// Judges the agent's command list (`GET /v1/commands/`, oldest first) for `step`.
pub fn judge(kind: StepKind, commands: &[CommandResult], step: &Step) -> AgentStepStatus {
    let restarted = commands
        .iter()
        .all(|c| c.command_name == kind.get_steps_name());
    let Some(last) = commands.last().filter(|_| !restarted) else {
        return AgentStepStatus::Restarted;
    };
    if last.command_name != kind.execute_name() {
        return AgentStepStatus::Waiting(format!(
            "the agent's last command is {}",
            last.command_name
        ));
    }
    let result = last.command_result.as_ref();
    match last.command_status {
        CommandStatus::Running => AgentStepStatus::Running(progress_of(last)),
        CommandStatus::Succeeded => {
            let reported = result.and_then(|r| r.get(kind.step_key()));
            if same_step(step, reported) {
                AgentStepStatus::Succeeded(Box::new(last.clone()))
            } else {
                AgentStepStatus::Waiting(format!(
                    "the agent's last result is for another step: {}",
                    reported.map_or_else(|| "none".to_string(), Value::to_string)
                ))
            }
        }
        CommandStatus::Failed => {
            AgentStepStatus::Failed(command_error_text(last.command_error.as_ref()))
        }
        CommandStatus::CleanVersionMismatch | CommandStatus::VersionMismatch => {
            AgentStepStatus::VersionMismatch(command_error_text(last.command_error.as_ref()))
        }
        CommandStatus::Unknown => AgentStepStatus::Unknown,
    }
}

/// The `command_result.progress` of a command, if it has a readable one.
fn progress_of(command: &CommandResult) -> Option<DeployProgress> {
    #[derive(Deserialize)]
    struct WithProgress {
        #[serde(default)]
        progress: Option<DeployProgress>,
    }
    command
        .command_result
        .as_ref()
        .and_then(|v| WithProgress::deserialize(v).ok())
        .and_then(|w| w.progress)
}

/// The progress of a running `execute_<kind>_step`, if it is the agent's last command.
pub fn running_progress(kind: StepKind, commands: &[CommandResult]) -> Option<DeployProgress> {
    let last = commands.last()?;
    if last.command_name != kind.execute_name() || last.command_status != CommandStatus::Running {
        return None;
    }
    progress_of(last)
}

/// `execute_<kind>_step` params: `step`, `node`, `ports`, `<kind>_version`.
#[derive(Debug, Serialize)]
struct ExecuteStepParams<'a> {
    step: Value,
    node: AgentNodeDict,
    ports: Vec<AgentPortDict>,
    #[serde(flatten)]
    version: BTreeMap<&'static str, Option<&'a BTreeMap<String, Value>>>,
}

/// Sends `<kind>.execute_<kind>_step` (wait=false) for `step` (the JSON the agent gets) with
/// `node` (already built as the operation needs it), `ports` and the cached
/// `hardware_manager_version` of `versions_of`.
pub(crate) async fn send_step(
    client: &AgentClient,
    kind: StepKind,
    step: Value,
    node: AgentNodeDict,
    ports: &[Port],
    versions_of: &Node,
) -> Result<CommandResult, AgentClientError> {
    let versions = versions_of
        .driver_internal_info
        .hardware_manager_version
        .as_ref();
    let params = ExecuteStepParams {
        step,
        node,
        ports: ports.iter().map(AgentPortDict::new).collect(),
        version: BTreeMap::from([(kind.version_key(), versions)]),
    };
    client.execute(kind.execute_command(), &params, false).await
}

/// Whether the agent's last command is `standby.power_off` (sent before a shim restart).
pub(crate) async fn power_off_sent(client: &AgentClient, uuid: Uuid) -> Result<bool, Stop> {
    let commands = client.commands().await.map_err(agent_error(format!(
        "Failed to get the command status of the agent of node {uuid}"
    )))?;
    Ok(commands
        .last()
        .is_some_and(|c| c.command_name == "power_off"))
}

/// `standby.power_off` (wait=false): the agent powers the machine off.
pub(crate) async fn power_off(client: &AgentClient, uuid: Uuid) -> Result<(), Stop> {
    let result = client
        .execute("standby.power_off", &json!({}), false)
        .await
        .map_err(agent_error(format!("Failed to soft power off node {uuid}")))?;
    if result.command_status == CommandStatus::Failed {
        return Err(Stop::Failed(format!(
            "Failed to soft power off node {uuid}: {}",
            command_error_text(result.command_error.as_ref())
        )));
    }
    Ok(())
}

/// Reads node `uuid`.
pub(crate) async fn load_node(store: &SharedStore, uuid: Uuid) -> Result<Node, Stop> {
    store
        .run(move |s| {
            s.node_by_uuid(uuid)?
                .ok_or_else(|| StoreError::NodeNotFound(uuid.to_string()))
        })
        .await
        .map_err(Stop::Store)
}

/// Changes node `uuid` in one transaction; `f` may refuse with a [`Stop`] (nothing is
/// written then). Returns the node as written.
pub(crate) async fn update_node<F>(store: &SharedStore, uuid: Uuid, f: F) -> Result<Node, Stop>
where
    F: FnOnce(&mut Node) -> Result<(), Stop> + Send + 'static,
{
    store
        .run(move |s| {
            s.update_node(uuid, |n| {
                f(n)?;
                Ok::<_, Stop>(n.clone())
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JsonMap;

    fn step(interface: &str, name: &str) -> Step {
        Step::new(interface, name, 99)
    }

    fn command(name: &str, status: CommandStatus, result: Value) -> CommandResult {
        CommandResult {
            id: "1".into(),
            command_name: name.into(),
            command_status: status,
            command_error: None,
            command_result: Some(result),
        }
    }

    #[test]
    fn judges_the_last_command_only() {
        use AgentStepStatus as A;
        use CommandStatus as C;
        let kind = StepKind::Clean;
        let s = step("deploy", "erase_devices_metadata");
        assert_eq!(judge(kind, &[], &s), A::Restarted);
        let steps = command("get_clean_steps", C::Succeeded, json!({}));
        assert_eq!(judge(kind, std::slice::from_ref(&steps), &s), A::Restarted);
        let other = command("get_hardware_info", C::Succeeded, json!({}));
        assert!(matches!(
            judge(kind, &[steps.clone(), other], &s),
            A::Waiting(_)
        ));
        let running = command(
            "execute_clean_step",
            C::Running,
            json!({"progress": {"stage": "wiping", "bytes_written": 5}}),
        );
        let A::Running(Some(p)) = judge(kind, &[steps.clone(), running.clone()], &s) else {
            panic!("not running")
        };
        assert_eq!(p.stage.as_deref(), Some("wiping"));
        assert_eq!(
            running_progress(kind, &[running]).unwrap().bytes_written,
            Some(5)
        );
        let done_other = command(
            "execute_clean_step",
            C::Succeeded,
            json!({"clean_result": null, "clean_step": {"interface": "deploy", "step": "erase_devices"}}),
        );
        assert!(matches!(judge(kind, &[done_other], &s), A::Waiting(_)));
        let done = command(
            "execute_clean_step",
            C::Succeeded,
            json!({"clean_result": null, "clean_step": {"interface": "deploy", "step": "erase_devices_metadata"}}),
        );
        assert!(matches!(
            judge(kind, std::slice::from_ref(&done), &s),
            A::Succeeded(_)
        ));
        assert!(
            matches!(judge(StepKind::Deploy, &[done], &s), A::Waiting(_)),
            "a clean result is no deploy result"
        );
        let mut failed = command("execute_clean_step", C::Failed, Value::Null);
        failed.command_error = Some(CommandError {
            kind: Some("BlockDeviceEraseError".into()),
            code: Some(500),
            message: Some("Clean step failed".into()),
            details: Some("wipefs failed".into()),
            extra: JsonMap::new(),
        });
        assert_eq!(
            judge(kind, &[failed], &s),
            A::Failed("wipefs failed".into())
        );
        let mismatch = command("execute_clean_step", C::CleanVersionMismatch, Value::Null);
        assert!(matches!(
            judge(kind, &[mismatch], &s),
            A::VersionMismatch(_)
        ));
        let odd = command("execute_clean_step", C::Unknown, Value::Null);
        assert_eq!(judge(kind, &[odd], &s), A::Unknown);
    }

    #[test]
    fn a_sent_step_is_found_after_the_commands_seen_before_it() {
        use CommandStatus as C;
        use runner::{received_step, sent_step_bound};
        let kind = StepKind::Deploy;
        let steps = command("get_deploy_steps", C::Succeeded, json!({}));
        let done = command(
            "execute_deploy_step",
            C::Succeeded,
            json!({"deploy_step": {"interface": "deploy", "step": "write_image"}}),
        );
        let uuids = command("get_partition_uuids", C::Succeeded, json!({}));
        let running = command("execute_deploy_step", C::Running, json!({}));

        // Counted before sending: only what comes after counts, whatever its status.
        let before = [steps.clone(), done.clone(), uuids.clone()];
        assert_eq!(sent_step_bound(kind, &before, Some(3), 2), Some(3));
        assert!(
            !received_step(kind, &before, 3),
            "an earlier step is not this one"
        );
        let after = [steps.clone(), done.clone(), uuids, running.clone()];
        assert!(received_step(kind, &after, 3));
        // A restarted agent lists fewer commands than counted: not received.
        assert!(!received_step(kind, std::slice::from_ref(&steps), 3));
        // A clean step is no deploy step.
        let clean = command("execute_clean_step", C::Running, json!({}));
        assert!(!received_step(kind, &[steps.clone(), clean], 1));

        // No count (a clean plan's first step): after the get_*_steps the plan came from.
        let old = [done.clone(), steps.clone()];
        assert_eq!(sent_step_bound(kind, &old, None, 0), Some(2));
        assert!(
            !received_step(kind, &old, 2),
            "the old deploy's step is not this one"
        );
        let sent = [done, steps.clone(), running];
        assert!(received_step(kind, &sent, 2));
        // Later steps without a count, or no get_*_steps at all: unknown.
        assert_eq!(sent_step_bound(kind, &sent, None, 1), None);
        assert_eq!(sent_step_bound(StepKind::Clean, &sent, None, 0), None);
    }

    #[test]
    fn steps_compare_by_interface_and_name() {
        let s = step("deploy", "write_image");
        assert!(same_step(
            &s,
            Some(&json!({"interface": "deploy", "step": "write_image", "args": {}}))
        ));
        assert!(!same_step(
            &s,
            Some(&json!({"interface": "raid", "step": "write_image"}))
        ));
        assert!(!same_step(&s, None));
        assert_eq!(step_id(&s), "deploy.write_image");
    }

    #[test]
    fn failures_take_context() {
        let stop = Stop::Failed("boom".into()).context("Node x failed");
        assert_eq!(stop.to_string(), "Node x failed: boom");
        assert!(matches!(
            Stop::Busy("b".into()).context("ignored"),
            Stop::Busy(_)
        ));
    }
}
