//! `standby.*` commands that do not write an image: sync, power off and run the deployed image
//! (`standby.prepare_image` and the other image commands are registered by
//! [`register_image_commands`]).

use hardware_managers::{HardwareError, IpaClass};
use serde_json::Value;
use tracing::warn;

use super::registry::{Mode, Params, Registry};
use crate::context::AgentContext;
use crate::power::PowerAction;
use crate::record::result::{CommandError, CommandOutput};

/// Registers `standby.sync`, `standby.power_off` and `standby.run_image`.
pub fn register(r: &mut Registry) {
    r.register("standby", "sync", Mode::Sync, None, |ctx, _| {
        full_sync(ctx)?;
        Ok(CommandOutput::Json(Value::Null))
    });
    r.register("standby", "power_off", Mode::Async, None, |ctx, p| {
        power(ctx, p, PowerAction::PowerOff)
    });
    r.register("standby", "run_image", Mode::Async, None, |ctx, p| {
        power(ctx, p, PowerAction::Reboot)
    });
}

/// Calls `full_sync` on every manager (flush caches before power actions).
pub fn full_sync(ctx: &AgentContext) -> Result<(), CommandError> {
    match ctx.chain.dispatch_all("full_sync", |m| m.full_sync()) {
        Ok(_) | Err(HardwareError::MethodNotFound(_)) => Ok(()),
        Err(e) => Err(CommandError::from_hardware(&e)),
    }
}

fn power(
    ctx: &AgentContext,
    _: Params,
    action: PowerAction,
) -> Result<CommandOutput, CommandError> {
    if let Err(e) = full_sync(ctx) {
        warn!(error = %e, "sync before {} failed; continuing", action.as_str());
    }
    ctx.power
        .perform(action)
        .map_err(|e| CommandError::ipa(IpaClass::SystemRebootError, e.to_string()))?;
    Ok(CommandOutput::Json(Value::Null))
}

/// Registers `standby.prepare_image` and `standby.get_partition_uuids`.
pub fn register_image_commands(r: &mut Registry) {
    r.register(
        "standby",
        "prepare_image",
        Mode::Async,
        Some(validate_prepare),
        |ctx, p| {
            let info = image_info(ctx, &p).map_err(CommandError::invalid_params)?;
            let configdrive = match p.get("configdrive") {
                Some(Value::String(s)) => Some(s.clone()),
                _ => info.configdrive.clone(),
            };
            super::deployer(ctx)
                .prepare_image(&info, configdrive.as_deref())
                .map(CommandOutput::Text)
                .map_err(|e| CommandError::from(e.to_ipa_error()))
        },
    );
    r.register(
        "standby",
        "get_partition_uuids",
        Mode::Sync,
        None,
        |ctx, _| {
            serde_json::to_value(ctx.state.deploy.partition_uuids())
                .map(CommandOutput::Json)
                .map_err(|e| CommandError::execution(e.to_string()))
        },
    );
}

fn image_info(ctx: &AgentContext, p: &Params) -> Result<crate::image::info::ImageInfo, String> {
    let md5 = super::deployer(ctx).settings.md5_enabled();
    crate::image::info::validate_image_info(p.get("image_info").unwrap_or(&Value::Null), md5)
}

/// `image_info` as IPA validates it, and a `disk_label` (the node's capability or
/// `image_info`'s) that names a known partition table: refused with HTTP 400 before anything
/// runs.
fn validate_prepare(ctx: &AgentContext, p: &Params) -> Result<(), CommandError> {
    let info = image_info(ctx, p).map_err(CommandError::invalid_params)?;
    let node = ctx.node().unwrap_or_default();
    crate::disk::node_info::disk_label(&node, info.disk_label.as_deref())
        .map(|_| ())
        .map_err(CommandError::invalid_params)
}
