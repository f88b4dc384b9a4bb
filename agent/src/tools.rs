//! The one way the agent runs an external program, and the one tool lookup.
//!
//! Every run goes through [`Invocation`], on top of [`hardware_managers::process`]: the
//! program is looked up with [`find_tool`] (`$PATH`, then the sbin directories a ramdisk's
//! `PATH` may lack), runs with `LC_ALL=C` in its own process group with a deadline, and its
//! command line is logged. A program still running when its timeout expires is killed
//! together with anything it started; the error then names the command and carries the tail
//! of its stderr, as does the error for a non-zero exit ([`Invocation::run_ok`]).
//!
//! The tools the deploy and clean steps run (`nvme`, `hdparm`, `efibootmgr`, `grub-install`,
//! `mount`…) are reached through the [`Tools`] trait, so unit tests can answer with canned
//! outputs; [`SystemTools`], the real implementation, is an [`Invocation`].
//!
//! `qemu-img` (`image::qemu::run`) is the one documented exception: it streams its progress
//! from stdout and reads the child's peak RSS with `wait4`, which the bounded capture here does
//! not offer; it still finds its program with [`find_tool`].

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use hardware_managers::process::{self, Capture, Keep, Limits, Lingering, RunError};

pub use hardware_managers::process::find_tool;

/// At most this much of a tool's stdout and stderr is kept (by default).
const MAX_OUTPUT: usize = 4 << 20;

/// How much of a stderr tail goes into an error message.
pub const STDERR_IN_ERRORS: usize = 4096;

/// One run of an external program: what to run, for how long, what to keep of its output.
#[derive(Debug, Clone)]
pub struct Invocation {
    program: OsString,
    args: Vec<OsString>,
    timeout: Duration,
    cwd: Option<PathBuf>,
    max_stdout: usize,
    max_stderr: usize,
    stderr_keep: Keep,
}

/// A run that ended on its own (whatever its exit status).
#[derive(Debug)]
pub struct Ran {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output (at most the kept bytes).
    pub stdout: Vec<u8>,
    /// Its standard error (the head, or the tail when asked).
    pub stderr: Vec<u8>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Ran {
    /// Its standard output as (lossy) UTF-8.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Invocation {
    /// `program` (a name looked up with [`find_tool`], or a path), killed after `timeout`.
    pub fn new(program: impl AsRef<OsStr>, timeout: Duration) -> Self {
        Invocation {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            timeout,
            cwd: None,
            max_stdout: MAX_OUTPUT,
            max_stderr: MAX_OUTPUT,
            stderr_keep: Keep::Head,
        }
    }

    /// Adds the arguments `args`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs it in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Keeps at most `max` bytes of stdout.
    pub fn keep_stdout(mut self, max: usize) -> Self {
        self.max_stdout = max;
        self
    }

    /// Keeps the last `max` bytes of stderr (progress chatter first, the error last).
    pub fn keep_stderr_tail(mut self, max: usize) -> Self {
        self.max_stderr = max;
        self.stderr_keep = Keep::Tail;
        self
    }

    /// The program and its arguments as one line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it to its end or its deadline.
    ///
    /// # Errors
    /// [`ToolError::NotFound`], [`ToolError::Spawn`], or [`ToolError::TimedOut`] (its process
    /// group was killed).
    pub fn run(&self) -> Result<Ran, ToolError> {
        let name = self.program.to_string_lossy().into_owned();
        let exe = find_tool(&self.program).ok_or_else(|| ToolError::NotFound(name.clone()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args(&self.args).env("LC_ALL", "C");
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let limits = Limits {
            timeout: self.timeout,
            max_stdout: self.max_stdout,
            max_stderr: self.max_stderr,
        };
        // Something the tool started may still hold the pipes: it goes with the group.
        let capture = Capture {
            stderr: self.stderr_keep,
            lingering: Lingering::Kill,
            ..Capture::default()
        };
        let started = Instant::now();
        match process::run_with(cmd, None, limits, capture) {
            Ok(f) => Ok(Ran {
                status: f.status,
                stdout: f.stdout.bytes,
                stderr: f.stderr.bytes,
                elapsed: started.elapsed(),
            }),
            Err(RunError::TimedOut { after, stderr }) => Err(ToolError::TimedOut {
                command: self.command_line(),
                after,
                stderr: String::from_utf8_lossy(&stderr.bytes).into_owned(),
            }),
            Err(RunError::Spawn(e)) => Err(ToolError::Spawn {
                program: name,
                message: e.to_string(),
            }),
            Err(RunError::Wait(e)) => Err(ToolError::Spawn {
                program: name,
                message: format!("waiting for it failed: {e}"),
            }),
        }
    }

    /// [`Invocation::run`], requiring exit status 0.
    ///
    /// # Errors
    /// As [`Invocation::run`], and [`ToolError::Failed`] (with its stderr) for another status.
    pub fn run_ok(&self) -> Result<Ran, ToolError> {
        let ran = self.run()?;
        if ran.status.success() {
            return Ok(ran);
        }
        Err(ToolError::failed(
            self.command_line(),
            ran.status.code(),
            &String::from_utf8_lossy(&ran.stdout),
            &String::from_utf8_lossy(&ran.stderr),
        ))
    }
}

/// How a tool that ran to the end finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl ToolOutput {
    /// A successful run printing `stdout`.
    pub fn ok(stdout: &str) -> Self {
        ToolOutput {
            code: Some(0),
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    /// A run exiting with `code` and printing `stderr`.
    pub fn failed(code: i32, stderr: &str) -> Self {
        ToolOutput {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.to_string(),
        }
    }

    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a tool produced no [`ToolOutput`] (or, from [`Invocation::run_ok`], failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The program is not installed.
    #[error("{0} is not installed")]
    NotFound(String),
    /// It could not be started.
    #[error("cannot start {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// It ran past its deadline and was killed.
    #[error("`{command}` did not finish within {}s and was killed{}", .after.as_secs(), stderr_suffix(.stderr))]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        after: Duration,
        /// What it wrote to stderr before the kill.
        stderr: String,
    },
    /// It exited with another status than 0.
    #[error("`{command}` failed ({status}): {detail}")]
    Failed {
        /// The command line.
        command: String,
        /// `exit status N`, or `killed by a signal`.
        status: String,
        /// Its stderr (the tail), else its stdout, else `no output`.
        detail: String,
    },
}

impl ToolError {
    /// [`ToolError::Failed`] for `command` exiting with `code` after printing `stdout` and
    /// `stderr`.
    fn failed(command: String, code: Option<i32>, stdout: &str, stderr: &str) -> Self {
        let status = match code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let detail = if stderr.trim().is_empty() {
            stdout.trim()
        } else {
            stderr.trim()
        };
        ToolError::Failed {
            command,
            status,
            detail: if detail.is_empty() {
                "no output".to_string()
            } else {
                tail_text(detail.as_bytes(), STDERR_IN_ERRORS)
            },
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let s = tail_text(stderr.as_bytes(), STDERR_IN_ERRORS);
    if s.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {s})")
    }
}

/// The last `max` bytes of `bytes` as trimmed text (cut on a character boundary, marked).
pub fn tail_text(bytes: &[u8], max: usize) -> String {
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

/// Runs external programs.
pub trait Tools: Sync {
    /// Runs `program args…`, killing it after `timeout`.
    fn run(&self, program: &str, args: &[&str], timeout: Duration)
    -> Result<ToolOutput, ToolError>;

    /// Whether `program` is installed.
    fn installed(&self, program: &str) -> bool;
}

/// `program args…` as one line, for messages.
pub fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args…` and returns its stdout, or a [`ToolError::Failed`] naming the command,
/// its exit status and its stderr (what an operator needs to act on a failure).
///
/// # Errors
/// As [`Tools::run`], and [`ToolError::Failed`] for a non-zero exit.
pub fn run_checked(
    tools: &dyn Tools,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, ToolError> {
    let out = tools.run(program, args, timeout)?;
    if out.success() {
        return Ok(out.stdout);
    }
    Err(ToolError::failed(
        command_line(program, args),
        out.code,
        &out.stdout,
        &out.stderr,
    ))
}

/// [`run_checked`] with the error as its message.
///
/// # Errors
/// The message of [`run_checked`]'s error.
pub fn run_ok(
    tools: &dyn Tools,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    run_checked(tools, program, args, timeout).map_err(|e| e.to_string())
}

/// The real tools of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTools;

impl Tools for SystemTools {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ToolOutput, ToolError> {
        let ran = Invocation::new(program, timeout).args(args).run()?;
        Ok(ToolOutput {
            code: ran.status.code(),
            stdout: ran.stdout_text(),
            stderr: String::from_utf8_lossy(&ran.stderr).into_owned(),
        })
    }

    fn installed(&self, program: &str) -> bool {
        find_tool(program).is_some()
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! Canned tool answers for the unit tests.

    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::{ToolError, ToolOutput, Tools, command_line};

    /// Answers each command line from a queue of canned results (the last one repeats) and
    /// records every call in order. Unknown command lines fail the way a missing tool does.
    #[derive(Debug, Default)]
    pub struct FakeTools {
        answers: Mutex<HashMap<String, VecDeque<Result<ToolOutput, ToolError>>>>,
        calls: Mutex<Vec<String>>,
        missing: Vec<String>,
        /// `(substring, answer)`: for command lines without an exact answer.
        patterns: Vec<(String, ToolOutput)>,
    }

    impl FakeTools {
        /// No answers yet.
        pub fn new() -> Self {
            Self::default()
        }

        /// Programs reported as not installed.
        pub fn without(mut self, programs: &[&str]) -> Self {
            self.missing = programs.iter().map(|p| p.to_string()).collect();
            self
        }

        /// Queues `answer` for the command line `cmd` (program and arguments, space-separated).
        pub fn on(self, cmd: &str, answer: Result<ToolOutput, ToolError>) -> Self {
            if let Ok(mut a) = self.answers.lock() {
                a.entry(cmd.to_string()).or_default().push_back(answer);
            }
            self
        }

        /// Queues a successful run of `cmd` printing `stdout`.
        pub fn ok(self, cmd: &str, stdout: &str) -> Self {
            self.on(cmd, Ok(ToolOutput::ok(stdout)))
        }

        /// Answers every command line containing `part` that has no exact answer (the first
        /// matching pattern wins; an empty `part` matches everything).
        pub fn on_contains(mut self, part: &str, answer: ToolOutput) -> Self {
            self.patterns.push((part.to_string(), answer));
            self
        }

        /// Every command line run so far, in order.
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }
    }

    impl Tools for FakeTools {
        fn run(
            &self,
            program: &str,
            args: &[&str],
            _timeout: Duration,
        ) -> Result<ToolOutput, ToolError> {
            let line = command_line(program, args);
            if let Ok(mut c) = self.calls.lock() {
                c.push(line.clone());
            }
            if !self.installed(program) {
                return Err(ToolError::NotFound(program.to_string()));
            }
            let mut answers = self
                .answers
                .lock()
                .map_err(|_| ToolError::NotFound(program.to_string()))?;
            match answers.get_mut(&line) {
                Some(q) if q.len() > 1 => q.pop_front().unwrap_or(Ok(ToolOutput::default())),
                Some(q) => q.front().cloned().unwrap_or(Ok(ToolOutput::default())),
                None => Ok(self
                    .patterns
                    .iter()
                    .find(|(part, _)| line.contains(part.as_str()))
                    .map(|(_, answer)| answer.clone())
                    .unwrap_or_else(|| {
                        ToolOutput::failed(127, &format!("no canned answer for `{line}`"))
                    })),
            }
        }

        fn installed(&self, program: &str) -> bool {
            !self.missing.iter().any(|m| m == program)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn runs_and_reports_failures_with_stderr() {
        let t = SystemTools;
        let out = run_ok(&t, "sh", &["-c", "echo hi"], Duration::from_secs(10));
        assert_eq!(out.as_deref(), Ok("hi\n"));
        let err = run_ok(
            &t,
            "sh",
            &["-c", "echo bad >&2; exit 3"],
            Duration::from_secs(10),
        );
        assert_eq!(
            err,
            Err("`sh -c echo bad >&2; exit 3` failed (exit status 3): bad".to_string())
        );
        assert!(matches!(
            t.run("no-such-tool-xyz", &[], Duration::from_secs(1)),
            Err(ToolError::NotFound(_))
        ));
    }

    #[test]
    fn invocation_runs_in_a_directory_and_keeps_the_stderr_tail() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ran = Invocation::new("sh", Duration::from_secs(10))
            .args(["-c", "pwd; seq 1 2000 >&2"])
            .current_dir(dir.path())
            .keep_stderr_tail(5)
            .run_ok()?;
        assert_eq!(
            ran.stdout_text().trim(),
            dir.path().canonicalize()?.to_string_lossy()
        );
        assert_eq!(ran.stderr, b"2000\n");
        let err = Invocation::new("sh", Duration::from_secs(10))
            .args(["-c", "echo out; exit 4"])
            .run_ok()
            .err();
        assert_eq!(
            err,
            Some(ToolError::Failed {
                command: "sh -c echo out; exit 4".into(),
                status: "exit status 4".into(),
                detail: "out".into(),
            })
        );
        let missing = dir.path().join("missing-tool");
        assert_eq!(
            Invocation::new(&missing, Duration::from_secs(1))
                .run()
                .err(),
            Some(ToolError::NotFound(missing.display().to_string()))
        );
        Ok(())
    }

    #[test]
    fn timeout_errors_quote_only_the_stderr_tail() {
        let e = ToolError::TimedOut {
            command: "x".into(),
            after: Duration::from_secs(2),
            stderr: format!("{}the end", "y".repeat(10_000)),
        };
        let text = e.to_string();
        assert!(text.starts_with("`x` did not finish within 2s and was killed (stderr: [...] y"));
        assert!(
            text.ends_with("the end)") && text.len() < 4200,
            "{}",
            text.len()
        );
    }

    #[test]
    fn kills_on_timeout() {
        let start = Instant::now();
        let r = SystemTools.run(
            "sh",
            &["-c", "echo started >&2; sleep 30"],
            Duration::from_millis(300),
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        match r {
            Err(ToolError::TimedOut { stderr, .. }) => assert_eq!(stderr, "started\n"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}
