//! Commands: the registry of extensions, the executor and the five-key result model.

pub mod executor;
pub mod install_bootloader;
pub mod log;
pub mod poll;
pub mod registry;
pub mod rescue;
pub mod standby;
pub mod steps;
pub mod system;

pub use crate::record::{CommandError, CommandOutput, CommandResult, CommandStatus};
pub use executor::{DispatchError, Executor};
pub use registry::{Mode, Params, Registry};

use crate::context::AgentContext;
use crate::deploy::Deployer;

/// The deploy handles of the agent `ctx` (install device, settings, deploy state).
pub(crate) fn deployer(ctx: &AgentContext) -> Deployer {
    Deployer::new(ctx.devices(), &ctx.config, &ctx.state)
}

/// The registry of every command this agent implements.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    poll::register(&mut r);
    standby::register(&mut r);
    standby::register_image_commands(&mut r);
    log::register(&mut r);
    steps::register(&mut r);
    install_bootloader::register(&mut r);
    rescue::register(&mut r);
    system::register(&mut r);
    r
}
