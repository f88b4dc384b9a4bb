//! Steps: clean, deploy and service steps as data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The three kinds of step Ironic runs through the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Cleaning (returning a node to the pool).
    Clean,
    /// Deployment.
    Deploy,
    /// Servicing (changes on an active node).
    Service,
}

impl StepKind {
    /// `clean`, `deploy` or `service`: the word in command and result names.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Clean => "clean",
            StepKind::Deploy => "deploy",
            StepKind::Service => "service",
        }
    }
}

/// Describes one argument of a step (`argsinfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgInfo {
    /// What the argument does.
    pub description: String,
    /// Whether the step requires it.
    #[serde(default)]
    pub required: bool,
}

/// One step as a manager offers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Method name (the step's name).
    pub step: String,
    /// Priority; 0 means "never run automatically".
    pub priority: i64,
    /// Ironic interface (`deploy`, `raid`, `management`, `bios`, ...).
    pub interface: String,
    /// Whether Ironic should reboot the node after the step.
    #[serde(default)]
    pub reboot_requested: bool,
    /// Whether the step may be aborted (clean/service steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abortable: Option<bool>,
    /// Argument descriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argsinfo: Option<BTreeMap<String, ArgInfo>>,
}

impl Step {
    /// A step on `interface` with `priority`, no reboot, not abortable, no args.
    pub fn new(step: &str, interface: &str, priority: i64) -> Self {
        Step {
            step: step.to_string(),
            priority,
            interface: interface.to_string(),
            reboot_requested: false,
            abortable: None,
            argsinfo: None,
        }
    }
}
