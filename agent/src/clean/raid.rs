//! Software RAID with mdadm: `create_configuration`, `delete_configuration`, `apply_configuration`.

use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value};

use crate::context::AgentContext;

/// The RAID steps of `kind`.
pub fn steps(kind: StepKind) -> Vec<Step> {
    let _ = kind;
    Vec::new()
}

/// Runs RAID step `name`; `Incompatible` for other names.
pub fn execute(
    ctx: &AgentContext,
    name: &str,
    step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    let _ = (ctx, step_ctx, args);
    Err(HardwareError::incompatible(name))
}
