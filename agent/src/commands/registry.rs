//! The command registry: `<extension>.<command>` → handler.

use std::collections::BTreeMap;
use std::sync::Arc;

use hardware_managers::{IpaClass, IpaError};
use serde_json::{Map, Value};

use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandOutput};

/// Command parameters (`params` of the POST body).
pub type Params = Map<String, Value>;

/// A command implementation. Runs on a blocking thread.
pub type Handler =
    Arc<dyn Fn(&AgentContext, Params) -> Result<CommandOutput, CommandError> + Send + Sync>;

/// Checks parameters before anything is stored (failures are HTTP 400).
pub type Validator = fn(&AgentContext, &Params) -> Result<(), CommandError>;

/// Whether the command answers within the request or runs in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs inside the request; the response carries the final status.
    Sync,
    /// Returns RUNNING at once; the result is polled.
    Async,
}

/// One registered command.
#[derive(Clone)]
pub struct CommandSpec {
    /// Sync or async.
    pub mode: Mode,
    /// The implementation.
    pub handler: Handler,
    /// Optional parameter check.
    pub validator: Option<Validator>,
}

/// Why a command name could not be resolved (`Display`: IPA's `str(e)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.to_ipa_error())]
pub enum LookupError {
    /// The name has no dot (`InvalidCommandError`, HTTP 400).
    BadName,
    /// No such extension (`RequestedObjectNotFoundError`, HTTP 404).
    UnknownExtension(String),
    /// Known extension, unknown command (`InvalidCommandError`, HTTP 400).
    UnknownCommand(String),
}

impl LookupError {
    /// IPA's error for this refusal.
    pub fn to_ipa_error(&self) -> IpaError {
        match self {
            LookupError::BadName => IpaError::new(
                IpaClass::InvalidCommandError,
                "Command name must be of the form <extension>.<name>",
            ),
            LookupError::UnknownExtension(ext) => IpaError::new(
                IpaClass::RequestedObjectNotFoundError,
                format!("Extension with id {ext} not found."),
            ),
            LookupError::UnknownCommand(cmd) => IpaError::new(
                IpaClass::InvalidCommandError,
                format!("Unknown command: {cmd}"),
            ),
        }
    }
}

/// All commands the agent implements. Unimplemented commands are simply absent.
#[derive(Clone, Default)]
pub struct Registry {
    extensions: BTreeMap<String, BTreeMap<String, CommandSpec>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `extension.command`.
    pub fn register(
        &mut self,
        extension: &str,
        command: &str,
        mode: Mode,
        validator: Option<Validator>,
        handler: impl Fn(&AgentContext, Params) -> Result<CommandOutput, CommandError>
        + Send
        + Sync
        + 'static,
    ) {
        self.extensions
            .entry(extension.to_string())
            .or_default()
            .insert(
                command.to_string(),
                CommandSpec {
                    mode,
                    handler: Arc::new(handler),
                    validator,
                },
            );
    }

    /// Resolves a full name to `(short name, spec)`.
    pub fn resolve(&self, full_name: &str) -> Result<(String, &CommandSpec), LookupError> {
        let (ext, cmd) = full_name.split_once('.').ok_or(LookupError::BadName)?;
        let commands = self
            .extensions
            .get(ext)
            .ok_or_else(|| LookupError::UnknownExtension(ext.to_string()))?;
        let spec = commands
            .get(cmd)
            .ok_or_else(|| LookupError::UnknownCommand(cmd.to_string()))?;
        Ok((cmd.to_string(), spec))
    }

    /// Every registered full command name.
    pub fn names(&self) -> Vec<String> {
        self.extensions
            .iter()
            .flat_map(|(e, cmds)| cmds.keys().map(move |c| format!("{e}.{c}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_errors_match_ipa() {
        let mut r = Registry::new();
        r.register("poll", "get_hardware_info", Mode::Sync, None, |_, _| {
            Ok(CommandOutput::Json(Value::Null))
        });
        assert!(r.resolve("poll.get_hardware_info").is_ok());
        assert_eq!(
            r.resolve("nodot").err().map(|e| e.to_string()).as_deref(),
            Some("Invalid command: Command name must be of the form <extension>.<name>")
        );
        assert_eq!(
            r.resolve("nope.x").err().map(|e| e.to_string()).as_deref(),
            Some("Not found: Extension with id nope not found.")
        );
        assert_eq!(
            r.resolve("poll.nope")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("Invalid command: Unknown command: nope")
        );
        assert_eq!(r.names(), vec!["poll.get_hardware_info"]);
    }
}
