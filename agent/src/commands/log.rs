//! `log.collect_system_logs`: a base64 tar.gz of everything useful for debugging.

use std::io::Write;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::registry::{Mode, Params, Registry};
use super::result::{CommandError, CommandOutput};
use crate::context::AgentContext;

/// Registers `log.collect_system_logs`.
pub fn register(r: &mut Registry) {
    r.register("log", "collect_system_logs", Mode::Sync, None, collect);
}

fn collect(ctx: &AgentContext, _: Params) -> Result<CommandOutput, CommandError> {
    let encoded = bundle_base64(ctx)
        .map_err(|e| CommandError::execution(format!("building log bundle: {e}")))?;
    Ok(CommandOutput::Json(json!({ "system_logs": encoded })))
}

/// The log bundle as base64 text of a tar.gz (also the inspection `logs` collector).
pub fn bundle_base64(ctx: &AgentContext) -> std::io::Result<String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(build_bundle(ctx)?))
}

/// The files of the bundle: the agent's own log, the journal when there is one, the inventory,
/// and whatever each hardware manager contributes (dmesg, ip, lsblk, mdstat, ...).
pub fn bundle_files(ctx: &AgentContext) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![("ironic-agent.log".into(), ctx.logs.contents())];
    if let Ok(out) = Command::new("journalctl")
        .args(["--full", "--no-pager", "-b", "-n", "10000"])
        .output()
        && out.status.success()
    {
        files.push(("journal".into(), out.stdout));
    }
    match ctx.chain.inventory(ctx.skip_bmc_detect()) {
        Ok(inv) => files.push((
            "inventory.json".into(),
            serde_json::to_vec_pretty(&inv).unwrap_or_default(),
        )),
        Err(e) => files.push(("inventory.error".into(), e.to_string().into_bytes())),
    }
    if let Ok(per_manager) = ctx
        .chain
        .dispatch_all("collect_system_logs", |m| m.collect_system_logs())
    {
        for (manager, logs) in per_manager {
            for (name, data) in logs {
                let name = sanitize(&name);
                let taken = files.iter().any(|(n, _)| *n == name);
                files.push((
                    if taken {
                        format!("{manager}/{name}")
                    } else {
                        name
                    },
                    data,
                ));
            }
        }
    }
    files
}

fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "unnamed".into()
    } else {
        cleaned
    }
}

fn build_bundle(ctx: &AgentContext) -> std::io::Result<Vec<u8>> {
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, data) in bundle_files(ctx) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(&mut header, &name, data.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn names_cannot_escape_the_archive() {
        assert_eq!(sanitize("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitize(".."), "unnamed");
        assert_eq!(sanitize("ip-addr"), "ip-addr");
    }
}
