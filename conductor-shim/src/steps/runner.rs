//! The heartbeat-driven step runner shared by deploys ([`crate::deploy`]) and cleaning
//! ([`crate::clean`]): what each heartbeat does with the operation's phase, how the steps of
//! the plan are sent one after the other, how the agent's answer is judged, and how a busy
//! agent, a failure or a concurrent change ends the heartbeat's work. A [`Flow`] adds only
//! what differs: how the operation starts and ends, where it keeps its state in the node,
//! the steps the conductor runs itself, what a finished step leaves behind and Ironic's
//! wording of its errors.

use std::future::Future;

use serde_json::Value;
use uuid::Uuid;

use super::{AgentStepStatus, StepKind, Stop, agent_error, command_error_text, step_id};
use crate::agent_client::{AgentClient, AgentClientOptions, CommandResult, CommandStatus};
use crate::model::{CleanPhase, DeployPhase, DeployProgress, Node, Port, Step};
use crate::node_dict::AgentNodeDict;
use crate::ramdisk_logs::RamdiskLogs;
use crate::state::ProvisionState;
use crate::store::SharedStore;

/// The phases of a step-driven operation ([`DeployPhase`], [`CleanPhase`]), and where the
/// operation keeps its progress in a node.
pub(crate) trait Phase: Copy + PartialEq + Send + 'static {
    /// The kind of steps the operation runs.
    const KIND: StepKind;
    /// Requested by the CLI; starts on the agent's next heartbeat.
    const REQUESTED: Self;
    /// The conductor is starting the current step.
    const STEP_RUNNING: Self;
    /// The agent runs the current step; its result is checked on each heartbeat.
    const AGENT_STEP: Self;
    /// `standby.power_off` is being sent.
    const POWER_OFF: Self;
    /// Finished.
    const DONE: Self;
    /// Failed (see `last_error`).
    const FAILED: Self;

    /// Whether the operation still needs work in this phase.
    fn in_progress(self) -> bool;
    /// The node's phase of the operation.
    fn of(node: &Node) -> Option<Self>;
    /// Where the node keeps the operation's progress.
    fn tracking(node: &mut Node) -> Tracking<'_, Self>;
}

impl Phase for DeployPhase {
    const KIND: StepKind = StepKind::Deploy;
    const REQUESTED: Self = DeployPhase::Requested;
    const STEP_RUNNING: Self = DeployPhase::StepRunning;
    const AGENT_STEP: Self = DeployPhase::AgentStep;
    const POWER_OFF: Self = DeployPhase::PowerOff;
    const DONE: Self = DeployPhase::Done;
    const FAILED: Self = DeployPhase::Failed;

    fn in_progress(self) -> bool {
        DeployPhase::in_progress(self)
    }

    fn of(node: &Node) -> Option<Self> {
        node.driver_internal_info.deploy_phase
    }

    fn tracking(n: &mut Node) -> Tracking<'_, Self> {
        let dii = &mut n.driver_internal_info;
        Tracking {
            phase: &mut dii.deploy_phase,
            steps: &mut dii.deploy_steps,
            index: &mut dii.deploy_step_index,
            step: &mut dii.deploy_step,
            progress: &mut dii.deploy_progress,
            seen: &mut dii.agent_commands_seen,
        }
    }
}

impl Phase for CleanPhase {
    const KIND: StepKind = StepKind::Clean;
    const REQUESTED: Self = CleanPhase::Requested;
    const STEP_RUNNING: Self = CleanPhase::StepRunning;
    const AGENT_STEP: Self = CleanPhase::AgentStep;
    const POWER_OFF: Self = CleanPhase::PowerOff;
    const DONE: Self = CleanPhase::Done;
    const FAILED: Self = CleanPhase::Failed;

    fn in_progress(self) -> bool {
        CleanPhase::in_progress(self)
    }

    fn of(node: &Node) -> Option<Self> {
        node.driver_internal_info.clean_phase
    }

    fn tracking(n: &mut Node) -> Tracking<'_, Self> {
        let dii = &mut n.driver_internal_info;
        Tracking {
            phase: &mut dii.clean_phase,
            steps: &mut dii.clean_steps,
            index: &mut dii.clean_step_index,
            step: &mut n.clean_step,
            progress: &mut dii.clean_progress,
            seen: &mut dii.agent_commands_seen,
        }
    }
}

/// Where an operation keeps its progress in a node.
pub(crate) struct Tracking<'a, P> {
    /// `<kind>_phase`.
    pub phase: &'a mut Option<P>,
    /// The plan (`<kind>_steps`).
    pub steps: &'a mut Option<Vec<Step>>,
    /// Index into the plan of the current step (`<kind>_step_index`).
    pub index: &'a mut Option<usize>,
    /// The current step (`<kind>_step`).
    pub step: &'a mut Option<Step>,
    /// The agent's progress of the running step (`<kind>_progress`).
    pub progress: &'a mut Option<DeployProgress>,
    /// The agent's command count when last looked at (`agent_commands_seen`).
    pub seen: &'a mut Option<usize>,
}

/// The node's agent as a heartbeat reaches it: the client and the node's ports (sent with
/// every step).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Agent<'a> {
    /// The agent's client.
    pub client: &'a AgentClient,
    /// The node's ports.
    pub ports: &'a [Port],
}

/// The store and agent settings an operation works with.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    /// The node store.
    pub store: SharedStore,
    /// How agents are reached.
    pub agent: AgentClientOptions,
    /// When the agent's logs are collected and where they are kept.
    pub logs: RamdiskLogs,
}

impl Runner {
    /// A runner working on `store`, reaching agents with `agent`, collecting no logs.
    pub(crate) fn new(store: SharedStore, agent: AgentClientOptions) -> Runner {
        Runner {
            store,
            agent,
            logs: RamdiskLogs::default(),
        }
    }

    /// Collects the agent's logs of `node` if `logs` wants them (`failed`: after a failure),
    /// labelled as Ironic does (none for deploys, `cleaning`, `service`).
    pub(crate) async fn collect_logs(&self, kind: StepKind, node: &Node, failed: bool) {
        let label = match kind {
            StepKind::Deploy => None,
            StepKind::Clean => Some("cleaning"),
            StepKind::Service => Some("service"),
        };
        self.logs
            .collect_logged(node, &self.agent, label, failed)
            .await;
    }

    /// Reads node `uuid`.
    pub(crate) async fn load(&self, uuid: Uuid) -> Result<Node, Stop> {
        super::load_node(&self.store, uuid).await
    }

    /// Changes node `uuid` in one transaction; `f` may refuse with a [`Stop`]. Returns the
    /// node as written.
    pub(crate) async fn update<F>(&self, uuid: Uuid, f: F) -> Result<Node, Stop>
    where
        F: FnOnce(&mut Node) -> Result<(), Stop> + Send + 'static,
    {
        super::update_node(&self.store, uuid, f).await
    }

    /// `get_<kind>_steps` from `agent`, cached in the node (see
    /// [`super::refresh::refresh_steps`]).
    pub(crate) async fn refresh(
        &self,
        kind: StepKind,
        node: &Node,
        agent: Agent<'_>,
    ) -> Result<usize, Stop> {
        super::refresh::refresh_steps(&self.store, agent.client, kind, node, agent.ports).await
    }

    /// [`Runner::update`] for a change that cannot refuse.
    pub(crate) async fn set<F>(&self, uuid: Uuid, f: F) -> Result<(), Stop>
    where
        F: FnOnce(&mut Node) + Send + 'static,
    {
        self.update(uuid, |n| {
            f(n);
            Ok(())
        })
        .await
        .map(|_| ())
    }
}

/// What one step-driven operation adds to the shared runner.
pub(crate) trait Flow: Sync + 'static {
    /// The operation's phases.
    type Phase: Phase;
    /// The state a request must be in to start; `None`: either state of the operation.
    const START_STATE: Option<ProvisionState> = None;

    /// The store and agent settings.
    fn runner(&self) -> &Runner;
    /// What failing clears besides the phase, the current step and the progress.
    fn clear_on_failure(_node: &mut Node) {}

    /// Phase `requested`: prepares the plan and hands it to [`start_plan`].
    fn start(&self, node: Node, agent: Agent<'_>) -> impl Future<Output = Result<(), Stop>> + Send;

    /// Runs `step` in the conductor if it is one of the conductor's own steps: `false` for
    /// a step the agent runs.
    fn run_conductor_step(
        &self,
        node: &Node,
        step: &Step,
        client: &AgentClient,
    ) -> impl Future<Output = Result<bool, Stop>> + Send;

    /// Whether the agent runs `step` (`false`: [`Flow::run_conductor_step`] runs it).
    fn is_agent_step(_step: &Step) -> bool {
        true
    }

    /// The `step` and `node` params of `execute_<kind>_step` for `step`.
    fn agent_call(&self, node: &Node, step: &Step) -> Result<(Value, AgentNodeDict), Stop>;

    /// What a failure to send `step` to the agent is prefixed with.
    fn send_failed_context(uuid: Uuid, step: &Step) -> String;

    /// The `last_error` of a step the agent reports as failed.
    fn step_failed_message(uuid: Uuid, step: &Step, error: &str) -> String;

    /// The `last_error` of a step with a status the conductor does not know.
    fn unknown_status_message(uuid: Uuid, step: &Step) -> String;

    /// What a step the agent finished leaves behind (before the next step).
    fn step_done(
        &self,
        uuid: Uuid,
        step: &Step,
        done: CommandResult,
    ) -> impl Future<Output = Result<(), Stop>> + Send;

    /// The agent's hardware managers changed since the steps were fetched (`error`): fetch
    /// them again and restart the step or the plan.
    fn restart(
        &self,
        node: Node,
        agent: Agent<'_>,
        error: String,
    ) -> impl Future<Output = Result<(), Stop>> + Send;

    /// All steps are done.
    fn finish(
        &self,
        node: Node,
        client: &AgentClient,
    ) -> impl Future<Output = Result<(), Stop>> + Send;
}

/// Whether `node` has an operation of this flow that a heartbeat should advance.
pub(crate) fn wants_heartbeat<F: Flow>(node: &Node) -> bool {
    let kind = F::Phase::KIND;
    [kind.wait_state(), kind.working_state()].contains(&node.provision_state)
        && F::Phase::of(node).is_some_and(Phase::in_progress)
}

/// Advances the operation of `node` after an accepted heartbeat. The caller holds the
/// node's lock.
pub(crate) async fn on_heartbeat<F: Flow>(flow: &F, node: Node, ports: Vec<Port>) {
    let uuid = node.uuid;
    let before = node.clone();
    match advance(flow, node, &ports).await {
        Ok(()) => {}
        Err(Stop::Busy(why)) => {
            tracing::info!(node = %uuid, %why, "agent busy; {} continues on the next heartbeat", F::Phase::KIND.noun_phrase());
            if let Err(e) = back_to_wait(flow, uuid).await {
                tracing::error!(node = %uuid, error = %e, "cannot record the busy agent");
            }
        }
        Err(Stop::Conflict(why)) => {
            tracing::warn!(node = %uuid, %why, "node changed during heartbeat processing; stopped");
        }
        Err(Stop::Failed(message)) => {
            tracing::error!(node = %uuid, "{} failed: {message}", F::Phase::KIND.noun());
            // As Ironic: the ramdisk's logs first (deploy_logs_collect), then the failed state.
            flow.runner()
                .collect_logs(F::Phase::KIND, &before, true)
                .await;
            fail(flow, uuid, message).await;
        }
        Err(Stop::Store(e)) => {
            tracing::error!(node = %uuid, error = %e, "store failure during {}", F::Phase::KIND.noun_phrase());
            fail(
                flow,
                uuid,
                format!("Internal error of the conductor shim: {e}"),
            )
            .await;
        }
    }
}

async fn advance<F: Flow>(flow: &F, node: Node, ports: &[Port]) -> Result<(), Stop> {
    let client = AgentClient::for_node(&node, &flow.runner().agent).map_err(agent_error(
        format!("Cannot reach the agent of node {}", node.uuid),
    ))?;
    let agent = Agent {
        client: &client,
        ports,
    };
    let kind = F::Phase::KIND;
    let state = node.provision_state;
    if state != kind.wait_state() && state != kind.working_state() {
        return Ok(());
    }
    match F::Phase::of(&node) {
        Some(p) if p == F::Phase::REQUESTED => {
            if F::START_STATE.is_none_or(|s| s == state) {
                flow.start(node, agent).await
            } else {
                Ok(())
            }
        }
        Some(p) if p == F::Phase::AGENT_STEP => check_agent_step(flow, node, agent).await,
        Some(p) if p == F::Phase::STEP_RUNNING && sent_before::<F>(&node, agent).await? => {
            adopt_sent_step(flow, node.uuid, agent).await
        }
        Some(p) if p.in_progress() => {
            let uuid = node.uuid;
            flow.runner()
                .update(uuid, move |n| {
                    if !wants_heartbeat::<F>(n) {
                        return Err(Stop::Conflict(format!(
                            "{} was reset",
                            F::Phase::KIND.noun_phrase()
                        )));
                    }
                    n.provision_state = kind.working_state();
                    Ok(())
                })
                .await?;
            continue_steps(flow, uuid, agent).await
        }
        _ => Ok(()),
    }
}

/// Refuses with a conflict unless the node still has the request to start.
pub(crate) fn check_requested<F: Flow>(n: &Node) -> Result<(), Stop> {
    let requested = F::Phase::of(n) == Some(F::Phase::REQUESTED)
        && F::START_STATE.is_none_or(|s| s == n.provision_state);
    if requested {
        Ok(())
    } else {
        Err(Stop::Conflict(format!(
            "the {} request changed",
            F::Phase::KIND.noun()
        )))
    }
}

/// Stores a fresh plan: the steps, index 0, the first step current (phase `step_running`,
/// the operation's working state).
pub(crate) fn set_plan<F: Flow>(n: &mut Node, planned: Vec<Step>) {
    let t = F::Phase::tracking(n);
    *t.step = planned.first().cloned();
    *t.index = Some(0);
    *t.steps = Some(planned);
    *t.phase = Some(F::Phase::STEP_RUNNING);
    *t.progress = None;
    *t.seen = None;
    n.provision_state = F::Phase::KIND.working_state();
}

/// The end of a successful operation: phase `done`, no plan, no current step, no progress,
/// no error, no cached steps.
pub(crate) fn set_done<F: Flow>(n: &mut Node) {
    n.last_error = None;
    let t = F::Phase::tracking(n);
    *t.phase = Some(F::Phase::DONE);
    *t.steps = None;
    *t.index = None;
    *t.step = None;
    *t.progress = None;
    F::Phase::KIND.clear_cached(&mut n.driver_internal_info);
}

/// Stores the plan of a request that is still there (with `also` changing the node in the
/// same transaction), then runs its steps.
pub(crate) async fn start_plan<F: Flow>(
    flow: &F,
    uuid: Uuid,
    planned: Vec<Step>,
    also: impl FnOnce(&mut Node) + Send + 'static,
    agent: Agent<'_>,
) -> Result<(), Stop> {
    flow.runner()
        .update(uuid, move |n| {
            check_requested::<F>(n)?;
            set_plan::<F>(n, planned);
            also(n);
            Ok(())
        })
        .await?;
    continue_steps(flow, uuid, agent).await
}

/// Runs the plan from the current step until one waits for the agent or all are done.
pub(crate) async fn continue_steps<F: Flow>(
    flow: &F,
    uuid: Uuid,
    agent: Agent<'_>,
) -> Result<(), Stop> {
    let working = F::Phase::KIND.working_state();
    loop {
        let mut node = flow.runner().load(uuid).await?;
        if node.provision_state != working {
            return Err(Stop::Conflict(format!(
                "expected {working}, found {}",
                node.provision_state
            )));
        }
        let t = F::Phase::tracking(&mut node);
        let index = t.index.unwrap_or(0);
        let Some(step) = t.steps.as_ref().and_then(|s| s.get(index)).cloned() else {
            if F::Phase::KIND != StepKind::Deploy {
                flow.runner()
                    .collect_logs(F::Phase::KIND, &node, false)
                    .await;
            }
            return flow.finish(node, agent.client).await;
        };
        if step.step == "tear_down_agent" {
            // Ironic's tear_down_agent collects with deploy_logs_collect=always.
            flow.runner()
                .collect_logs(F::Phase::KIND, &node, false)
                .await;
        }
        tracing::info!(node = %uuid, step = %step_id(&step), index, "{} step", F::Phase::KIND.as_str());
        if !flow.run_conductor_step(&node, &step, agent.client).await? {
            return send_agent_step(flow, node, &step, agent).await;
        }
        next_step(flow, uuid, index).await?;
    }
}

/// `serde_json::to_value(step)`, failing the operation if it cannot be encoded.
pub(crate) fn encode_step(kind: StepKind, step: &Step) -> Result<Value, Stop> {
    serde_json::to_value(step).map_err(|e| {
        Stop::Failed(format!(
            "Cannot encode {} step {}: {e}",
            kind.as_str(),
            step_id(step)
        ))
    })
}

/// Sends `execute_<kind>_step` for `step` and waits for the agent (phase `agent_step`, the
/// operation's wait state).
async fn send_agent_step<F: Flow>(
    flow: &F,
    node: Node,
    step: &Step,
    agent: Agent<'_>,
) -> Result<(), Stop> {
    let uuid = node.uuid;
    let (call, dict) = flow.agent_call(&node, step)?;
    let result = super::send_step(agent.client, F::Phase::KIND, call, dict, agent.ports, &node)
        .await
        .map_err(agent_error(F::send_failed_context(uuid, step)))?;
    if result.command_status == CommandStatus::Failed {
        return Err(Stop::Failed(F::step_failed_message(
            uuid,
            step,
            &command_error_text(result.command_error.as_ref()),
        )));
    }
    flow.runner()
        .set(uuid, |n| {
            let t = F::Phase::tracking(n);
            *t.phase = Some(F::Phase::AGENT_STEP);
            *t.progress = None;
            n.provision_state = F::Phase::KIND.wait_state();
        })
        .await
}

/// Phase `agent_step`: looks at the agent's last command.
async fn check_agent_step<F: Flow>(flow: &F, mut node: Node, agent: Agent<'_>) -> Result<(), Stop> {
    let uuid = node.uuid;
    let kind = F::Phase::KIND.as_str();
    let t = F::Phase::tracking(&mut node);
    let index = t.index.unwrap_or(0);
    let Some(step) = t.step.clone() else {
        return Err(Stop::Failed(format!(
            "Node {uuid} waits for a {kind} step but has no current {kind}_step"
        )));
    };
    let id = step_id(&step);
    let commands = agent.client.commands().await.map_err(agent_error(format!(
        "Failed to get the command status of the agent of node {uuid} while waiting for \
         {kind} step {id}"
    )))?;
    let status = super::judge(F::Phase::KIND, &commands, &step);
    if matches!(
        status,
        AgentStepStatus::Restarted
            | AgentStepStatus::Succeeded(_)
            | AgentStepStatus::VersionMismatch(_)
    ) {
        // A step is sent next: it will come after these commands.
        let count = commands.len();
        flow.runner()
            .set(uuid, move |n| *F::Phase::tracking(n).seen = Some(count))
            .await?;
    }
    match status {
        AgentStepStatus::Restarted => {
            tracing::warn!(node = %uuid, step = %id,
                "the agent has no record of the {kind} step (restarted?); sending it again");
            rerun_step(flow, uuid, agent).await
        }
        AgentStepStatus::Waiting(why) => {
            tracing::info!(node = %uuid, step = %id, %why, "waiting");
            Ok(())
        }
        AgentStepStatus::Running(progress) => {
            if let Some(progress) = progress {
                flow.runner()
                    .set(uuid, move |n| {
                        let t = F::Phase::tracking(n);
                        if *t.phase == Some(F::Phase::AGENT_STEP) {
                            *t.progress = Some(progress);
                        }
                    })
                    .await?;
            }
            Ok(())
        }
        AgentStepStatus::Succeeded(done) => {
            tracing::info!(node = %uuid, step = %id, "{kind} step finished on the agent");
            flow.step_done(uuid, &step, *done).await?;
            next_step(flow, uuid, index).await?;
            continue_steps(flow, uuid, agent).await
        }
        AgentStepStatus::Failed(error) => {
            Err(Stop::Failed(F::step_failed_message(uuid, &step, &error)))
        }
        AgentStepStatus::VersionMismatch(error) => flow.restart(node, agent, error).await,
        AgentStepStatus::Unknown => Err(Stop::Failed(F::unknown_status_message(uuid, &step))),
    }
}

/// Where the agent lists the current step if it received it: after the `seen` commands the
/// conductor saw before sending it, or, for the first step of a plan (no count yet), after
/// the `get_<kind>_steps` the plan was made from. `None`: unknown.
pub(crate) fn sent_step_bound(
    kind: StepKind,
    commands: &[CommandResult],
    seen: Option<usize>,
    index: usize,
) -> Option<usize> {
    match seen {
        Some(count) => Some(count),
        None if index == 0 => commands
            .iter()
            .rposition(|c| c.command_name == kind.get_steps_name())
            .map(|at| at + 1),
        None => None,
    }
}

/// Whether the agent lists an `execute_<kind>_step` from `bound` on: the current step, which
/// the conductor sent before it stopped (or lost the answer).
pub(crate) fn received_step(kind: StepKind, commands: &[CommandResult], bound: usize) -> bool {
    commands
        .get(bound..)
        .is_some_and(|sent| sent.iter().any(|c| c.command_name == kind.execute_name()))
}

/// Phase `step_running` on a heartbeat: the conductor stopped (a restart, a busy agent) after
/// deciding to send the current step. Whether the agent has it already: then sending it
/// again would run it twice (`write_image` writing the disk a second time).
async fn sent_before<F: Flow>(node: &Node, agent: Agent<'_>) -> Result<bool, Stop> {
    let mut node = node.clone();
    let uuid = node.uuid;
    let t = F::Phase::tracking(&mut node);
    let (seen, index) = (*t.seen, t.index.unwrap_or(0));
    let Some(step) = t.steps.as_ref().and_then(|s| s.get(index)) else {
        return Ok(false);
    };
    if !F::is_agent_step(step) {
        return Ok(false);
    }
    let kind = F::Phase::KIND;
    let commands = agent.client.commands().await.map_err(agent_error(format!(
        "Failed to get the command status of the agent of node {uuid}"
    )))?;
    Ok(sent_step_bound(kind, &commands, seen, index)
        .is_some_and(|bound| received_step(kind, &commands, bound)))
}

/// The agent received the current step before the conductor recorded it: wait for it (phase
/// `agent_step`) as if its answer had arrived, and look at it now.
async fn adopt_sent_step<F: Flow>(flow: &F, uuid: Uuid, agent: Agent<'_>) -> Result<(), Stop> {
    let kind = F::Phase::KIND;
    tracing::warn!(node = %uuid,
        "the agent already has the {} step the conductor was sending; not sending it again",
        kind.as_str());
    let node = flow
        .runner()
        .update(uuid, move |n| {
            let t = F::Phase::tracking(n);
            if *t.phase != Some(F::Phase::STEP_RUNNING) {
                return Err(Stop::Conflict(format!(
                    "the {} step changed",
                    kind.as_str()
                )));
            }
            *t.phase = Some(F::Phase::AGENT_STEP);
            *t.progress = None;
            n.provision_state = kind.wait_state();
            Ok(())
        })
        .await?;
    check_agent_step(flow, node, agent).await
}

/// Moves to the step after `index` (phase `step_running`, the operation's working state).
async fn next_step<F: Flow>(flow: &F, uuid: Uuid, index: usize) -> Result<(), Stop> {
    flow.runner()
        .update(uuid, move |n| {
            let t = F::Phase::tracking(n);
            if *t.index != Some(index) {
                return Err(Stop::Conflict(format!(
                    "the {} step index changed",
                    F::Phase::KIND.as_str()
                )));
            }
            *t.index = Some(index + 1);
            *t.step = t.steps.as_ref().and_then(|s| s.get(index + 1)).cloned();
            *t.phase = Some(F::Phase::STEP_RUNNING);
            *t.progress = None;
            n.provision_state = F::Phase::KIND.working_state();
            Ok(())
        })
        .await
        .map(|_| ())
}

/// Sends the current step again.
pub(crate) async fn rerun_step<F: Flow>(
    flow: &F,
    uuid: Uuid,
    agent: Agent<'_>,
) -> Result<(), Stop> {
    flow.runner().set(uuid, rerun_current::<F>).await?;
    continue_steps(flow, uuid, agent).await
}

/// Makes the current step the one to send (phase `step_running`, the working state).
pub(crate) fn rerun_current<F: Flow>(n: &mut Node) {
    let t = F::Phase::tracking(n);
    *t.phase = Some(F::Phase::STEP_RUNNING);
    *t.progress = None;
    n.provision_state = F::Phase::KIND.working_state();
}

/// `standby.power_off`, unless resuming in phase `power_off` after the agent got it. The
/// phase becomes `power_off` first, with `also` in the same transaction; a failure of the
/// command itself is prefixed with `context`, if any.
pub(crate) async fn power_off_once<F: Flow>(
    flow: &F,
    node: &Node,
    client: &AgentClient,
    also: impl FnOnce(&mut Node) + Send + 'static,
    context: Option<String>,
) -> Result<(), Stop> {
    let uuid = node.uuid;
    let resuming = F::Phase::of(node) == Some(F::Phase::POWER_OFF);
    if resuming && super::power_off_sent(client, uuid).await? {
        return Ok(());
    }
    flow.runner()
        .set(uuid, |n| {
            *F::Phase::tracking(n).phase = Some(F::Phase::POWER_OFF);
            also(n);
        })
        .await?;
    super::power_off(client, uuid)
        .await
        .map_err(|e| match context {
            Some(context) => e.context(context),
            None => e,
        })
}

/// The working state ⇒ the wait state (the phase stays): retried on the next heartbeat.
async fn back_to_wait<F: Flow>(flow: &F, uuid: Uuid) -> Result<(), Stop> {
    flow.runner()
        .set(uuid, |n| {
            if n.provision_state == F::Phase::KIND.working_state() {
                n.provision_state = F::Phase::KIND.wait_state();
            }
        })
        .await
}

/// The operation's failed state with `message` as `last_error`.
async fn fail<F: Flow>(flow: &F, uuid: Uuid, message: String) {
    let kind = F::Phase::KIND;
    let written = flow
        .runner()
        .set(uuid, move |n| {
            if [kind.working_state(), kind.wait_state()].contains(&n.provision_state) {
                n.provision_state = kind.failed_state();
            }
            n.last_error = Some(message);
            F::clear_on_failure(n);
            let t = F::Phase::tracking(n);
            *t.phase = Some(F::Phase::FAILED);
            *t.step = None;
            *t.progress = None;
        })
        .await;
    if let Err(e) = written {
        tracing::error!(node = %uuid, error = %e, "cannot record the {} failure", F::Phase::KIND.noun());
    }
}
