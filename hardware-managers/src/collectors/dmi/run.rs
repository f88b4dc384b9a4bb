//! Running `dmidecode` as IPA does, with its failure texts.

use std::path::Path;
use std::time::Duration;

use super::DmiCollected;
use crate::collectors::pyfmt;
use crate::process::{self, Limits, RunError};

/// IPA's arguments.
pub const DMIDECODE_ARGS: [&str; 6] = ["-t", "bios", "-t", "processor", "-t", "memory"];

/// How long `dmidecode` may take (IPA waits forever; it reads a few kB from sysfs).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `dmidecode` (`program`: its name or path) and parses its output. Its absence, a
/// non-zero exit or a timeout is the failure `failed to run dmidecode: ...` (IPA's text for
/// a missing program or a `ProcessExecutionError`) and no `dmi`. Output that is not UTF-8 is
/// decoded lossily.
pub fn collect(program: &str) -> DmiCollected {
    let mut cmd = process::command(program);
    cmd.args(DMIDECODE_ARGS);
    let failed = |why: String| DmiCollected {
        dmi: None,
        failure: Some(format!("failed to run dmidecode: {why}")),
    };
    match process::run(cmd, None, Limits::with_timeout(TIMEOUT)) {
        Ok(done) => {
            let stdout = String::from_utf8_lossy(&done.stdout.bytes);
            if done.status.success() {
                return DmiCollected::from_output(&stdout);
            }
            let code = done.status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                -done.status.signal().unwrap_or(0)
            });
            failed(execution_error(
                program,
                code,
                &stdout,
                &String::from_utf8_lossy(&done.stderr.bytes),
            ))
        }
        Err(RunError::Spawn(e)) => failed(pyfmt::os_error(&e, Path::new(program))),
        Err(e) => failed(e.to_string()),
    }
}

/// `str()` of oslo.concurrency's `ProcessExecutionError`.
pub(super) fn execution_error(program: &str, code: i32, stdout: &str, stderr: &str) -> String {
    format!(
        "Unexpected error while running command.\nCommand: {program} {}\nExit code: {code}\nStdout: {}\nStderr: {}",
        DMIDECODE_ARGS.join(" "),
        pyfmt::repr_str(stdout),
        pyfmt::repr_str(stderr)
    )
}
