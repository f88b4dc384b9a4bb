//! System state for the log bundle: outputs of standard tools and a few
//! procfs files. A tool that is not installed is skipped silently; one that hangs is killed.

use std::fs;
use std::path::Path;
use std::time::Duration;

use tracing::{debug, warn};

use crate::process::{self, Limits};

/// Limit for each command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A command whose output goes into the bundle under `file`; `fallback` is tried when the
/// first form fails (older tools without an option).
struct LogCommand {
    file: &'static str,
    argv: &'static [&'static str],
    fallback: Option<&'static [&'static str]>,
}

const COMMANDS: &[LogCommand] = &[
    LogCommand {
        file: "dmesg",
        argv: &["dmesg"],
        fallback: None,
    },
    LogCommand {
        file: "ip_addr",
        argv: &["ip", "addr"],
        fallback: None,
    },
    LogCommand {
        file: "ip_route",
        argv: &["ip", "route"],
        fallback: None,
    },
    LogCommand {
        file: "lsblk-full",
        argv: &["lsblk", "--all", "--bytes", "--output-all", "--pairs"],
        fallback: Some(&[
            "lsblk",
            "--all",
            "--bytes",
            "--pairs",
            "--output",
            "KNAME,MODEL,SIZE,ROTA,TYPE,UUID,PARTUUID,SERIAL,WWN,LOG-SEC,PHY-SEC,TRAN,MOUNTPOINT",
        ]),
    },
    LogCommand {
        file: "lsblk",
        argv: &[
            "lsblk",
            "--all",
            "-o",
            "KNAME,NAME,TYPE,SIZE,FSTYPE,LABEL,UUID,PARTUUID,PARTTYPE,MOUNTPOINT,MODEL,SERIAL",
        ],
        fallback: None,
    },
    LogCommand {
        file: "ip_link",
        argv: &["ip", "link"],
        fallback: None,
    },
    LogCommand {
        file: "ip_route6",
        argv: &["ip", "-6", "route"],
        fallback: None,
    },
    LogCommand {
        file: "efibootmgr",
        argv: &["efibootmgr", "-v"],
        fallback: None,
    },
    LogCommand {
        file: "parted",
        argv: &["parted", "-l", "-s"],
        fallback: None,
    },
    LogCommand {
        file: "multipath",
        argv: &["multipath", "-ll"],
        fallback: None,
    },
    LogCommand {
        file: "iptables",
        argv: &["iptables", "-L", "-n"],
        fallback: None,
    },
    LogCommand {
        file: "df",
        argv: &["df", "-a"],
        fallback: None,
    },
    LogCommand {
        file: "ps",
        argv: &["ps", "au"],
        fallback: None,
    },
];

/// procfs files copied into the bundle: (file name in the bundle, path under the root).
const FILES: &[(&str, &str)] = &[
    ("mdstat", "proc/mdstat"),
    ("mount", "proc/mounts"),
    ("partitions", "proc/partitions"),
];

/// Collects the bundle's entries. Commands describe the running system, so they run only
/// when `root` is `/`; the files are read under `root`.
pub(crate) fn collect(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if root == Path::new("/") {
        for command in COMMANDS {
            if let Some(bytes) = run_logged(command) {
                out.push((command.file.to_string(), bytes));
            }
        }
    }
    for (file, path) in FILES {
        match fs::read(root.join(path)) {
            Ok(bytes) => out.push((file.to_string(), bytes)),
            Err(e) => debug!(path, error = %e, "not adding file to the log bundle"),
        }
    }
    out
}

/// Runs one command (and its fallback if it fails); `None` when the tool is missing or hung.
fn run_logged(command: &LogCommand) -> Option<Vec<u8>> {
    match run_one(command.argv) {
        Some((true, bytes)) => Some(bytes),
        Some((false, bytes)) => match command.fallback.and_then(run_one) {
            Some((true, fallback)) => Some(fallback),
            _ => Some(bytes),
        },
        None => None,
    }
}

/// `(succeeded, stdout followed by stderr)`, or `None` when the program could not run.
fn run_one(argv: &[&str]) -> Option<(bool, Vec<u8>)> {
    let (program, args) = argv.split_first()?;
    let mut cmd = process::command(program);
    cmd.args(args);
    match process::run(cmd, None, Limits::with_timeout(COMMAND_TIMEOUT)) {
        Ok(f) => {
            let mut bytes = f.stdout.bytes;
            if !f.stderr.bytes.is_empty() {
                bytes.extend_from_slice(b"\n--- stderr ---\n");
                bytes.extend_from_slice(&f.stderr.bytes);
            }
            Some((f.status.success(), bytes))
        }
        Err(e) if e.is_not_found() => {
            debug!(
                program,
                "not installed, not adding its output to the log bundle"
            );
            None
        }
        Err(e) => {
            warn!(?argv, error = %e, "log command failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_is_skipped() {
        let missing = LogCommand {
            file: "x",
            argv: &["/nonexistent/ironic-agent-log-tool"],
            fallback: None,
        };
        assert_eq!(run_logged(&missing), None);
    }

    #[test]
    fn failing_tool_keeps_output_and_tries_fallback() {
        let cmd = LogCommand {
            file: "x",
            argv: &["sh", "-c", "echo out; echo bad >&2; exit 1"],
            fallback: Some(&["sh", "-c", "echo fallback"]),
        };
        assert_eq!(run_logged(&cmd), Some(b"fallback\n".to_vec()));
        let cmd = LogCommand {
            fallback: None,
            ..cmd
        };
        assert_eq!(
            run_logged(&cmd),
            Some(b"out\n\n--- stderr ---\nbad\n".to_vec())
        );
    }
}
