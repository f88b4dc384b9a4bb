//! Running external programs with a deadline and bounded output.
//!
//! Every tool the managers run (ipmitool, log commands, plug-ins) goes through [`run`]: the
//! child gets its own process group so a timeout kills it together with anything it started,
//! stdin is fed from a thread, and stdout/stderr are drained by threads that keep at most a
//! fixed number of bytes (the rest is read and discarded so the child never blocks on a pipe).

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use tracing::warn;

/// How long to keep waiting for the output pipes after the child itself has exited or was
/// killed (a grandchild may still hold them open).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Limits applied to one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
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
}

/// Bytes read from one pipe.
#[derive(Debug, Default, Clone)]
pub(crate) struct Captured {
    /// The kept bytes.
    pub bytes: Vec<u8>,
    /// Whether more was written than kept.
    pub truncated: bool,
}

/// A child that ran to completion.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Captured,
    /// Its standard error.
    pub stderr: Captured,
}

/// Why a run produced no [`Finished`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
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

/// Runs `cmd`, writing `input` to its stdin (or giving it /dev/null), within `limits`.
pub(crate) fn run(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    limits: Limits,
) -> Result<Finished, RunError> {
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
    let stdout = child.stdout.take().map(|p| drain(p, limits.max_stdout));
    let stderr = child.stderr.take().map(|p| drain(p, limits.max_stderr));

    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(&mut child);
            let stderr = collect(stderr, Instant::now() + PIPE_GRACE).unwrap_or_default();
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
    let pipes_deadline = deadline.max(Instant::now() + PIPE_GRACE);
    let stdout = collect(stdout, pipes_deadline);
    let stderr = collect(stderr, pipes_deadline);
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(Finished {
            status,
            stdout,
            stderr,
        }),
        (_, stderr) => {
            warn!(
                pid = child.id(),
                "output pipes still open after exit, killing its group"
            );
            kill_group(&mut child);
            Err(RunError::TimedOut {
                after: limits.timeout,
                stderr: stderr.unwrap_or_default(),
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
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 10 => {
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
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours. The child was
        // spawned with `process_group(0)`, so `-pid` names the group it leads; we have not
        // reaped it yet (or only just did), so the group id cannot have been reused.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads `pipe` to its end on a thread, keeping at most `max` bytes.
fn drain(mut pipe: impl Read + Send + 'static, max: usize) -> Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = Captured::default();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = max.saturating_sub(out.bytes.len());
                    let keep = n.min(room);
                    out.bytes.extend_from_slice(&buf[..keep]);
                    out.truncated |= keep < n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(out);
    });
    rx
}

/// Waits for a drain thread's result until `deadline`; `None` when it is still reading.
fn collect(rx: Option<Receiver<Captured>>, deadline: Instant) -> Option<Captured> {
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
    fn truncates_on_char_boundary() {
        assert_eq!(truncated_text(b"abc\n", 10), "abc");
        assert_eq!(truncated_text("ééé".as_bytes(), 3), "é... [truncated]");
    }
}
