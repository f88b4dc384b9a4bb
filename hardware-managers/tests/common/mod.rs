//! Helpers shared by the integration tests: a chain of discovered plug-ins ahead of the generic
//! manager, step contexts and step arguments.

use std::path::Path;
use std::sync::Arc;

use hardware_managers::generic::{GenericConfig, GenericHardwareManager};
use hardware_managers::plugin::{self, PluginConfig};
use hardware_managers::{Chain, StepContext, StepKind};
use serde_json::{Map, Value};

/// The plug-ins found in `plugins` (with `config`), then the generic manager over `root`.
pub fn chain(plugins: &Path, config: PluginConfig, root: &Path) -> anyhow::Result<Chain> {
    let mut managers = plugin::discover_with(plugins, config)?;
    managers.push(Arc::new(GenericHardwareManager::new(GenericConfig {
        root: root.to_path_buf(),
        ..GenericConfig::default()
    })));
    Ok(Chain::new(managers)?)
}

/// A `kind` step context for a node with a UUID.
pub fn ctx(kind: StepKind) -> StepContext {
    let mut ctx = StepContext {
        kind: Some(kind),
        ..StepContext::default()
    };
    ctx.node.uuid = Some("1be26c0b-03f2-4d2e-ae87-c02d7f33c123".into());
    ctx
}

/// Step arguments from a JSON object (anything else: none).
pub fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
