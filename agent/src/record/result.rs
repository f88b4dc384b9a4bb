//! The five-key command result and the serialised agent error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use hardware_managers::{HardwareError, IpaClass, IpaError};

/// `command_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandStatus {
    /// Still running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// A step ran against different hardware-manager versions than Ironic cached.
    CleanVersionMismatch,
}

impl CommandStatus {
    /// Whether the command has finished.
    pub fn is_finished(self) -> bool {
        self != CommandStatus::Running
    }
}

/// A serialised agent exception: `{"type", "code", "message", "details"}`, IPA's
/// `RESTError.serialize()`.
///
/// This is the wire shape only: it is made from an [`IpaError`] (`From`), the one place where
/// the typed vocabulary becomes strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}: {details}")]
pub struct CommandError {
    /// IPA's exception class name (Ironic fails hard on `TypeError`, so never use that).
    #[serde(rename = "type")]
    pub kind: String,
    /// HTTP-ish status code of the error class.
    pub code: u16,
    /// The class message.
    pub message: String,
    /// The instance detail.
    pub details: String,
}

impl From<IpaError> for CommandError {
    fn from(e: IpaError) -> Self {
        CommandError {
            kind: e.name().to_string(),
            code: e.code(),
            message: e.message().to_string(),
            details: e.details().to_string(),
        }
    }
}

impl From<&HardwareError> for CommandError {
    fn from(e: &HardwareError) -> Self {
        e.to_ipa_error().into()
    }
}

impl CommandError {
    /// An error of IPA class `class` with `details`.
    pub fn ipa(class: IpaClass, details: impl Into<String>) -> Self {
        IpaError::new(class, details).into()
    }

    /// IPA's `CommandExecutionError`: any failure of an async command without a class of its own.
    pub fn execution(details: impl Into<String>) -> Self {
        Self::ipa(IpaClass::CommandExecutionError, details)
    }

    /// `InvalidCommandParamsError` (HTTP 400 at dispatch).
    pub fn invalid_params(details: impl Into<String>) -> Self {
        Self::ipa(IpaClass::InvalidCommandParamsError, details)
    }

    /// `VersionMismatch`: produces status `CLEAN_VERSION_MISMATCH`.
    pub fn version_mismatch(details: impl Into<String>) -> Self {
        Self::ipa(IpaClass::VersionMismatch, details)
    }

    /// Whether this error is of class `class`.
    pub fn is(&self, class: IpaClass) -> bool {
        self.kind == class.name()
    }

    /// Whether this error means a version mismatch.
    pub fn is_version_mismatch(&self) -> bool {
        self.is(IpaClass::VersionMismatch)
    }

    /// Maps a hardware-layer error to its IPA class, keeping the detail text.
    pub fn from_hardware(e: &HardwareError) -> Self {
        e.into()
    }
}

/// What a command handler returns on success.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutput {
    /// A JSON value stored as `command_result` (`Null` stays `null`).
    Json(Value),
    /// A plain string; stored as `{"result": "<command>: s"}` (async) or `{"result": "s"}` (sync).
    Text(String),
}

/// One command result, as `GET /v1/commands/` shows it (exactly five keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// UUID4 of this command.
    pub id: String,
    /// Short command name (after the dot).
    pub command_name: String,
    /// Status.
    pub command_status: CommandStatus,
    /// Error, when FAILED / CLEAN_VERSION_MISMATCH.
    pub command_error: Option<CommandError>,
    /// Result, when SUCCEEDED.
    pub command_result: Option<Value>,
}

impl CommandResult {
    /// A new RUNNING result for the short name `command_name`.
    pub fn running(command_name: &str) -> Self {
        CommandResult {
            id: uuid::Uuid::new_v4().to_string(),
            command_name: command_name.to_string(),
            command_status: CommandStatus::Running,
            command_error: None,
            command_result: None,
        }
    }

    /// Records the outcome of the command.
    pub fn finish(&mut self, outcome: Result<CommandOutput, CommandError>, is_async: bool) {
        match outcome {
            Ok(CommandOutput::Json(Value::Null)) => {
                self.command_status = CommandStatus::Succeeded;
                self.command_result = None;
            }
            Ok(CommandOutput::Json(v)) => {
                self.command_status = CommandStatus::Succeeded;
                self.command_result = Some(v);
            }
            Ok(CommandOutput::Text(s)) => {
                let text = if is_async {
                    format!("{}: {s}", self.command_name)
                } else {
                    s
                };
                self.command_status = CommandStatus::Succeeded;
                self.command_result = Some(serde_json::json!({ "result": text }));
            }
            Err(e) => {
                self.command_status = if e.is_version_mismatch() {
                    CommandStatus::CleanVersionMismatch
                } else {
                    CommandStatus::Failed
                };
                self.command_error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_ipa() -> anyhow::Result<()> {
        let mut r = CommandResult::running("echo");
        let v = serde_json::to_value(&r)?;
        let keys: Vec<_> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 5);
        assert_eq!(v["command_status"], "RUNNING");
        assert_eq!(v["command_result"], Value::Null);

        r.finish(Ok(CommandOutput::Text("done".into())), true);
        assert_eq!(
            serde_json::to_value(&r)?["command_result"]["result"],
            "echo: done"
        );
        let mut s = CommandResult::running("sync");
        s.finish(Ok(CommandOutput::Text("done".into())), false);
        assert_eq!(
            serde_json::to_value(&s)?["command_result"]["result"],
            "done"
        );

        let mut f = CommandResult::running("slowfail");
        f.finish(Err(CommandError::execution("async plain fail")), true);
        let v = serde_json::to_value(&f)?;
        assert_eq!(v["command_status"], "FAILED");
        assert_eq!(
            v["command_error"],
            serde_json::json!({"type": "CommandExecutionError", "code": 500,
                "message": "Command execution failed", "details": "async plain fail"})
        );

        let mut m = CommandResult::running("execute_clean_step");
        m.finish(Err(CommandError::version_mismatch("x")), true);
        assert_eq!(
            serde_json::to_value(&m)?["command_status"],
            "CLEAN_VERSION_MISMATCH"
        );
        Ok(())
    }
}
