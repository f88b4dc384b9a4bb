//! `image.install_bootloader`: the command around [`crate::bootloader`], which
//! installs on the device the deploy chose, with the agent's and the conductor's policy.

use serde_json::{Value, json};

use super::registry::{Mode, Params, Registry};
use crate::bootloader::{self, InstallBootloaderParams, Policy};
use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandOutput};

/// Registers `image.install_bootloader`.
pub fn register(r: &mut Registry) {
    r.register(
        "image",
        "install_bootloader",
        Mode::Async,
        Some(validate),
        |ctx, p| run(ctx, &p),
    );
}

fn validate(_ctx: &AgentContext, p: &Params) -> Result<(), CommandError> {
    InstallBootloaderParams::parse(p)
        .map(|_| ())
        .map_err(CommandError::invalid_params)
}

fn run(ctx: &AgentContext, p: &Params) -> Result<CommandOutput, CommandError> {
    let params = InstallBootloaderParams::parse(p).map_err(CommandError::invalid_params)?;
    let device = super::deployer(ctx)
        .install_device()
        .map_err(|e| CommandError::from(e.to_ipa_error()))?;
    let policy = Policy {
        grub_enabled: ctx.config.enable_bios_bootloader_install
            || ctx
                .lookup_config()
                .is_some_and(|c| c.enable_bios_bootloader_install),
        ignore_failure: ctx.config.ignore_bootloader_failure.unwrap_or(false),
    };
    let outcome = bootloader::install_here(&device, &params, policy)
        .map_err(|e| CommandError::from(e.to_ipa_error()))?;
    if outcome.warnings.is_empty() {
        Ok(CommandOutput::Json(Value::Null))
    } else {
        Ok(CommandOutput::Json(json!({ "warnings": outcome.warnings })))
    }
}
