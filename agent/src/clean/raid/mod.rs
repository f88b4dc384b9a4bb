//! Software RAID with mdadm: `create_configuration`, `delete_configuration` (clean and
//! service steps on the `raid` interface) and `apply_configuration` (deploy and service step),
//! as IPA's generic manager does them.
//!
//! `config` parses and validates `target_raid_config` before anything is touched, `layout`
//! plans every partition, `mdadm` wraps the tool, `create` and `delete` carry the work out.
//! The root volume created here becomes the install device (see [`crate::state::RaidState`]).

pub mod config;
mod create;
mod delete;
pub mod layout;
pub mod mdadm;
#[cfg(test)]
mod tests;

use hardware_managers::{
    ArgInfo, HardwareError, HardwareResult, IpaClass, Node, Step, StepContext, StepKind,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::devices::Devices;
use crate::state::RaidState;

/// The RAID steps of `kind`.
pub fn steps(kind: StepKind) -> Vec<Step> {
    let raid = |name: &str, abortable: bool| {
        let mut s = Step::new(name, "raid", 0);
        if abortable {
            s.abortable = Some(true);
        }
        s
    };
    let apply = || {
        let mut s = raid("apply_configuration", false);
        s.argsinfo = Some(BTreeMap::from([
            (
                "raid_config".to_string(),
                ArgInfo {
                    description: "The RAID configuration to apply.".into(),
                    required: true,
                },
            ),
            (
                "delete_existing".to_string(),
                ArgInfo {
                    description: "Setting this to 'True' indicates to delete existing RAID \
                                  configuration prior to creating the new configuration. \
                                  Default value is 'True'."
                        .into(),
                    required: false,
                },
            ),
        ]));
        s
    };
    match kind {
        StepKind::Clean => vec![
            raid("delete_configuration", true),
            raid("create_configuration", true),
        ],
        StepKind::Deploy => vec![apply()],
        StepKind::Service => vec![
            raid("delete_configuration", true),
            raid("create_configuration", true),
            apply(),
        ],
    }
}

/// Runs RAID step `name`; `Incompatible` for other names.
pub fn execute(
    devices: &Devices,
    state: &RaidState,
    name: &str,
    step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    let node = &step_ctx.node;
    match name {
        "create_configuration" => {
            let target = node.target_raid_config.clone().unwrap_or(Value::Null);
            if target.is_null() || target.as_object().is_some_and(Map::is_empty) {
                tracing::info!("no target_raid_config: nothing to create");
                return Ok(Value::Object(Map::new()));
            }
            create::create(devices, state, node, &target)
        }
        "delete_configuration" => delete::delete(devices, state, node).map(|()| Value::Null),
        "apply_configuration" => {
            let Some(raid_config) = args.get("raid_config") else {
                return Err(HardwareError::InvalidArgs(
                    "apply_configuration needs the argument raid_config".into(),
                ));
            };
            let delete_existing = match args.get("delete_existing") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(HardwareError::InvalidArgs(format!(
                            "delete_existing must be a boolean, got {s:?}"
                        )));
                    }
                },
                Some(other) => {
                    return Err(HardwareError::InvalidArgs(format!(
                        "delete_existing must be a boolean, got {other}"
                    )));
                }
            };
            // Validate before deleting anything.
            create::validate(devices, node, raid_config)?;
            if delete_existing {
                delete::delete(devices, state, node)?;
            }
            create::create(devices, state, node, raid_config)
        }
        other => Err(HardwareError::incompatible(other)),
    }
}

/// The install device when this agent built a software RAID: its root volume.
pub fn install_device(state: &RaidState, _node: Option<&Node>) -> Option<String> {
    state.root().map(|p| p.display().to_string())
}

/// A `SoftwareRAIDError` with `message`.
fn raid_error(message: impl Into<String>) -> HardwareError {
    HardwareError::ipa(IpaClass::SoftwareRAIDError, message)
}
