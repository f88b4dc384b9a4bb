//! Running external programs with a deadline and bounded output.
//!
//! Every tool the managers run (ipmitool, log commands, plug-ins) goes through [`run`], and so
//! do the agent's cleaning tools and the `firmware-manager` example: the child gets its own
//! process group so a timeout kills it together with anything it started, stdin is fed from a
//! thread, and stdout/stderr are drained by threads that keep at most a fixed number of bytes
//! (the rest is read and discarded so the child never blocks on a pipe).
//!
//! [`run_with`] also chooses which end of a stream is kept ([`Keep`]) and what happens when
//! something the program started still holds its output open after it exited ([`Lingering`]).
//! Both log the command line (at debug level) before starting it.
//!
//! [`find_tool`] is the one tool lookup: `$PATH`, then the bin and sbin directories a
//! ramdisk's `PATH` may lack ([`EXTRA_DIRS`]); [`command`] builds a [`Command`] for a program
//! found that way.
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//!
//! use hardware_managers::process::{self, Limits};
//!
//! let mut cmd = Command::new("ipmitool");
//! cmd.args(["lan", "print"]);
//! match process::run(cmd, None, Limits::with_timeout(Duration::from_secs(60))) {
//!     Ok(f) if f.status.success() => println!("{}", String::from_utf8_lossy(&f.stdout.bytes)),
//!     Ok(f) => eprintln!("ipmitool failed: {}", f.status),
//!     Err(e) => eprintln!("ipmitool: {e}"),
//! }
//! ```

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tracing::{debug, warn};

/// How long to keep waiting for the output pipes after the child itself has exited or was
/// killed (a grandchild may still hold them open).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Directories searched after `$PATH` (a ramdisk's `PATH` may lack the sbin directories).
pub const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The directories [`find_tool`] searches, in order: `$PATH`, then [`EXTRA_DIRS`].
pub fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .collect()
}

/// The full path of the program `tool` in [`search_dirs`], if it is installed there. A
/// `tool` containing a `/` is a path already: it is returned when it is a file.
pub fn find_tool(tool: impl AsRef<OsStr>) -> Option<PathBuf> {
    find_tool_in(&search_dirs(), tool)
}

/// [`find_tool`] over `dirs` instead of the usual directories.
pub fn find_tool_in(dirs: &[PathBuf], tool: impl AsRef<OsStr>) -> Option<PathBuf> {
    let tool = Path::new(tool.as_ref());
    if tool.components().count() != 1 || tool.is_absolute() {
        return tool.is_file().then(|| tool.to_path_buf());
    }
    dirs.iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

/// A [`Command`] for `program`, found with [`find_tool`]; when it is not installed, the bare
/// name (starting it then fails with [`RunError::is_not_found`]).
pub fn command(program: impl AsRef<OsStr>) -> Command {
    match find_tool(&program) {
        Some(exe) => Command::new(exe),
        None => Command::new(program),
    }
}

/// `cmd`'s program and arguments as one line, for logs and messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Limits applied to one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit; the process group is killed when it expires.
    pub timeout: Duration,
    /// At most this many bytes of stdout are kept.
    pub max_stdout: usize,
    /// At most this many bytes of stderr are kept.
    pub max_stderr: usize,
}

impl Limits {
    /// `timeout` with 16 MiB of stdout and 64 KiB of stderr.
    pub fn with_timeout(timeout: Duration) -> Self {
        Limits {
            timeout,
            max_stdout: 16 << 20,
            max_stderr: 64 << 10,
        }
    }

    /// These limits, keeping at most `max` bytes of each stream.
    pub fn keeping(self, max: usize) -> Self {
        Limits {
            max_stdout: max,
            max_stderr: max,
            ..self
        }
    }
}

/// Which bytes of a stream longer than its limit are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    /// The first ones (a report printed from the start).
    #[default]
    Head,
    /// The last ones (progress chatter followed by the error that matters).
    Tail,
}

/// What [`run_with`] does when the program has exited but its output pipes are still open
/// (something it started holds them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lingering {
    /// Keep reading until the deadline; then kill the process group and fail with
    /// [`RunError::TimedOut`] (the output may be incomplete).
    #[default]
    Wait,
    /// Wait a short grace period, then kill the process group and return what was read.
    Kill,
}

/// How [`run_with`] captures the output; the default is what [`run`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capture {
    /// Which end of stdout is kept.
    pub stdout: Keep,
    /// Which end of stderr is kept.
    pub stderr: Keep,
    /// Pipes held open after the exit.
    pub lingering: Lingering,
}

/// Bytes read from one pipe.
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// The kept bytes.
    pub bytes: Vec<u8>,
    /// Whether more was written than kept.
    pub truncated: bool,
}

impl Captured {
    /// Adds `chunk`, keeping at most `max` bytes from the `keep` end. A tail is cut back to
    /// `max` once it reaches twice that (so it is copied rarely) and by [`finish`](Self::finish).
    fn push(&mut self, chunk: &[u8], max: usize, keep: Keep) {
        match keep {
            Keep::Head => {
                let room = max.saturating_sub(self.bytes.len());
                let kept = chunk.len().min(room);
                self.bytes.extend_from_slice(&chunk[..kept]);
                self.truncated |= kept < chunk.len();
            }
            Keep::Tail => {
                self.bytes.extend_from_slice(chunk);
                if self.bytes.len() > max.saturating_mul(2) {
                    self.finish(max);
                }
            }
        }
    }

    /// Drops all but the last `max` bytes.
    fn finish(&mut self, max: usize) {
        let excess = self.bytes.len().saturating_sub(max);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }
}

/// A child that ran to completion.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Captured,
    /// Its standard error.
    pub stderr: Captured,
}

/// Why a run produced no [`Finished`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started (missing, not executable, ...).
    #[error("cannot run: {0}")]
    Spawn(#[source] io::Error),
    /// The deadline passed; the process group was killed.
    #[error("timed out after {}s", .after.as_secs_f64())]
    TimedOut {
        /// The limit that expired.
        after: Duration,
        /// Whatever stderr was written before the kill.
        stderr: Captured,
    },
    /// Waiting for the child failed.
    #[error("waiting for the process failed: {0}")]
    Wait(#[source] io::Error),
}

impl RunError {
    /// Whether the program does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RunError::Spawn(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// Runs `cmd`, writing `input` to its stdin (or giving it /dev/null), within `limits`,
/// keeping the head of both streams and waiting up to the deadline for pipes held open after
/// the exit ([`Capture::default`]).
///
/// `cmd` keeps its arguments, environment and working directory; its stdio and process group
/// are set here.
///
/// # Errors
/// [`RunError::Spawn`] when it cannot start, [`RunError::TimedOut`] when the deadline passes
/// (the process group is killed), [`RunError::Wait`] when waiting for it fails.
pub fn run(cmd: Command, input: Option<Vec<u8>>, limits: Limits) -> Result<Finished, RunError> {
    run_with(cmd, input, limits, Capture::default())
}

/// [`run`], capturing the output as `capture` says.
///
/// # Errors
/// As [`run`]; with [`Lingering::Kill`], pipes held open after the exit are not an error.
pub fn run_with(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    limits: Limits,
    capture: Capture,
) -> Result<Finished, RunError> {
    debug!(
        command = %command_line(&cmd),
        timeout_s = limits.timeout.as_secs_f64(),
        "running"
    );
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = spawn(&mut cmd)?;
    let deadline = Instant::now() + limits.timeout;

    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        // A child that exits without reading makes this fail with EPIPE: that is its business.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = child
        .stdout
        .take()
        .map(|p| drain(p, limits.max_stdout, capture.stdout));
    let stderr = child
        .stderr
        .take()
        .map(|p| drain(p, limits.max_stderr, capture.stderr));

    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(&mut child);
            let stderr = collect(stderr.as_ref(), Instant::now() + PIPE_GRACE).unwrap_or_default();
            return Err(RunError::TimedOut {
                after: limits.timeout,
                stderr,
            });
        }
        Err(e) => {
            kill_group(&mut child);
            return Err(RunError::Wait(e));
        }
    };

    // The child is gone; its pipes close unless something it started still holds them.
    let pipes_deadline = match capture.lingering {
        Lingering::Wait => deadline.max(Instant::now() + PIPE_GRACE),
        Lingering::Kill => Instant::now() + PIPE_GRACE,
    };
    let (out, err) = match (
        collect(stdout.as_ref(), pipes_deadline),
        collect(stderr.as_ref(), pipes_deadline),
    ) {
        (Some(stdout), Some(stderr)) => {
            return Ok(Finished {
                status,
                stdout,
                stderr,
            });
        }
        open => open,
    };
    warn!(
        pid = child.id(),
        "output pipes still open after exit, killing its group"
    );
    kill_group(&mut child);
    match capture.lingering {
        Lingering::Wait => Err(RunError::TimedOut {
            after: limits.timeout,
            stderr: err.unwrap_or_default(),
        }),
        // The holders are gone with the group: their pipes end and the readers report.
        Lingering::Kill => {
            let after_kill = Instant::now() + PIPE_GRACE;
            Ok(Finished {
                status,
                stdout: out
                    .or_else(|| collect(stdout.as_ref(), after_kill))
                    .unwrap_or_default(),
                stderr: err
                    .or_else(|| collect(stderr.as_ref(), after_kill))
                    .unwrap_or_default(),
            })
        }
    }
}

/// Spawns `cmd`, retrying briefly on `ETXTBSY`: an executable that was just written (a
/// freshly installed plug-in) can be reported busy while another thread's fork still holds
/// its write descriptor.
fn spawn(cmd: &mut Command) -> Result<Child, RunError> {
    let mut attempt = 0u32;
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && attempt < 10 => {
                attempt += 1;
                thread::sleep(Duration::from_millis(20) * attempt);
            }
            Err(e) => return Err(RunError::Spawn(e)),
        }
    }
}

/// Polls the child until it exits or `deadline` passes (`Ok(None)`).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills the child's process group (the child and everything it started), then reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The child was spawned with `process_group(0)`, so its pid names the group it leads;
        // we have not reaped it yet (or only just did), so the group id cannot have been reused.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads `pipe` to its end on a thread, keeping at most `max` bytes from the `keep` end.
fn drain(mut pipe: impl Read + Send + 'static, max: usize, keep: Keep) -> Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = Captured::default();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(&buf[..n], max, keep),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if keep == Keep::Tail {
            out.finish(max);
        }
        let _ = tx.send(out);
    });
    rx
}

/// Waits for a drain thread's result until `deadline`; `None` when it is still reading.
fn collect(rx: Option<&Receiver<Captured>>, deadline: Instant) -> Option<Captured> {
    let Some(rx) = rx else {
        return Some(Captured::default());
    };
    let wait = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(c) => Some(c),
        Err(RecvTimeoutError::Disconnected) => Some(Captured::default()),
        Err(RecvTimeoutError::Timeout) => None,
    }
}

/// `bytes` as lossy UTF-8, cut to at most `max` bytes (on a character boundary) with a marker.
pub(crate) fn truncated_text(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [truncated]", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn captures_output_and_status() -> Result<(), RunError> {
        let f = run(
            sh("cat; echo err >&2; exit 3"),
            Some(b"hello".to_vec()),
            Limits::with_timeout(Duration::from_secs(10)),
        )?;
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.stdout.bytes, b"hello");
        assert_eq!(f.stderr.bytes, b"err\n");
        Ok(())
    }

    #[test]
    fn bounds_stdout() -> Result<(), RunError> {
        let limits = Limits {
            max_stdout: 10,
            ..Limits::with_timeout(Duration::from_secs(10))
        };
        let f = run(sh("yes | head -c 100000"), None, limits)?;
        assert!(f.status.success());
        assert_eq!(f.stdout.bytes.len(), 10);
        assert!(f.stdout.truncated);
        Ok(())
    }

    #[test]
    fn keeps_the_tail_when_asked() -> Result<(), RunError> {
        let limits = Limits {
            max_stdout: 5,
            max_stderr: 4,
            ..Limits::with_timeout(Duration::from_secs(10))
        };
        let capture = Capture {
            stderr: Keep::Tail,
            ..Capture::default()
        };
        let script = "seq 1 3000 >&2; printf 'head tail'";
        let f = run_with(sh(script), None, limits, capture)?;
        assert_eq!(f.stdout.bytes, b"head ");
        assert_eq!(f.stderr.bytes, b"000\n");
        assert!(f.stdout.truncated && f.stderr.truncated);
        let f = run_with(sh("echo hi >&2"), None, limits, capture)?;
        assert_eq!(
            (f.stderr.bytes.as_slice(), f.stderr.truncated),
            (&b"hi\n"[..], false)
        );
        Ok(())
    }

    #[test]
    fn pipes_held_after_exit_fail_or_are_cut_short() -> Result<(), RunError> {
        // The child exits at once; the `sleep` it leaves behind keeps both pipes open.
        let script = "echo out; echo err >&2; sleep 30 & exit 4";
        let limits = Limits::with_timeout(Duration::from_secs(1));
        let start = Instant::now();
        match run(sh(script), None, limits) {
            Err(RunError::TimedOut { .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        let kill = Capture {
            lingering: Lingering::Kill,
            ..Capture::default()
        };
        let f = run_with(sh(script), None, limits, kill)?;
        assert_eq!(f.status.code(), Some(4));
        assert_eq!(
            (f.stdout.bytes, f.stderr.bytes),
            (b"out\n".to_vec(), b"err\n".to_vec())
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
        Ok(())
    }

    #[test]
    fn kills_the_whole_group_on_timeout() {
        let start = Instant::now();
        let r = run(
            sh("echo started >&2; sleep 30; echo never"),
            None,
            Limits::with_timeout(Duration::from_millis(300)),
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        match r {
            Err(RunError::TimedOut { stderr, .. }) => assert_eq!(stderr.bytes, b"started\n"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn missing_program_is_not_found() {
        let r = run(
            Command::new("/nonexistent/ironic-agent-tool"),
            None,
            Limits::with_timeout(Duration::from_secs(1)),
        );
        assert!(r.is_err_and(|e| e.is_not_found()));
    }

    #[test]
    fn finds_tools_in_path_and_by_path() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let tool = dir.path().join("some-tool");
        std::fs::write(&tool, "")?;
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find_tool_in(&dirs, "some-tool"), Some(tool.clone()));
        assert_eq!(find_tool_in(&dirs, "other-tool"), None);
        assert_eq!(find_tool_in(&[], &tool), Some(tool));
        assert_eq!(find_tool_in(&dirs, "/nonexistent/some-tool"), None);
        assert!(find_tool("sh").is_some());
        assert!(command("no-such-tool-xyz").get_program() == "no-such-tool-xyz");
        let mut cmd = Command::new("echo");
        cmd.args(["a", "b c"]);
        assert_eq!(command_line(&cmd), "echo a b c");
        Ok(())
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncated_text(b"abc\n", 10), "abc");
        assert_eq!(truncated_text("ééé".as_bytes(), 3), "é... [truncated]");
    }
}
