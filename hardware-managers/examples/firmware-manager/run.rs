//! Running the vendor's commands (flasher, version_command) with a time limit. Their stdout
//! never reaches ours (ours carries the one JSON response): both streams are captured, and
//! copied to our stderr, which the agent logs.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

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
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let out = child.stdout.take().map(tail_reader);
    let err = child.stderr.take().map(tail_reader);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                let stderr = finish(err);
                return Err(format!(
                    "{program} did not finish within {}s and was killed; stderr: {}",
                    timeout.as_secs(),
                    stderr.trim()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("waiting for {program}: {e}"));
            }
        }
    };
    let ran = Ran {
        success: status.success(),
        status: status.to_string(),
        stdout: finish(out),
        stderr: finish(err),
    };
    for line in ran.stdout.lines().chain(ran.stderr.lines()) {
        eprintln!("firmware-manager: {program}: {line}");
    }
    Ok(ran)
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) only takes integers. The child leads its own process group
        // (`process_group(0)`) and has not been reaped, so `-pid` still names that group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a thread, keeping its last [`KEEP`] bytes.
fn tail_reader(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * KEEP {
                kept.drain(..kept.len() - KEEP);
            }
        }
        let start = kept.len().saturating_sub(KEEP);
        let _ = tx.send(kept.split_off(start));
    });
    rx
}

/// The text a reader thread kept (waiting briefly: a grandchild may hold the pipe).
fn finish(rx: Option<mpsc::Receiver<Vec<u8>>>) -> String {
    rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
