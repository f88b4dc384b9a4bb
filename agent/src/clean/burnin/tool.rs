//! Finding and running the burn-in tools (stress-ng, fio, smartctl) with a hard deadline.
//!
//! Each run goes through the agent's runner ([`crate::tools::Invocation`]): it gets its own
//! process group; when the deadline passes the whole group (the tool and every worker it
//! forked) is killed with `SIGKILL`. Standard output is kept up to a bound, standard error as
//! its last few KiB (stress-ng reports on stderr; the tail is what an error message needs).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hardware_managers::process;
use hardware_managers::{HardwareError, IpaClass};

use crate::tools::{Invocation, Ran, ToolError};
pub(crate) use crate::tools::{STDERR_IN_ERRORS, tail_text};

/// Most stdout kept (fio's JSON report for many disks stays far below this).
const STDOUT_KEEP: usize = 16 << 20;
/// Most stderr kept: its tail.
const STDERR_KEEP: usize = 64 << 10;

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
    /// `$PATH`, then the usual bin and sbin directories ([`process::search_dirs`]).
    pub fn system() -> Self {
        Toolbox {
            dirs: process::search_dirs(),
        }
    }

    /// Only `dirs` (tests put fake tools there).
    #[cfg(test)]
    pub fn only(dirs: Vec<PathBuf>) -> Self {
        Toolbox { dirs }
    }

    /// The full path of `tool`, or a `CommandExecutionError` naming the package to install.
    pub fn find(&self, tool: Tool) -> Result<PathBuf, HardwareError> {
        process::find_tool_in(&self.dirs, tool.program).ok_or_else(|| {
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

/// Runs `program args…` on the agent's runner ([`Invocation`]): `LC_ALL=C`, its own process
/// group, killed with everything it started when `deadline` passes; the tail of stderr is kept
/// (and quoted in the timeout error). `cwd` is the working directory (fio dumps failed verify
/// blocks there).
pub(crate) fn run(
    program: &Path,
    args: &[OsString],
    cwd: Option<&Path>,
    deadline: Duration,
) -> Result<Ran, ToolError> {
    let mut run = Invocation::new(program, deadline)
        .args(args)
        .keep_stdout(STDOUT_KEEP)
        .keep_stderr_tail(STDERR_KEEP);
    if let Some(dir) = cwd {
        run = run.current_dir(dir);
    }
    run.run()
}
