//! `agent NODE COMMAND`, `commands NODE` and `logs NODE`: talk to a node's agent directly.

use anyhow::{Context, Result};
use serde_json::Value;

use super::output::{key_values, or_dash, table};
use super::{AgentArgs, AgentConnArgs, Cli, CommandsArgs, LogsArgs};
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

/// `logs NODE`: the node's state and last error, then the agent's log bundle written to a
/// file, with the names of the files in it.
pub(super) fn fetch_logs(cli: &Cli, args: &LogsArgs) -> Result<()> {
    use base64::Engine;
    let store = super::node::open(cli)?;
    let node = store.get_node(&args.node)?;
    let client = AgentClient::for_node(&node, &args.agent.options()).with_context(|| {
        format!(
            "node {} (last error: {}): cannot reach its agent for the log bundle",
            node.uuid,
            node.last_error.as_deref().unwrap_or("none")
        )
    })?;
    let result = runtime()?
        .block_on(client.execute("log.collect_system_logs", &serde_json::json!({}), true))
        .context("running log.collect_system_logs on the agent")?;
    if let Some(e) = &result.command_error {
        anyhow::bail!("the agent could not collect its logs: {}", e.describe());
    }
    let b64 = result
        .command_result
        .as_ref()
        .and_then(|r| r.get("system_logs"))
        .and_then(Value::as_str)
        .context("the agent's answer has no system_logs")?;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .context("system_logs is not base64")?;
    let out = args.out.clone().unwrap_or_else(|| {
        std::path::PathBuf::from(format!(
            "{}-logs.tar.gz",
            node.name.clone().unwrap_or_else(|| node.uuid.to_string())
        ))
    });
    std::fs::write(&out, &bundle).with_context(|| format!("writing {}", out.display()))?;
    let files = tar_gz_names(&bundle).unwrap_or_default();
    if cli.json {
        let v = serde_json::json!({
            "node": node.uuid,
            "provision_state": node.provision_state,
            "last_error": node.last_error,
            "bundle": out,
            "bytes": bundle.len(),
            "files": files,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!(
            "{}",
            key_values(&[
                ("node".into(), node.uuid.to_string()),
                (
                    "provision_state".into(),
                    serde_json::to_value(node.provision_state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
                ("last_error".into(), or_dash(node.last_error.clone())),
                (
                    "bundle".into(),
                    format!("{} ({} bytes)", out.display(), bundle.len())
                ),
                ("files".into(), files.join(" ")),
            ])
        );
    }
    Ok(())
}

/// The member names of a gzip'd tar (ustar headers: name at 0..100, octal size at 124..136,
/// prefix at 345..500).
fn tar_gz_names(bundle: &[u8]) -> Result<Vec<String>> {
    use std::io::Read;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bundle)
        .take(1 << 30)
        .read_to_end(&mut tar)
        .context("the bundle is not gzip")?;
    let field = |h: &[u8], r: std::ops::Range<usize>| {
        let b = &h[r];
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).trim().to_string()
    };
    let mut names = Vec::new();
    let mut at = 0usize;
    while let Some(h) = tar.get(at..at + 512) {
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name = field(h, 0..100);
        let prefix = field(h, 345..500);
        let size = u64::from_str_radix(&field(h, 124..136), 8).unwrap_or(0);
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if h[156] != b'5' {
            names.push(full);
        }
        let blocks = usize::try_from(size.div_ceil(512)).unwrap_or(usize::MAX);
        at = blocks
            .checked_mul(512)
            .and_then(|b| at.checked_add(512 + b))
            .unwrap_or(usize::MAX);
    }
    Ok(names)
}
