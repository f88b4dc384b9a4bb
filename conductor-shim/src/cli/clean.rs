//! `clean NODE --step ...` and `node provide NODE`: store the cleaning request and follow the
//! cleaning (driven by `serve` on the agent's heartbeats) with a line per step on stderr
//! until the node is `manageable` / `available` or `clean failed`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use uuid::Uuid;

use super::output::key_values;
use super::progress::{self, ProgressBar, Snapshot};
use super::view::NodeView;
use super::{CleanArgs, Cli, ProvideArgs, WaitArgs};
use crate::clean::is_manual;
use crate::clean::request::{request_clean, request_provide};
use crate::model::{CleanPhase, Node};
use crate::state::ProvisionState;
use crate::store::Store;

/// How often the display is refreshed.
const REFRESH: Duration = Duration::from_millis(250);

pub(super) fn run_clean(cli: &Cli, args: &CleanArgs) -> Result<()> {
    let mut store = cli.open_store()?;
    let node = request_clean(&mut store, &args.node, &args.steps)
        .with_context(|| format!("requesting manual cleaning of node {}", args.node))?;
    wait(cli, &store, node, &args.wait)
}

pub(super) fn run_provide(cli: &Cli, args: &ProvideArgs) -> Result<()> {
    let mut store = cli.open_store()?;
    let node = request_provide(&mut store, &args.node)
        .with_context(|| format!("providing node {}", args.node))?;
    wait(cli, &store, node, &args.wait)
}

/// Prints the request (`--no-wait`) or follows the cleaning and prints the outcome.
fn wait(cli: &Cli, store: &Store, node: Node, args: &WaitArgs) -> Result<()> {
    let kind = if is_manual(&node) {
        "Manual cleaning"
    } else {
        "Automated cleaning"
    };
    if args.no_wait {
        if cli.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&NodeView::load(store, node)?)?
            );
        } else {
            println!(
                "{kind} of node {} requested: {} (the agent's next heartbeat starts it)",
                node.uuid, node.provision_state
            );
        }
        return Ok(());
    }
    let goal = if is_manual(&node) {
        ProvisionState::Manageable
    } else {
        ProvisionState::Available
    };
    let outcome = follow(store, node.uuid, goal, args);
    let node = store.get_node(&node.uuid.to_string())?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&NodeView::load(store, node.clone())?)?
        );
    } else if outcome.is_ok() {
        print!("{}", key_values(&summary(&node)));
    }
    outcome
}

/// `deploy.erase_devices (1/2)`: the current step and its position.
fn step_text(node: &Node) -> Option<String> {
    let dii = &node.driver_internal_info;
    let steps = dii.clean_steps.as_deref();
    let step = node.clean_step.as_ref()?;
    Some(progress::step_text(step, dii.clean_step_index, steps))
}

/// Waits until cleaning ends, one line per change on stderr; an error for a failed or
/// timed-out cleaning.
fn follow(store: &Store, uuid: Uuid, goal: ProvisionState, args: &WaitArgs) -> Result<()> {
    let stderr = std::io::stderr();
    let tty = stderr.is_terminal();
    let mut bar = ProgressBar::new(stderr, tty);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let node = store
            .get_node(&uuid.to_string())
            .with_context(|| format!("reading node {uuid}"))?;
        let dii = &node.driver_internal_info;
        let snapshot = Snapshot {
            state: node.provision_state,
            phase: dii.clean_phase.map(Into::into),
            step: step_text(&node),
            progress: dii.clean_progress.clone(),
        };
        bar.update(&snapshot);
        match (node.provision_state, dii.clean_phase) {
            (state, Some(CleanPhase::Done)) if state == goal => {
                bar.finish();
                return Ok(());
            }
            (ProvisionState::CleanFailed, _) => {
                bar.finish();
                bail!(
                    "cleaning of node {uuid} failed: {}",
                    node.last_error.as_deref().unwrap_or("no error recorded")
                );
            }
            (ProvisionState::CleanWait | ProvisionState::Cleaning, Some(phase))
                if phase.in_progress() => {}
            (other, _) => {
                bar.finish();
                bail!("node {uuid} left cleaning: it is now {other}");
            }
        }
        if Instant::now() >= deadline {
            bar.finish();
            bail!(
                "timed out after {} s waiting for the cleaning of node {uuid} (still {}, phase \
                 {}); cleaning goes on in the shim",
                args.timeout,
                node.provision_state,
                dii.clean_phase.map_or("-", CleanPhase::as_str)
            );
        }
        std::thread::sleep(REFRESH);
    }
}

/// The lines printed after successful cleaning.
fn summary(node: &Node) -> Vec<(String, String)> {
    let mut lines = vec![
        ("node".to_string(), node.uuid.to_string()),
        (
            "provision_state".to_string(),
            node.provision_state.to_string(),
        ),
    ];
    if !node.raid_config.is_empty() {
        lines.push((
            "raid_config".to_string(),
            serde_json::to_string(&node.raid_config).unwrap_or_default(),
        ));
    }
    lines
}
