//! `deploy NODE --image URL ...`: stores the deploy request and follows the deploy (driven by
//! `serve` on the agent's heartbeats) with a progress bar on stderr until the node is
//! `active` or `deploy failed`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use uuid::Uuid;

use super::output::key_values;
use super::progress::{ProgressBar, Snapshot};
use super::view::NodeView;
use super::{Cli, DeployArgs};
use crate::agent_client::{AgentClient, AgentClientOptions};
use crate::deploy::request::{Checksum, DeployRequest, parse_root_hint, request_deploy};
use crate::deploy::running_progress;
use crate::model::{DeployPhase, JsonMap, Node};
use crate::state::ProvisionState;
use crate::store::Store;

/// How often the display is refreshed.
const REFRESH: Duration = Duration::from_millis(250);

/// Timeout of one progress poll of the agent.
const AGENT_POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds the request from the command line (reads the config drive file).
fn request(args: &DeployArgs) -> Result<DeployRequest> {
    let checksum = match (&args.checksum, &args.checksum_url) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(url)) => Some(Checksum::Legacy(url.clone())),
        (None, None) => None,
    };
    let configdrive = args
        .configdrive
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .with_context(|| format!("reading the config drive {}", path.display()))
        })
        .transpose()?;
    let mut root_device = JsonMap::new();
    for hint in &args.root_hints {
        let (key, value) = parse_root_hint(hint).map_err(|e| anyhow!(e))?;
        root_device.insert(key, value);
    }
    Ok(DeployRequest {
        image_url: args.image.clone(),
        checksum,
        disk_format: args.disk_format.clone(),
        image_type: args.image_type,
        root_mb: args.root_mb,
        swap_mb: args.swap_mb,
        ephemeral_mb: args.ephemeral_mb,
        boot_mode: args.boot_mode,
        disk_label: args.disk_label,
        configdrive,
        root_device,
    })
}

pub(super) fn run(cli: &Cli, args: &DeployArgs) -> Result<()> {
    let request = request(args)?;
    let mut store = cli.open_store()?;
    let node = request_deploy(&mut store, &args.node, &request)
        .with_context(|| format!("requesting a deploy of node {}", args.node))?;
    if args.no_wait {
        if cli.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&NodeView::load(&store, node)?)?
            );
        } else {
            println!(
                "Deploy of node {} requested: {} (the agent's next heartbeat starts it)",
                node.uuid, node.provision_state
            );
        }
        return Ok(());
    }
    let outcome = follow(&store, node.uuid, args);
    let node = store.get_node(&node.uuid.to_string())?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&NodeView::load(&store, node.clone())?)?
        );
    } else if outcome.is_ok() {
        print!("{}", key_values(&summary(&node)));
    }
    outcome
}

/// Waits until the deploy ends, drawing progress; an error for a failed or timed-out deploy.
fn follow(store: &Store, uuid: Uuid, args: &DeployArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stderr = std::io::stderr();
    let tty = stderr.is_terminal();
    let mut bar = ProgressBar::new(stderr, tty);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let options = AgentClientOptions {
        timeout: AGENT_POLL_TIMEOUT,
        max_attempts: 1,
        ..args.agent.options()
    };
    let mut client: Option<(String, AgentClient)> = None;
    loop {
        let node = store
            .get_node(&uuid.to_string())
            .with_context(|| format!("reading node {uuid}"))?;
        let dii = &node.driver_internal_info;
        let snapshot = |progress| Snapshot {
            state: node.provision_state,
            phase: dii.deploy_phase.map(Into::into),
            step: dii
                .deploy_step
                .as_ref()
                .map(|s| format!("{}.{}", s.interface, s.step)),
            progress,
        };
        match node.provision_state {
            ProvisionState::Active => {
                bar.update(&snapshot(None));
                bar.finish();
                return Ok(());
            }
            ProvisionState::DeployFailed => {
                bar.update(&snapshot(None));
                bar.finish();
                bail!(
                    "deploy of node {uuid} failed: {}",
                    node.last_error.as_deref().unwrap_or("no error recorded")
                );
            }
            ProvisionState::DeployWait | ProvisionState::Deploying => {}
            other => {
                bar.finish();
                bail!("node {uuid} left the deploy: it is now {other}");
            }
        }
        let mut progress = dii.deploy_progress.clone();
        if dii.deploy_phase == Some(DeployPhase::AgentStep)
            && let Some(url) = dii.agent_url.clone()
        {
            if client.as_ref().is_none_or(|(u, _)| *u != url) {
                client = AgentClient::for_node(&node, &options)
                    .ok()
                    .map(|c| (url, c));
            }
            if let Some((_, c)) = &client
                && let Ok(commands) = runtime.block_on(c.commands())
                && let Some(live) = running_progress(&commands)
            {
                progress = Some(live);
            }
        }
        bar.update(&snapshot(progress));
        if Instant::now() >= deadline {
            bar.finish();
            bail!(
                "timed out after {} s waiting for the deploy of node {uuid} (still {}, phase {}); \
                 the deploy goes on in the shim",
                args.timeout,
                node.provision_state,
                dii.deploy_phase.map_or("-", DeployPhase::as_str)
            );
        }
        std::thread::sleep(REFRESH);
    }
}

/// The lines printed after a successful deploy.
fn summary(node: &Node) -> Vec<(String, String)> {
    let dii = &node.driver_internal_info;
    let mut lines = vec![
        ("node".to_string(), node.uuid.to_string()),
        (
            "provision_state".to_string(),
            node.provision_state.to_string(),
        ),
    ];
    if let Some(result) = &dii.deploy_result {
        let text = result
            .get("result")
            .and_then(Value::as_str)
            .map_or_else(|| result.to_string(), str::to_string);
        lines.push(("write_image".to_string(), text));
    }
    if let Some(root) = &dii.root_uuid_or_disk_id {
        lines.push(("root_uuid_or_disk_id".to_string(), root.clone()));
    }
    for warning in &dii.deploy_warnings {
        lines.push(("warning".to_string(), warning.clone()));
    }
    lines
}
