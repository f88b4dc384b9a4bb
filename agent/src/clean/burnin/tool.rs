//! Finding and running the burn-in tools (stress-ng, fio, smartctl) with a hard deadline.
//!
//! Each run gets its own process group; when the deadline passes the whole group (the tool and
//! every worker it forked) is killed with `SIGKILL`. Standard output is kept up to a bound,
//! standard error as its last few KiB (stress-ng reports on stderr; the tail is what an error
//! message needs).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use hardware_managers::HardwareError;

/// Directories searched after `$PATH` (a ramdisk's PATH may lack the sbin directories).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// Most stdout kept (fio's JSON report for many disks stays far below this).
const STDOUT_KEEP: usize = 16 << 20;
/// Most stderr kept: its tail.
const STDERR_KEEP: usize = 64 << 10;
/// How much of the stderr tail goes into an error message.
pub(crate) const STDERR_IN_ERRORS: usize = 4096;
/// How long to wait for the pipes once the process group is gone.
const PIPE_GRACE: Duration = Duration::from_secs(2);

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
            .ok_or_else(|| HardwareError::Failed {
                kind: "CommandExecutionError".into(),
                message: format!(
                    "{} is not installed in the ramdisk (install the `{}` package)",
                    tool.program, tool.package
                ),
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
    let shown = program.display().to_string();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: shown.clone(),
        source,
    })?;
    let stdout = child.stdout.take().map(|p| keep_head(p, STDOUT_KEEP));
    let stderr = child.stderr.take().map(|p| keep_tail(p, STDERR_KEEP));

    let status = match wait_until(&mut child, started + deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(&mut child);
            let stderr = collect(stderr).unwrap_or_default();
            return Err(RunError::TimedOut {
                after: deadline,
                stderr: tail_text(&stderr, STDERR_IN_ERRORS),
            });
        }
        Err(source) => {
            kill_group(&mut child);
            return Err(RunError::Wait {
                program: shown,
                source,
            });
        }
    };
    // Workers the tool left behind would hold the pipes open: they go with the group.
    let stdout_bytes = collect(stdout);
    let stderr_bytes = collect(stderr);
    if stdout_bytes.is_none() || stderr_bytes.is_none() {
        kill_group(&mut child);
    }
    Ok(Output {
        status,
        stdout: stdout_bytes.unwrap_or_default(),
        stderr: String::from_utf8_lossy(&stderr_bytes.unwrap_or_default()).into_owned(),
        elapsed: started.elapsed(),
    })
}

/// Polls `child` until it exits (`Some`) or `deadline` passes (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Kills the child's process group, then reaps the child.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours. The child was
        // spawned with `process_group(0)`, so `-pid` is the group it leads; the child is not
        // reaped yet (or was only just reaped by try_wait), so the id cannot have been reused.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads `pipe` to its end on a thread, keeping its first `max` bytes.
fn keep_head(mut pipe: impl Read + Send + 'static, max: usize) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = max.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

/// Reads `pipe` to its end on a thread, keeping its last `max` bytes.
fn keep_tail(mut pipe: impl Read + Send + 'static, max: usize) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept: VecDeque<u8> = VecDeque::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    kept.extend(&buf[..n]);
                    let excess = kept.len().saturating_sub(max);
                    kept.drain(..excess);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(kept.into());
    });
    rx
}

/// A drain thread's bytes, waiting at most [`PIPE_GRACE`]; `None` if the pipe is still open.
fn collect(rx: Option<Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        None => Some(Vec::new()),
        Some(rx) => match rx.recv_timeout(PIPE_GRACE) {
            Ok(bytes) => Some(bytes),
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Vec::new()),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        },
    }
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
