//! Test fixtures shared by the step modules: an agent context whose chain lists fixed devices.

use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use hardware_managers::{BlockDevice, Chain, HardwareManager, HardwareResult, SupportLevel};

use crate::config::{Config, Flags, KernelParams};
use crate::context::AgentContext;
use crate::logbuf::LogBuffer;
use crate::power::RecordingPower;

/// A manager listing fixed devices.
struct Listed(Vec<BlockDevice>);

impl HardwareManager for Listed {
    fn class_name(&self) -> String {
        "GenericHardwareManager".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
    fn list_block_devices(&self, _partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
        Ok(self.0.clone())
    }
}

/// An agent context allowing only `allow` (powering off into `dir`), whose chain lists
/// `devices`.
pub(crate) fn agent(
    dir: &Path,
    allow: &[&Path],
    devices: Vec<BlockDevice>,
) -> anyhow::Result<AgentContext> {
    let mut argv = vec!["ironic-agent".to_string()];
    for a in allow {
        argv.extend(["--allow-device".to_string(), a.display().to_string()]);
    }
    let flags = Flags::parse_from(argv);
    let config = Config::from_parts(&flags, KernelParams::parse(""))?;
    let chain = Chain::new(vec![Arc::new(Listed(devices)) as Arc<dyn HardwareManager>])?;
    Ok(AgentContext::new(
        config,
        chain,
        Arc::new(RecordingPower::new(&dir.join("power"))),
        LogBuffer::new(64),
    ))
}

/// A block device as the inventory lists it.
pub(crate) fn device(name: &str, size: u64) -> anyhow::Result<BlockDevice> {
    Ok(serde_json::from_value(serde_json::json!({
        "name": name, "size": size, "rotational": false
    }))?)
}
