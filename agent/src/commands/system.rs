//! `system.lockdown`: IPA's `lockdown = True, serve_api = False`. The command answers `null`;
//! then the API server closes (after delivering that answer), the heartbeats stop and every
//! network interface but loopback is taken down (`agent::run`, through [`crate::network`]).
//! The machine is never powered off and the process stays alive.

use serde_json::Value;
use tracing::info;

use super::registry::{Mode, Registry};
use crate::record::result::CommandOutput;
use crate::stop::StopReason;

/// Registers `system.lockdown`.
pub fn register(r: &mut Registry) {
    r.register("system", "lockdown", Mode::Sync, None, |ctx, _| {
        info!("lockdown requested: the API stops after this answer, then the network goes down");
        ctx.stop.request(StopReason::Lockdown);
        Ok(CommandOutput::Json(Value::Null))
    });
}
