//! Running `qemu-img` as IPA does: bounded address space, few malloc arenas, retries when the
//! kernel refuses memory, stderr kept for the error, progress read from stdout.
//!
//! This is the one run that does not go through the agent's runner ([`crate::tools`]): its
//! progress is parsed from stdout while it runs and its peak RSS is read with `wait4(2)`,
//! neither of which the runner's bounded capture offers. It has no deadline (a conversion
//! takes as long as the image needs). The program is found with the shared lookup
//! ([`hardware_managers::process::command`]).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Instant;

use nix::libc;
use nix::sys::resource::{Resource, rlim_t, setrlimit};

use super::QemuError;
use super::options::ConvertOptions;

/// Most stderr kept (its tail) for an error message.
const STDERR_KEEP: usize = 16 * 1024;
/// Most stdout kept when it is the answer (`qemu-img info`).
const STDOUT_KEEP: usize = 4 << 20;
/// Messages after which IPA tries again.
const RETRY_ON: &[&str] = &["Resource temporarily unavailable", "Cannot allocate memory"];

/// What a finished `qemu-img` run left.
#[derive(Debug)]
pub(super) struct Finished {
    /// Its standard output, when asked to keep it.
    pub stdout: Vec<u8>,
    /// Peak resident set of the `qemu-img` process, in KiB.
    pub max_rss_kib: u64,
}

/// Runs `qemu-img <args>`; `action` names it in errors ("convert", "info"). With `progress`
/// set, stdout is parsed for `-p` progress instead of kept.
pub(super) fn run(
    opts: &ConvertOptions,
    action: &'static str,
    args: &[OsString],
    progress: Option<&dyn Fn(f64)>,
) -> Result<Finished, QemuError> {
    let attempts = opts.attempts.max(1);
    let mut attempt = 1;
    loop {
        match run_once(opts, action, args, progress) {
            Err(QemuError::Failed { stderr, status, .. })
                if attempt < attempts && RETRY_ON.iter().any(|m| stderr.contains(m)) =>
            {
                tracing::warn!(action, attempt, %status, %stderr, "qemu-img ran out of memory; trying again");
                attempt += 1;
                std::thread::sleep(opts.retry_delay);
            }
            other => return other,
        }
    }
}

fn run_once(
    opts: &ConvertOptions,
    action: &'static str,
    args: &[OsString],
    progress: Option<&dyn Fn(f64)>,
) -> Result<Finished, QemuError> {
    let mut cmd = hardware_managers::process::command(&opts.qemu_img);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = opts.malloc_arena_max {
        cmd.env("MALLOC_ARENA_MAX", n.to_string());
    }
    if let Some(limit) = opts.address_space_limit {
        let limit = limit as rlim_t;
        // SAFETY: the closure runs in the forked child before exec; it only calls setrlimit(2),
        // which is async-signal-safe, on a value computed before the fork, and allocates nothing
        // (nix's wrapper passes a stack struct and maps the return value to an `Errno`).
        unsafe {
            cmd.pre_exec(move || {
                setrlimit(Resource::RLIMIT_AS, limit, limit).map_err(std::io::Error::from)
            });
        }
    }
    let started = Instant::now();
    tracing::debug!(program = %opts.qemu_img.display(), ?args, "running qemu-img");
    let mut child = cmd.spawn().map_err(|source| QemuError::Spawn {
        program: opts.qemu_img.display().to_string(),
        source,
    })?;

    let stderr = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || keep_tail(stderr));
    let stdout = read_stdout(&mut child, progress);
    let (status, max_rss_kib) = wait(&child).map_err(|source| QemuError::Io {
        what: "waiting for qemu-img".into(),
        source,
    })?;
    let stderr = stderr_reader.join().unwrap_or_default();
    let stdout = stdout.map_err(|source| QemuError::Io {
        what: "reading qemu-img's output".into(),
        source,
    })?;

    tracing::debug!(action, %status, max_rss_kib, elapsed_s = started.elapsed().as_secs_f64(), "qemu-img finished");
    if !status.success() {
        return Err(QemuError::Failed {
            action,
            status: describe(status),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(Finished {
        stdout,
        max_rss_kib,
    })
}

/// Reads stdout to its end: parsed for progress, or kept (bounded).
fn read_stdout(child: &mut Child, progress: Option<&dyn Fn(f64)>) -> std::io::Result<Vec<u8>> {
    let Some(mut out) = child.stdout.take() else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let Some(report) = progress else {
            if kept.len() + n > STDOUT_KEEP {
                return Err(std::io::Error::other("qemu-img printed more than 4 MiB"));
            }
            kept.extend_from_slice(&buf[..n]);
            continue;
        };
        for &b in &buf[..n] {
            if b == b'\r' || b == b'\n' {
                if let Some(pct) = parse_progress(&line) {
                    report(pct);
                }
                line.clear();
            } else if line.len() < 256 {
                line.push(b);
            }
        }
    }
    Ok(kept)
}

/// `    (42.17/100%)` → 42.17.
pub(super) fn parse_progress(line: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let inner = s.strip_prefix('(')?.strip_suffix("/100%)")?;
    inner
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
}

/// Reaps the child with wait4(2) to learn its peak RSS as well as its status (nix has no
/// `wait4`; its `waitpid` returns no resource usage).
fn wait(child: &Child) -> std::io::Result<(ExitStatus, u64)> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: an all-zero rusage is a valid value of this plain C struct. `pid` is our own
        // unreaped child (std never waits on it by itself: we neither call `Child::wait` nor
        // drop a handle that would); the pointers are to live locals.
        let (r, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let r = libc::wait4(pid, &mut status, 0, &mut usage);
            (r, usage)
        };
        if r == pid {
            return Ok((
                ExitStatus::from_raw(status),
                u64::try_from(usage.ru_maxrss).unwrap_or(0),
            ));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn keep_tail(stream: Option<impl Read>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
    }
    if kept.len() > STDERR_KEEP {
        kept.drain(..kept.len() - STDERR_KEEP);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(parse_progress(b"    (42.17/100%)"), Some(42.17));
        assert_eq!(parse_progress(b"(100.00/100%)"), Some(100.0));
        assert_eq!(parse_progress(b"(0.00/100%)"), Some(0.0));
        assert_eq!(parse_progress(b"qemu-img: error"), None);
        assert_eq!(parse_progress(b"(500/100%)"), None);
    }

    #[test]
    fn stderr_keeps_its_tail() {
        let long = vec![b'x'; 100_000];
        let mut input = long.clone();
        input.extend_from_slice(b"the end");
        let kept = keep_tail(Some(&input[..]));
        assert_eq!(kept.len(), STDERR_KEEP);
        assert!(kept.ends_with("the end"));
    }
}
