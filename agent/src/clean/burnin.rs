//! Burn-in: `burnin_cpu`, `burnin_memory`, `burnin_disk` (stress-ng, fio).

use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value};

use crate::context::AgentContext;

/// The burn-in steps of `kind`.
pub fn steps(kind: StepKind) -> Vec<Step> {
    let _ = kind;
    Vec::new()
}

/// Runs burn-in step `name`; `Incompatible` for other names.
pub fn execute(
    ctx: &AgentContext,
    name: &str,
    step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    let _ = (ctx, step_ctx, args);
    Err(HardwareError::incompatible(name))
}
