//! `log.collect_system_logs`: a base64 tar.gz of everything useful for debugging.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::registry::{Mode, Params, Registry};
use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandOutput};
use crate::tools::Invocation;

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

/// The files of the bundle, with secrets redacted (see [`redact`]): the agent's own log, the journal when there is one, the recent
/// commands (`commands.json`: names, times, statuses, errors, results; never parameters nor what
/// results echo of them, see [`crate::record::scrub`]), the inventory,
/// and whatever each hardware manager contributes (dmesg, ip, lsblk, mdstat, efibootmgr, ...).
pub fn bundle_files(ctx: &AgentContext) -> Vec<(String, Vec<u8>)> {
    let secrets: Vec<String> = [ctx.token(), ctx.config.agent_token.clone()]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect();
    collect_files(ctx)
        .into_iter()
        .map(|(name, data)| (name, redact(data, &secrets)))
        .collect()
}

/// How long `journalctl` may take.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Most of the journal kept (its last 10000 lines stay far below this).
const JOURNAL_KEEP: usize = 64 << 20;

/// Kernel command-line parameters whose values never leave the machine in a bundle (the
/// kernel prints its command line into dmesg and the journal).
const SECRET_PARAMS: &[&[u8]] = &[b"ipa-agent-token="];

/// Replaces every occurrence of the `secrets` and the value of each [`SECRET_PARAMS`] entry
/// (up to the next whitespace or quote) with `***`.
pub fn redact(mut data: Vec<u8>, secrets: &[String]) -> Vec<u8> {
    for secret in secrets {
        data = replace_all(&data, secret.as_bytes(), b"***");
    }
    for param in SECRET_PARAMS {
        let mut out = Vec::with_capacity(data.len());
        let mut rest = data.as_slice();
        while let Some(at) = find(rest, param) {
            let value_start = at + param.len();
            out.extend_from_slice(&rest[..value_start]);
            let value_len = rest[value_start..]
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'"' || *b == b'\'')
                .unwrap_or(rest.len() - value_start);
            if value_len > 0 {
                out.extend_from_slice(b"***");
            }
            rest = &rest[value_start + value_len..];
        }
        out.extend_from_slice(rest);
        data = out;
    }
    data
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace_all(data: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = find(rest, needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Everything collected, before redaction.
fn collect_files(ctx: &AgentContext) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![("ironic-agent.log".into(), ctx.logs.contents())];
    if let Ok(out) = Invocation::new("journalctl", JOURNAL_TIMEOUT)
        .args(["--full", "--no-pager", "-b", "-n", "10000"])
        .keep_stdout(JOURNAL_KEEP)
        .run_ok()
    {
        files.push(("journal".into(), out.stdout));
    }
    files.push((
        "commands.json".into(),
        serde_json::to_vec_pretty(&ctx.history.entries()).unwrap_or_default(),
    ));
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
    use super::{redact, sanitize};

    #[test]
    fn secrets_never_leave_in_a_bundle() {
        let dmesg = b"[0.0] Kernel command line: console=ttyS0 ipa-agent-token=kernel-tok ipa-api-url=http://x\n\
            agent said lookup-tok twice: lookup-tok\nipa-agent-token=\n"
            .to_vec();
        let out = String::from_utf8(redact(dmesg, &["lookup-tok".into()])).expect("utf-8");
        assert_eq!(
            out,
            "[0.0] Kernel command line: console=ttyS0 ipa-agent-token=*** ipa-api-url=http://x\n\
             agent said *** twice: ***\nipa-agent-token=\n"
        );
    }

    #[test]
    fn names_cannot_escape_the_archive() {
        assert_eq!(sanitize("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitize(".."), "unnamed");
        assert_eq!(sanitize("ip-addr"), "ip-addr");
    }
}
