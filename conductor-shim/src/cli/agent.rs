//! `agent NODE COMMAND` and `commands NODE`: talk to a node's agent directly.

use anyhow::{Context, Result};
use serde_json::Value;

use super::output::{key_values, or_dash, table};
use super::{AgentArgs, AgentConnArgs, Cli, CommandsArgs};
use crate::agent_client::{AgentClient, CommandResult};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn client(cli: &Cli, node: &str, conn: &AgentConnArgs) -> Result<AgentClient> {
    let store = super::node::open(cli)?;
    let node = store.get_node(node)?;
    AgentClient::for_node(&node, &conn.options())
        .with_context(|| format!("preparing a client for the agent of node {}", node.uuid))
}

pub(super) fn run_command(cli: &Cli, args: &AgentArgs) -> Result<()> {
    let params: Value = serde_json::from_str(&args.params)
        .with_context(|| format!("--params is not valid JSON: {}", args.params))?;
    let client = client(cli, &args.node, &args.agent)?;
    let result = runtime()?
        .block_on(client.execute(&args.command, &params, args.wait))
        .with_context(|| format!("running {} on the agent", args.command))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", key_values(&result_lines(&result)));
    }
    Ok(())
}

pub(super) fn list_commands(cli: &Cli, args: &CommandsArgs) -> Result<()> {
    let client = client(cli, &args.node, &args.agent)?;
    let commands = runtime()?
        .block_on(client.commands())
        .context("listing the agent's commands")?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&commands)?);
    } else {
        let rows: Vec<Vec<String>> = commands
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    c.command_name.clone(),
                    status_text(c),
                    or_dash(c.command_error.as_ref().map(|e| e.describe())),
                ]
            })
            .collect();
        print!("{}", table(&["ID", "COMMAND", "STATUS", "ERROR"], &rows));
    }
    Ok(())
}

fn status_text(c: &CommandResult) -> String {
    serde_json::to_value(c.command_status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn result_lines(r: &CommandResult) -> Vec<(String, String)> {
    vec![
        ("id".into(), r.id.clone()),
        ("command".into(), r.command_name.clone()),
        ("status".into(), status_text(r)),
        (
            "error".into(),
            or_dash(r.command_error.as_ref().map(|e| e.describe())),
        ),
        (
            "result".into(),
            r.command_result.as_ref().map_or("-".into(), |v| {
                serde_json::to_string_pretty(v).unwrap_or_default()
            }),
        ),
    ]
}
