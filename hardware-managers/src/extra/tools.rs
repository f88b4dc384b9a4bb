//! Running the optional tools (`ethtool`, `smartctl`, `ipmitool`, ...): only on the real
//! system, only when installed, with a deadline.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tracing::debug;

use super::Root;
use crate::process::{self, Limits};

/// How long one informational tool may run.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a tool printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

/// Whether `tool` can be run on this root (the real system with the tool installed).
pub fn available(root: &Root, tool: &str) -> bool {
    root.is_system() && process::find_tool(tool).is_some()
}

/// Runs `tool args` within `timeout`; `None` when it is not installed (or `root` is a
/// fixture), could not start or timed out.
pub fn run(root: &Root, tool: &str, args: &[&str], timeout: Duration) -> Option<Output> {
    run_env(root, tool, args, &[], timeout)
}

/// [`run`] with extra environment variables.
pub fn run_env(
    root: &Root,
    tool: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Option<Output> {
    if !root.is_system() {
        return None;
    }
    let exe = process::find_tool(tool)?;
    let mut cmd = Command::new(&exe);
    cmd.args(args).envs(env.iter().copied());
    run_command(cmd, timeout, &exe)
}

fn run_command(cmd: Command, timeout: Duration, exe: &Path) -> Option<Output> {
    match process::run(cmd, None, Limits::with_timeout(timeout)) {
        Ok(f) => Some(Output {
            success: f.status.success(),
            stdout: String::from_utf8_lossy(&f.stdout.bytes).into_owned(),
            stderr: String::from_utf8_lossy(&f.stderr.bytes).into_owned(),
        }),
        Err(e) => {
            debug!(tool = %exe.display(), error = %e, "tool did not run");
            None
        }
    }
}

/// The standard output lines of `tool args` (whatever its exit status), empty when it did
/// not run: `hardware-detect`'s `output_lines`.
pub fn lines(root: &Root, tool: &str, args: &[&str]) -> Vec<String> {
    run(root, tool, args, TOOL_TIMEOUT)
        .map(|o| o.stdout.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// The standard output of `tool args` when it exited with status 0.
pub fn stdout_if_ok(root: &Root, tool: &str, args: &[&str]) -> Option<String> {
    run(root, tool, args, TOOL_TIMEOUT)
        .filter(|o| o.success)
        .map(|o| o.stdout)
}

/// The file's first line without the newline (`hardware-detect`'s `from_file`).
pub fn first_line(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    Some(text.lines().next().unwrap_or("").to_string())
}
