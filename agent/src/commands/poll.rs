//! `poll.*`: inventory and cached node.

use serde_json::Value;

use super::registry::{Mode, Params, Registry};
use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandOutput};

/// Registers `poll.get_hardware_info` and `poll.get_node_info`.
pub fn register(r: &mut Registry) {
    r.register(
        "poll",
        "get_hardware_info",
        Mode::Sync,
        None,
        get_hardware_info,
    );
    r.register("poll", "get_node_info", Mode::Sync, None, get_node_info);
}

fn get_hardware_info(ctx: &AgentContext, _: Params) -> Result<CommandOutput, CommandError> {
    let inventory = ctx
        .chain
        .inventory(ctx.skip_bmc_detect())
        .map_err(|e| CommandError::from_hardware(&e))?;
    serde_json::to_value(inventory)
        .map(CommandOutput::Json)
        .map_err(|e| CommandError::execution(format!("serialising inventory: {e}")))
}

fn get_node_info(ctx: &AgentContext, _: Params) -> Result<CommandOutput, CommandError> {
    match ctx.node() {
        Some(node) => serde_json::to_value(node)
            .map(CommandOutput::Json)
            .map_err(|e| CommandError::execution(format!("serialising node: {e}"))),
        None => Ok(CommandOutput::Json(Value::Null)),
    }
}
