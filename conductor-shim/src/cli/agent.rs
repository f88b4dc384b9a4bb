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
    let store = cli.open_store()?;
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

/// `logs NODE`: the node's state and last error, the bundles `serve` stored on failures,
/// then the agent's log bundle (fetched now) written to a file, with the names of the files in
/// it. With the agent gone (powered off after a failure) the stored bundles are what is left:
/// they are listed and the command fails naming the last error.
pub(super) fn fetch_logs(cli: &Cli, args: &LogsArgs) -> Result<()> {
    let store = cli.open_store()?;
    let node = store.get_node(&args.node)?;
    let dir = args.deploy_logs_local_path.clone().unwrap_or_else(|| {
        cli.db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join("deploy-logs")
    });
    let stored = crate::ramdisk_logs::stored_bundles(&dir, &node);
    let last_error = node.last_error.as_deref().unwrap_or("none");
    let stored_text = stored
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let fetched = AgentClient::for_node(&node, &args.agent.options())
        .map_err(anyhow::Error::from)
        .and_then(|client| {
            runtime()?
                .block_on(crate::ramdisk_logs::fetch_bundle(&client))
                .map_err(anyhow::Error::from)
        });
    let bundle = match fetched {
        Ok(b) => b,
        Err(e) => {
            return Err(e.context(format!(
                "node {} (last error: {last_error}; stored bundles: {}): cannot fetch the \
                 agent's log bundle",
                node.uuid,
                if stored.is_empty() {
                    "none"
                } else {
                    &stored_text
                }
            )));
        }
    };
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
            "stored": stored,
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
                    "stored".into(),
                    or_dash(Some(stored_text).filter(|s| !s.is_empty()))
                ),
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
