//! A bounded record of recent commands for the log bundle (`commands.json`): what ran, when,
//! for how long and how it ended.
//!
//! Parameters are never recorded (they can hold a config drive, a rescue password or
//! credentials in URLs), nor is what results and errors echo of them: step arguments, image
//! and node information, URLs beyond their host (see [`super::scrub`]). Large results (an
//! inventory, a log bundle) are shortened to their size, so the record stays small and safe
//! to hand to an operator.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use super::result::{CommandError, CommandResult, CommandStatus};
use super::scrub;

/// How many commands are kept (oldest dropped first).
pub const HISTORY_LEN: usize = 64;

/// Results larger than this (serialized) are replaced by their size.
pub const MAX_RESULT_BYTES: usize = 4096;

/// One command as the log bundle shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The command's id (as in `GET /v1/commands/`).
    pub id: String,
    /// Full command name, `<extension>.<command>`.
    pub command_name: String,
    /// Current status.
    pub command_status: CommandStatus,
    /// Start, seconds since the epoch.
    pub started_at: f64,
    /// End, seconds since the epoch, once finished.
    pub finished_at: Option<f64>,
    /// The error, when it failed.
    pub command_error: Option<CommandError>,
    /// The result, or `"<N bytes omitted>"` when it is large.
    pub command_result: Option<Value>,
}

/// One recorded command and, while it runs, the parameter values to keep out of its record.
struct Slot {
    entry: HistoryEntry,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("entry", &self.entry)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// The recent commands, oldest first.
#[derive(Debug, Default)]
pub struct CommandHistory {
    entries: Mutex<VecDeque<Slot>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What the history keeps of a result: `"<N bytes omitted>"` when it is large, else the
/// result without what it echoes of the parameters.
fn recorded(v: &Value, secrets: &[String]) -> Value {
    let len = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if len > MAX_RESULT_BYTES {
        Value::String(format!("<{len} bytes omitted>"))
    } else {
        scrub::value(v, secrets)
    }
}

impl CommandHistory {
    fn with<T>(&self, f: impl FnOnce(&mut VecDeque<Slot>) -> T) -> T {
        match self.entries.lock() {
            Ok(mut e) => f(&mut e),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Records that `full_name` started as command `id` with `params` (which are not
    /// recorded; their sensitive values are kept out of the command's result and error).
    pub fn started(&self, id: &str, full_name: &str, params: &Map<String, Value>) {
        let entry = HistoryEntry {
            id: id.to_string(),
            command_name: full_name.to_string(),
            command_status: CommandStatus::Running,
            started_at: now(),
            finished_at: None,
            command_error: None,
            command_result: None,
        };
        self.with(|e| {
            if e.len() >= HISTORY_LEN {
                e.pop_front();
            }
            e.push_back(Slot {
                entry,
                secrets: scrub::param_secrets(params),
            });
        });
    }

    /// Records how command `result.id` ended.
    pub fn finished(&self, result: &CommandResult) {
        self.with(|e| {
            if let Some(slot) = e.iter_mut().rev().find(|s| s.entry.id == result.id) {
                let secrets = std::mem::take(&mut slot.secrets);
                let entry = &mut slot.entry;
                entry.command_status = result.command_status;
                entry.finished_at = Some(now());
                entry.command_error = result.command_error.as_ref().map(|err| CommandError {
                    details: scrub::text(&err.details, &secrets),
                    ..err.clone()
                });
                entry.command_result = result
                    .command_result
                    .as_ref()
                    .map(|v| recorded(v, &secrets));
            }
        });
    }

    /// The recorded commands, oldest first.
    pub fn entries(&self) -> Vec<HistoryEntry> {
        self.with(|e| e.iter().map(|s| s.entry.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::result::CommandOutput;

    #[test]
    fn keeps_the_newest_and_shortens_big_results() {
        let h = CommandHistory::default();
        for i in 0..HISTORY_LEN + 3 {
            h.started(&format!("id{i}"), "standby.sync", &Map::new());
        }
        let e = h.entries();
        assert_eq!(e.len(), HISTORY_LEN);
        assert_eq!(e[0].id, "id3");

        let mut r = CommandResult::running("collect_system_logs");
        h.started(&r.id, "log.collect_system_logs", &Map::new());
        let big = serde_json::json!({"system_logs": "x".repeat(10_000)});
        let big_len = serde_json::to_vec(&big)
            .map(|b| b.len())
            .unwrap_or_default();
        r.finish(Ok(CommandOutput::Json(big)), false);
        h.finished(&r);
        let last = h.entries().pop().expect("an entry");
        assert_eq!(last.command_status, CommandStatus::Succeeded);
        assert!(last.finished_at.is_some());
        assert_eq!(
            last.command_result,
            Some(Value::String(format!("<{big_len} bytes omitted>")))
        );

        let mut f = CommandResult::running("prepare_image");
        h.started(&f.id, "standby.prepare_image", &Map::new());
        f.finish(Err(CommandError::execution("disk full")), true);
        h.finished(&f);
        let last = h.entries().pop().expect("an entry");
        assert_eq!(last.command_status, CommandStatus::Failed);
        assert!(
            last.command_error
                .as_ref()
                .is_some_and(|e| e.details.contains("disk full"))
        );
    }
}
