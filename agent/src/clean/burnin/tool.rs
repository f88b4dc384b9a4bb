//! Finding and running the burn-in tools (stress-ng, fio, smartctl) with a hard deadline.
//!
//! Each run goes through [`hardware_managers::process`]: it gets its own process group; when
//! the deadline passes the whole group (the tool and every worker it forked) is killed with
//! `SIGKILL`. Standard output is kept up to a bound, standard error as its last few KiB
//! (stress-ng reports on stderr; the tail is what an error message needs).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use hardware_managers::process::{self, Capture, Keep, Limits, Lingering};
use hardware_managers::{HardwareError, IpaClass};

/// Directories searched after `$PATH` (a ramdisk's PATH may lack the sbin directories).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// Most stdout kept (fio's JSON report for many disks stays far below this).
const STDOUT_KEEP: usize = 16 << 20;
/// Most stderr kept: its tail.
const STDERR_KEEP: usize = 64 << 10;
/// How much of the stderr tail goes into an error message.
pub(crate) const STDERR_IN_ERRORS: usize = 4096;

/// An external program and the (Debian/Ubuntu) package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// Program name.
    pub program: &'static str,
    /// Package to install.
    pub package: &'static str,
}

/// `stress-ng` (CPU and memory burn-in).
pub(crate) const STRESS_NG: Tool = Tool {
    program: "stress-ng",
    package: "stress-ng",
};
/// `fio` (disk burn-in).
pub(crate) const FIO: Tool = Tool {
    program: "fio",
    package: "fio",
};
/// `smartctl` (the optional SMART self-test after the disk burn-in).
pub(crate) const SMARTCTL: Tool = Tool {
    program: "smartctl",
    package: "smartmontools",
};

/// Where tools are looked up.
#[derive(Debug, Clone)]
pub(crate) struct Toolbox {
    dirs: Vec<PathBuf>,
}

impl Toolbox {
    /// `$PATH`, then the usual bin and sbin directories.
    pub fn system() -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::env::split_paths(&path)
            .chain(EXTRA_DIRS.iter().map(PathBuf::from))
            .collect();
        Toolbox { dirs }
    }

    /// Only `dirs` (tests put fake tools there).
    #[cfg(test)]
    pub fn only(dirs: Vec<PathBuf>) -> Self {
        Toolbox { dirs }
    }

    /// The full path of `tool`, or a `CommandExecutionError` naming the package to install.
    pub fn find(&self, tool: Tool) -> Result<PathBuf, HardwareError> {
        self.dirs
            .iter()
            .map(|d| d.join(tool.program))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                HardwareError::ipa(
                    IpaClass::CommandExecutionError,
                    format!(
                        "{} is not installed in the ramdisk (install the `{}` package)",
                        tool.program, tool.package
                    ),
                )
            })
    }
}

/// A run that finished on its own.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (at most [`STDOUT_KEEP`] bytes).
    pub stdout: Vec<u8>,
    /// The tail of standard error.
    pub stderr: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Why a run produced no [`Output`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The deadline passed; the process group was killed.
    #[error("still running after {}s, killed; stderr: {stderr}", .after.as_secs())]
    TimedOut {
        /// The deadline that expired.
        after: Duration,
        /// The tail of stderr before the kill.
        stderr: String,
    },
    /// Waiting for the process failed.
    #[error("waiting for {program} failed: {source}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Runs `program args…` with `LC_ALL=C` in its own process group, killing the group when
/// `deadline` passes. `cwd` is the working directory (fio dumps failed verify blocks there).
pub(crate) fn run(
    program: &Path,
    args: &[OsString],
    cwd: Option<&Path>,
    deadline: Duration,
) -> Result<Output, RunError> {
    let mut cmd = Command::new(program);
    cmd.args(args).env("LC_ALL", "C");
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let limits = Limits {
        timeout: deadline,
        max_stdout: STDOUT_KEEP,
        max_stderr: STDERR_KEEP,
    };
    // Workers the tool left behind would hold the pipes open: they go with the group.
    let capture = Capture {
        stderr: Keep::Tail,
        lingering: Lingering::Kill,
        ..Capture::default()
    };
    let started = Instant::now();
    let finished = process::run_with(cmd, None, limits, capture).map_err(|e| match e {
        process::RunError::Spawn(source) => RunError::Spawn {
            program: program.display().to_string(),
            source,
        },
        process::RunError::TimedOut { after, stderr } => RunError::TimedOut {
            after,
            stderr: tail_text(&stderr.bytes, STDERR_IN_ERRORS),
        },
        process::RunError::Wait(source) => RunError::Wait {
            program: program.display().to_string(),
            source,
        },
    })?;
    Ok(Output {
        status: finished.status,
        stdout: finished.stdout.bytes,
        stderr: String::from_utf8_lossy(&finished.stderr.bytes).into_owned(),
        elapsed: started.elapsed(),
    })
}

/// The last `max` bytes of `bytes` as trimmed text (cut on a character boundary, marked).
pub(crate) fn tail_text(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[...] {}", &text[cut..])
}
