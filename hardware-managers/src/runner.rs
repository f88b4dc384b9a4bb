//! Running the managers' external tools through a replaceable [`CommandRunner`].
//!
//! Production code uses [`SystemRunner`] (which goes through [`process::run`]); tests hand a
//! manager a [`RecordingRunner`], which answers from a closure and remembers every command
//! line, so the IPMI, `modprobe` and vendor logic is tested without the tools or hardware.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::{self, Limits};

/// What a program that ran produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ran {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Its standard output, decoded lossily.
    pub stdout: String,
    /// Its standard error, decoded lossily.
    pub stderr: String,
}

impl Ran {
    /// A successful run printing `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Ran {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A failed run (exit code `code`) printing `stderr`.
    pub fn failed(code: i32, stderr: impl Into<String>) -> Self {
        Ran {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a program did not run to completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// The program is not installed.
    #[error("{0}: not found")]
    NotFound(String),
    /// The deadline passed and it was killed.
    #[error("{0}: timed out")]
    TimedOut(String),
    /// It could not be started or waited for.
    #[error("{program}: {message}")]
    Failed {
        /// The program.
        program: String,
        /// What went wrong.
        message: String,
    },
}

/// Runs a program with arguments within a time limit.
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs `program` with `args`, killing it after `timeout`.
    ///
    /// # Errors
    /// [`RunnerError`] when the program could not run to completion; a non-zero exit is an
    /// `Ok` [`Ran`].
    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Ran, RunnerError>;
}

/// The real system: [`process::run`] with the tool found by [`process::command`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Ran, RunnerError> {
        let mut cmd = process::command(program);
        cmd.args(args);
        match process::run(cmd, None, Limits::with_timeout(timeout).keeping(1 << 20)) {
            Ok(f) => Ok(Ran {
                code: f.status.code(),
                stdout: String::from_utf8_lossy(&f.stdout.bytes).into_owned(),
                stderr: String::from_utf8_lossy(&f.stderr.bytes).into_owned(),
            }),
            Err(e) if e.is_not_found() => Err(RunnerError::NotFound(program.to_string())),
            Err(process::RunError::TimedOut { .. }) => {
                Err(RunnerError::TimedOut(program.to_string()))
            }
            Err(e) => Err(RunnerError::Failed {
                program: program.to_string(),
                message: e.to_string(),
            }),
        }
    }
}

/// The answer function of a [`RecordingRunner`]: `(program, args) → outcome`.
pub type Answerer = dyn Fn(&str, &[&str]) -> Result<Ran, RunnerError> + Send + Sync;

/// A runner for tests: answers from a closure and records every command line
/// (`program arg1 arg2 ...`).
#[derive(Clone)]
pub struct RecordingRunner {
    answer: Arc<Answerer>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for RecordingRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingRunner")
            .field("calls", &self.calls())
            .finish()
    }
}

impl RecordingRunner {
    /// A runner answering with `answer`.
    pub fn new(
        answer: impl Fn(&str, &[&str]) -> Result<Ran, RunnerError> + Send + Sync + 'static,
    ) -> Self {
        RecordingRunner {
            answer: Arc::new(answer),
            calls: Arc::default(),
        }
    }

    /// A runner where every program succeeds silently.
    pub fn succeeding() -> Self {
        Self::new(|_, _| Ok(Ran::ok("")))
    }

    /// The command lines run so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl RecordingRunner {
    /// A runner replaying captured ipmitool answers from `dir` (the format of
    /// `hardware-managers/tests/fixtures/bmc/*`, which IPA's oracle reads too): `ipmitool a b c`
    /// prints `a_b_c.out` to stdout and `a_b_c.err` to stderr and exits with `a_b_c.rc` (default
    /// 0). Without `a_b_c.out` it fails (exit 1) with `Invalid channel: <c>`; with a file
    /// `NO_IPMITOOL` in `dir`, ipmitool is not installed. Other programs succeed silently.
    pub fn replaying(dir: impl Into<PathBuf>) -> Self {
        let dir: PathBuf = dir.into();
        Self::new(move |program, args| {
            if program != "ipmitool" {
                return Ok(Ran::ok(""));
            }
            if dir.join("NO_IPMITOOL").exists() {
                return Err(RunnerError::NotFound(program.to_string()));
            }
            let name = args.join("_");
            let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).ok();
            let Some(stdout) = read("out") else {
                let channel = args.get(2).copied().unwrap_or_default();
                return Ok(Ran::failed(1, format!("Invalid channel: {channel}\n")));
            };
            Ok(Ran {
                code: Some(read("rc").and_then(|c| c.trim().parse().ok()).unwrap_or(0)),
                stdout,
                stderr: read("err").unwrap_or_default(),
            })
        })
    }
}

impl CommandRunner for RecordingRunner {
    fn run(&self, program: &str, args: &[&str], _timeout: Duration) -> Result<Ran, RunnerError> {
        let line = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(line);
        }
        (self.answer)(program, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_runner_records_and_answers() {
        let r = RecordingRunner::new(|p, a| match (p, a) {
            ("modprobe", ["ipmi_si"]) => Ok(Ran::failed(1, "not found")),
            _ => Ok(Ran::ok("x")),
        });
        let t = Duration::from_secs(1);
        assert!(!r.run("modprobe", &["ipmi_si"], t).unwrap().success());
        assert_eq!(r.run("echo", &["a", "b"], t).unwrap().stdout, "x");
        assert_eq!(r.calls(), vec!["modprobe ipmi_si", "echo a b"]);
    }

    #[test]
    fn system_runner_reports_missing_programs_and_exit_codes() {
        let t = Duration::from_secs(10);
        assert_eq!(
            SystemRunner.run("/nonexistent/ironic-agent-tool", &[], t),
            Err(RunnerError::NotFound(
                "/nonexistent/ironic-agent-tool".into()
            ))
        );
        let ran = SystemRunner
            .run("sh", &["-c", "echo out; echo err >&2; exit 3"], t)
            .unwrap();
        assert_eq!(ran.code, Some(3));
        assert_eq!(ran.stdout, "out\n");
        assert_eq!(ran.stderr, "err\n");
    }
}
