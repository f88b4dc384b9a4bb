//! `node create | list | show | delete | set-state | manage | provide | set`.

use anyhow::{Context, Result};

use super::output::{key_values, or_dash, table};
use super::progress;
use super::view::NodeView;
use super::{Cli, CreateArgs, KeyValue, NodeCommand, SetArgs};
use crate::clean::request::{self, NodeUpdate};
use crate::inventory::Inventory;
use crate::mask;
use crate::model::{CachedSteps, CleanPhase, DeployPhase, DeployProgress, JsonMap, NewNode, Node};
use crate::steps::step_id;
use crate::store::StoreError;
use crate::timefmt;

pub(super) fn run(cli: &Cli, cmd: &NodeCommand) -> Result<()> {
    let mut store = cli.open_store()?;
    match cmd {
        NodeCommand::Create(args) => {
            let node = store.create_node(new_node(args)).context("creating node")?;
            print_node(cli, &NodeView::load(&store, node)?)
        }
        NodeCommand::List => {
            let nodes = store.list_nodes().context("listing nodes")?;
            if cli.json {
                let views = nodes
                    .into_iter()
                    .map(|n| NodeView::load(&store, n))
                    .collect::<Result<Vec<_>>>()?;
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        let dii = &n.driver_internal_info;
                        vec![
                            n.uuid.to_string(),
                            or_dash(n.name.as_deref()),
                            n.provision_state.to_string(),
                            or_dash(dii.agent_last_heartbeat.map(timefmt::format)),
                            or_dash(dii.agent_url.as_deref()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["UUID", "NAME", "STATE", "LAST HEARTBEAT", "AGENT URL"],
                        &rows
                    )
                );
            }
            Ok(())
        }
        NodeCommand::Show { node } => {
            let node = store.get_node(node)?;
            print_node(cli, &NodeView::load(&store, node)?)
        }
        NodeCommand::Delete { node } => {
            let deleted = store.delete_node(node)?;
            if cli.json {
                println!("{}", serde_json::json!({"deleted": deleted.uuid}));
            } else {
                println!("Deleted node {}", deleted.uuid);
            }
            Ok(())
        }
        NodeCommand::SetState {
            node,
            state,
            reset_agent,
        } => {
            let uuid = store.get_node(node)?.uuid;
            let node = store.update_node(uuid, |n| {
                n.provision_state = *state;
                n.last_error = None;
                n.target_provision_state = None;
                n.clean_step = None;
                n.driver_internal_info.wipe_clean_info();
                if *reset_agent {
                    n.driver_internal_info.reset_agent();
                } else {
                    n.driver_internal_info.clear_cached_steps();
                }
                Ok::<_, StoreError>(n.clone())
            })?;
            print_node(cli, &NodeView::load(&store, node)?)
        }
        NodeCommand::Manage { node } => {
            let node = request::manage(&mut store, node)
                .with_context(|| format!("managing node {node}"))?;
            print_node(cli, &NodeView::load(&store, node)?)
        }
        NodeCommand::Provide(args) => {
            drop(store);
            super::clean::run_provide(cli, args)
        }
        NodeCommand::Set(args) => {
            let change = node_update(args)?;
            let node = request::update(&mut store, &args.node, change)
                .with_context(|| format!("setting fields of node {}", args.node))?;
            print_node(cli, &NodeView::load(&store, node)?)
        }
    }
}

/// The change `node set` asks for.
fn node_update(args: &SetArgs) -> Result<NodeUpdate> {
    let target_raid_config = args
        .target_raid_config
        .as_deref()
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(text)
                .with_context(|| format!("--target-raid-config is not valid JSON: {text}"))
        })
        .transpose()?;
    Ok(NodeUpdate {
        target_raid_config,
        properties: to_map(&args.fields.properties),
        driver_info: to_map(&args.fields.driver_info),
        instance_info: to_map(&args.fields.instance_info),
        disable_power_off: args.disable_power_off,
    })
}

fn to_map(items: &[KeyValue]) -> JsonMap {
    items
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

fn new_node(args: &CreateArgs) -> NewNode {
    NewNode {
        uuid: args.uuid,
        name: args.name.clone(),
        provision_state: args.state,
        properties: to_map(&args.fields.properties),
        instance_info: to_map(&args.fields.instance_info),
        driver_info: to_map(&args.fields.driver_info),
        macs: args.macs.clone(),
        disable_power_off: args.disable_power_off,
    }
}

fn print_node(cli: &Cli, view: &NodeView) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(view)?);
    } else {
        print!("{}", key_values(&node_lines(view)));
    }
    Ok(())
}

fn compact(map: &JsonMap) -> String {
    if map.is_empty() {
        "{}".to_string()
    } else {
        serde_json::to_string(map).unwrap_or_default()
    }
}

fn steps_text(steps: Option<&CachedSteps>) -> String {
    match steps {
        None => "-".to_string(),
        Some(steps) if steps.is_empty() => "none".to_string(),
        Some(steps) => steps
            .values()
            .flatten()
            .map(|s| format!("{}.{} ({})", s.interface, s.step, s.priority))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The agent's progress of the running step as the progress display shows it, without the
/// state and phase in front; `None` when there is nothing to show.
fn progress_text(
    n: &Node,
    phase: progress::Phase,
    progress: Option<&DeployProgress>,
) -> Option<String> {
    let snapshot = progress::Snapshot {
        state: n.provision_state,
        phase: Some(phase),
        step: None,
        progress: Some(progress?.clone()),
    };
    let text = progress::render(&snapshot);
    text.split_once("  ").map(|(_, rest)| rest.to_string())
}

/// The deploy's lines of `node show`.
fn deploy_lines(n: &Node, phase: DeployPhase) -> Vec<(String, String)> {
    let dii = &n.driver_internal_info;
    let mut lines = vec![("deploy phase".to_string(), phase.as_str().to_string())];
    if let Some(step) = &dii.deploy_step {
        let text = progress::step_text(step, dii.deploy_step_index, dii.deploy_steps.as_deref());
        lines.push(("deploy step".to_string(), text));
    }
    if let Some(text) = progress_text(n, phase.into(), dii.deploy_progress.as_ref()) {
        lines.push(("deploy progress".to_string(), text));
    }
    if let Some(result) = dii
        .deploy_result
        .as_ref()
        .and_then(|r| r.get("result"))
        .and_then(|r| r.as_str())
    {
        lines.push(("deploy result".to_string(), result.to_string()));
    }
    if let Some(root) = &dii.root_uuid_or_disk_id {
        lines.push(("root uuid or disk id".to_string(), root.clone()));
    }
    for warning in &dii.deploy_warnings {
        lines.push(("deploy warning".to_string(), warning.clone()));
    }
    lines
}

/// The cleaning's lines of `node show`.
fn clean_lines(n: &Node, phase: CleanPhase) -> Vec<(String, String)> {
    let dii = &n.driver_internal_info;
    let mut lines = vec![("clean phase".to_string(), phase.as_str().to_string())];
    if let Some(step) = &n.clean_step {
        let text = progress::step_text(step, dii.clean_step_index, dii.clean_steps.as_deref());
        lines.push(("clean step".to_string(), text));
    }
    if let Some(steps) = &dii.clean_steps {
        let text = if steps.is_empty() {
            "none".to_string()
        } else {
            steps
                .iter()
                .map(|s| format!("{} ({})", step_id(s), s.priority))
                .collect::<Vec<_>>()
                .join("\n")
        };
        lines.push(("clean steps".to_string(), text));
    } else if let Some(requested) = &dii.requested_clean_steps {
        let text = requested
            .iter()
            .map(|r| match &r.interface {
                Some(i) => format!("{i}.{}", r.step),
                None => r.step.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        lines.push(("requested clean steps".to_string(), text));
    }
    if let Some(text) = progress_text(n, phase.into(), dii.clean_progress.as_ref()) {
        lines.push(("clean progress".to_string(), text));
    }
    if let Some(restarts) = dii.clean_restarts {
        lines.push(("clean restarts".to_string(), restarts.to_string()));
    }
    lines
}

/// The `node show` lines.
fn node_lines(view: &NodeView) -> Vec<(String, String)> {
    let n = &view.node;
    let dii = &n.driver_internal_info;
    let mut lines: Vec<(String, String)> = vec![
        ("uuid".into(), n.uuid.to_string()),
        ("name".into(), or_dash(n.name.as_deref())),
        ("provision_state".into(), n.provision_state.to_string()),
        (
            "target_provision_state".into(),
            or_dash(n.target_provision_state),
        ),
        (
            "power_state".into(),
            or_dash(n.power_state.and_then(|p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
            })),
        ),
        ("last_error".into(), or_dash(n.last_error.as_deref())),
        ("disable_power_off".into(), n.disable_power_off.to_string()),
        (
            "ports".into(),
            if view.ports.is_empty() {
                "-".into()
            } else {
                view.ports.join(", ")
            },
        ),
        ("created_at".into(), timefmt::format(n.created_at)),
        (
            "updated_at".into(),
            or_dash(n.updated_at.map(timefmt::format)),
        ),
        ("agent_url".into(), or_dash(dii.agent_url.as_deref())),
        (
            "agent_version".into(),
            or_dash(dii.agent_version.as_deref()),
        ),
        (
            "last heartbeat".into(),
            or_dash(dii.agent_last_heartbeat.map(timefmt::format)),
        ),
        (
            "heartbeat count".into(),
            dii.agent_heartbeat_count.unwrap_or(0).to_string(),
        ),
        (
            "agent token".into(),
            if dii.agent_secret_token.is_some() {
                "issued"
            } else {
                "-"
            }
            .into(),
        ),
        (
            "agent_verify_ca".into(),
            if dii.agent_verify_ca.is_some() {
                "stored"
            } else {
                "-"
            }
            .into(),
        ),
        (
            "hardware managers".into(),
            dii.hardware_manager_version
                .as_ref()
                .map_or("-".into(), |v| {
                    v.iter()
                        .map(|(k, v)| {
                            format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
        ),
        (
            "cached deploy steps".into(),
            steps_text(dii.agent_cached_deploy_steps.as_ref()),
        ),
        (
            "cached clean steps".into(),
            steps_text(dii.agent_cached_clean_steps.as_ref()),
        ),
    ];
    if dii.agent_cached_service_steps.is_some() {
        lines.push((
            "cached service steps".into(),
            steps_text(dii.agent_cached_service_steps.as_ref()),
        ));
    }
    if let Some(phase) = dii.deploy_phase {
        lines.extend(deploy_lines(n, phase));
    }
    if let Some(phase) = dii.clean_phase {
        lines.extend(clean_lines(n, phase));
    }
    if !n.target_raid_config.is_empty() {
        lines.push(("target_raid_config".into(), compact(&n.target_raid_config)));
    }
    if !n.raid_config.is_empty() {
        lines.push(("raid_config".into(), compact(&n.raid_config)));
    }
    lines.push(("properties".into(), compact(&n.properties)));
    lines.push((
        "instance_info".into(),
        compact(&mask::mask_map(&n.instance_info)),
    ));
    lines.push((
        "driver_info".into(),
        compact(&mask::mask_map(&n.driver_info)),
    ));
    match &n.inventory {
        None => lines.push(("inventory".into(), "-".into())),
        Some(value) => match Inventory::from_value(value) {
            Ok(inventory) => {
                for (label, text) in inventory.summary() {
                    lines.push((format!("inventory {label}"), text));
                }
            }
            Err(e) => lines.push(("inventory".into(), format!("unreadable: {e}"))),
        },
    }
    if let Some(data) = &n.inspection_data {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        lines.push(("inspection data".into(), keys.join(", ")));
    }
    lines
}
