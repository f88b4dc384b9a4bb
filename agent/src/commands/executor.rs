//! The executor: one command at a time, results kept in creation order.

use std::sync::{Arc, Mutex};

use hardware_managers::{IpaClass, IpaError};
use tokio::sync::watch;
use tracing::{info, warn};

use super::registry::{LookupError, Mode, Params, Registry};
use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandResult};

/// Why a command was not accepted. Nothing is stored in any of these cases.
///
/// `Display` is IPA's `str(e)` of the matching error, the API's `faultstring`.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.to_ipa_error())]
pub enum DispatchError {
    /// Bad name or unknown command/extension.
    Lookup(#[from] LookupError),
    /// The validator refused the parameters.
    InvalidParams(CommandError),
    /// Another command is still running (HTTP 409).
    Busy(String),
    /// No command with that id (HTTP 404).
    NotFound(String),
    /// The agent is shutting down (SIGTERM); no new command starts (HTTP 503).
    #[error("The agent is shutting down")]
    ShuttingDown,
}

impl DispatchError {
    /// The IPA error the API answers with; its code is the HTTP status.
    pub fn to_ipa_error(&self) -> IpaError {
        match self {
            DispatchError::Lookup(e) => e.to_ipa_error(),
            DispatchError::InvalidParams(ce) => {
                IpaError::new(IpaClass::InvalidCommandParamsError, ce.details.clone())
            }
            DispatchError::Busy(command) => IpaError::new(
                IpaClass::AgentIsBusy,
                format!("executing command {command}"),
            ),
            DispatchError::NotFound(id) => IpaError::new(
                IpaClass::RequestedObjectNotFoundError,
                format!("Command Result with id {id} not found."),
            ),
            // Answered with 503 by the API before this is asked; as a class, IPA's generic one.
            DispatchError::ShuttingDown => {
                IpaError::new(IpaClass::CommandExecutionError, self.to_string())
            }
        }
    }
}

/// A stored result and the signal that it finished.
struct Entry {
    result: Mutex<CommandResult>,
    done: watch::Sender<bool>,
}

impl Entry {
    fn snapshot(&self) -> CommandResult {
        match self.result.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn is_finished(&self) -> bool {
        self.snapshot().command_status.is_finished()
    }

    async fn wait(&self) {
        let mut rx = self.done.subscribe();
        // An error means the sender is gone, which only happens after completion.
        let _ = rx.wait_for(|done| *done).await;
    }
}

/// Runs commands, enforcing "one at a time", and keeps every result since boot.
pub struct Executor {
    registry: Registry,
    context: Arc<AgentContext>,
    entries: Mutex<Vec<Arc<Entry>>>,
}

impl Executor {
    /// An executor for the commands in `registry`.
    pub fn new(registry: Registry, context: Arc<AgentContext>) -> Self {
        Executor {
            registry,
            context,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The shared agent context.
    pub fn context(&self) -> &Arc<AgentContext> {
        &self.context
    }

    /// All results, oldest first.
    pub fn list(&self) -> Vec<CommandResult> {
        self.entries_snapshot()
            .iter()
            .map(|e| self.decorate(e.snapshot()))
            .collect()
    }

    /// The result with `id`; with `wait`, once it has finished.
    pub async fn get(&self, id: &str, wait: bool) -> Result<CommandResult, DispatchError> {
        let entry = self
            .entries_snapshot()
            .into_iter()
            .find(|e| e.snapshot().id == id)
            .ok_or_else(|| DispatchError::NotFound(id.to_string()))?;
        if wait {
            entry.wait().await;
        }
        Ok(self.decorate(entry.snapshot()))
    }

    /// A RUNNING result shows the running command's progress as `{"progress": {...}}`.
    fn decorate(&self, mut r: CommandResult) -> CommandResult {
        if r.command_status == super::CommandStatus::Running
            && let Some(p) = self.context.progress()
        {
            r.command_result = serde_json::to_value(p.snapshot())
                .ok()
                .map(|s| serde_json::json!({ "progress": s }));
        }
        r
    }

    /// The most recent result, if any.
    pub fn last(&self) -> Option<CommandResult> {
        self.entries_snapshot()
            .last()
            .map(|e| self.decorate(e.snapshot()))
    }

    fn entries_snapshot(&self) -> Vec<Arc<Entry>> {
        match self.entries.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Validates and starts `name`. Sync commands (and async ones with `wait`) are awaited.
    pub async fn execute(
        &self,
        name: &str,
        params: Params,
        wait: bool,
    ) -> Result<CommandResult, DispatchError> {
        let (short, spec) = self.registry.resolve(name)?;
        let spec = spec.clone();
        let entry = {
            let mut entries = match self.entries.lock() {
                Ok(e) => e,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(last) = entries.last().filter(|e| !e.is_finished()) {
                return Err(DispatchError::Busy(last.snapshot().command_name));
            }
            if self.context.shutdown.is_requested() {
                return Err(DispatchError::ShuttingDown);
            }
            if let Some(validate) = spec.validator {
                validate(&self.context, &params).map_err(DispatchError::InvalidParams)?;
            }
            let (done, _) = watch::channel(false);
            let entry = Arc::new(Entry {
                result: Mutex::new(CommandResult::running(&short)),
                done,
            });
            entries.push(entry.clone());
            entry
        };
        let is_async = spec.mode == Mode::Async;
        let id = entry.snapshot().id;
        info!(command = name, %id, asynchronous = is_async, "executing command");
        self.context.history.started(&id, name, &params);

        let context = self.context.clone();
        let task_entry = entry.clone();
        let command_name = name.to_string();
        // Counted until its result is stored, so that a shutdown can wait for it.
        let running = self.context.shutdown.running();
        let task = tokio::task::spawn_blocking(move || {
            let _running = running;
            let outcome = (spec.handler)(&context, params);
            context.clear_progress();
            match &outcome {
                Ok(_) => info!(command = %command_name, "command succeeded"),
                Err(e) => warn!(command = %command_name, error = %e, "command failed"),
            }
            if let Ok(mut r) = task_entry.result.lock() {
                r.finish(outcome, is_async);
                context.history.finished(&r);
            }
            task_entry.done.send_replace(true);
            if is_async {
                context.force_heartbeat();
            }
        });
        let watcher_entry = entry.clone();
        let watcher_context = self.context.clone();
        tokio::spawn(async move {
            // A panicking handler must still leave a finished result behind.
            if let Err(e) = task.await {
                if let Ok(mut r) = watcher_entry.result.lock()
                    && !r.command_status.is_finished()
                {
                    r.finish(
                        Err(CommandError::execution(format!("command crashed: {e}"))),
                        true,
                    );
                    watcher_context.history.finished(&r);
                }
                watcher_entry.done.send_replace(true);
            }
        });

        if !is_async || wait {
            entry.wait().await;
        }
        Ok(self.decorate(entry.snapshot()))
    }
}
