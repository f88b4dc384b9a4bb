//! Disk erasure: `erase_devices`, `erase_devices_express`, `erase_devices_metadata`.

use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value};

use crate::context::AgentContext;

/// The erase steps of `kind`.
pub fn steps(kind: StepKind) -> Vec<Step> {
    let _ = kind;
    Vec::new()
}

/// Runs erase step `name`; `Incompatible` for other names.
pub fn execute(
    ctx: &AgentContext,
    name: &str,
    step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    let _ = (ctx, step_ctx, args);
    Err(HardwareError::incompatible(name))
}
