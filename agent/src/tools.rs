//! The external tools the agent runs (`nvme`, `hdparm`, `efibootmgr`, `grub-install`, `mount`…),
//! behind one trait so the tests can answer with canned outputs.
//!
//! [`SystemTools`] runs the real programs with `LC_ALL=C` through [`hardware_managers::process`]:
//! in their own process group, with a deadline. A tool still running when its timeout expires
//! is killed together with anything it started, and the step reports the timeout instead of
//! hanging.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hardware_managers::process::{self, Capture, Limits, Lingering, RunError};

/// Directories searched after `$PATH` (a ramdisk's PATH may lack the sbin directories).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// At most this much of a tool's stdout and stderr is kept.
const MAX_OUTPUT: usize = 4 << 20;

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

/// Why a tool produced no [`ToolOutput`].
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
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {s})")
    }
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

/// Runs `program args…` and returns its stdout, or an error naming the command, its exit
/// status and its stderr (what an operator needs to act on a failure).
pub fn run_ok(
    tools: &dyn Tools,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    let out = tools
        .run(program, args, timeout)
        .map_err(|e| e.to_string())?;
    if out.success() {
        return Ok(out.stdout);
    }
    let status = match out.code {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_string(),
    };
    let detail = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    Err(format!(
        "`{}` failed ({status}): {}",
        command_line(program, args),
        if detail.is_empty() {
            "no output"
        } else {
            detail
        }
    ))
}

/// The real tools of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTools;

/// The full path of `tool`, if it is installed.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

impl Tools for SystemTools {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ToolOutput, ToolError> {
        let exe = find_tool(program).ok_or_else(|| ToolError::NotFound(program.to_string()))?;
        let shown = command_line(program, args);
        tracing::debug!(command = %shown, timeout_s = timeout.as_secs(), "running");
        let mut cmd = Command::new(exe);
        cmd.args(args).env("LC_ALL", "C");
        let limits = Limits::with_timeout(timeout).keeping(MAX_OUTPUT);
        // Something the tool started may still hold the pipes: do not wait for it forever.
        let capture = Capture {
            lingering: Lingering::Kill,
            ..Capture::default()
        };
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match process::run_with(cmd, None, limits, capture) {
            Ok(f) => Ok(ToolOutput {
                code: f.status.code(),
                stdout: text(&f.stdout.bytes),
                stderr: text(&f.stderr.bytes),
            }),
            Err(RunError::TimedOut { after, stderr }) => Err(ToolError::TimedOut {
                command: shown,
                after,
                stderr: text(&stderr.bytes),
            }),
            Err(RunError::Spawn(e)) => Err(ToolError::Spawn {
                program: program.to_string(),
                message: e.to_string(),
            }),
            Err(RunError::Wait(e)) => Err(ToolError::Spawn {
                program: program.to_string(),
                message: format!("waiting for it failed: {e}"),
            }),
        }
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
