//! Running the vendor's commands (flasher, version_command) with a time limit. Their stdout
//! never reaches ours (ours carries the one JSON response): both streams are captured, and
//! copied to our stderr, which the agent logs.

use std::time::Duration;

use hardware_managers::process::{self, Capture, Captured, Keep, Limits, Lingering, RunError};

/// Most output kept from each stream (its tail).
const KEEP: usize = 16 << 10;

/// A command that ran to the end.
#[derive(Debug)]
pub struct Ran {
    /// Whether it exited 0.
    pub success: bool,
    /// How it ended (`exit status: 1`).
    pub status: String,
    /// The tail of its stdout.
    pub stdout: String,
    /// The tail of its stderr.
    pub stderr: String,
}

/// Runs `argv` in its own process group; past `timeout` the group is killed and an error
/// returned. An error also when it cannot be started.
pub fn run(argv: &[String], timeout: Duration) -> Result<Ran, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "empty command".to_string())?;
    let mut cmd = process::command(program);
    cmd.args(args);
    let limits = Limits::with_timeout(timeout).keeping(KEEP);
    // Whatever it started and left holding the pipes goes with its group.
    let capture = Capture {
        stdout: Keep::Tail,
        stderr: Keep::Tail,
        lingering: Lingering::Kill,
    };
    let finished = process::run_with(cmd, None, limits, capture).map_err(|e| match e {
        RunError::Spawn(e) => format!("cannot run {program}: {e}"),
        RunError::TimedOut { after, stderr } => format!(
            "{program} did not finish within {}s and was killed; stderr: {}",
            after.as_secs(),
            text(&stderr).trim()
        ),
        RunError::Wait(e) => format!("waiting for {program}: {e}"),
    })?;
    let ran = Ran {
        success: finished.status.success(),
        status: finished.status.to_string(),
        stdout: text(&finished.stdout),
        stderr: text(&finished.stderr),
    };
    for line in ran.stdout.lines().chain(ran.stderr.lines()) {
        eprintln!("firmware-manager: {program}: {line}");
    }
    Ok(ran)
}

/// The kept bytes as (lossy) text.
fn text(c: &Captured) -> String {
    String::from_utf8_lossy(&c.bytes).into_owned()
}
