//! Executable plug-in managers: a vendor ships a program, not a recompiled agent.
//!
//! # Discovery
//!
//! Every regular file with an executable bit in the plug-in directory
//! ([`DEFAULT_PLUGIN_DIR`]) is a manager, taken in file-name order; symlinks are followed,
//! other files and sub-directories are ignored, and a missing directory means no plug-ins.
//! Each is asked `support` and then `version` once. A plug-in that fails either, or answers
//! `support` ≤ 0, is logged and skipped; it never stops the agent. So is a plug-in whose
//! class name repeats an earlier one's.
//!
//! # Protocol
//!
//! For every call the agent runs the executable with no arguments, the environment variable
//! `IRONIC_AGENT_METHOD=<method>`, and writes ONE JSON request to its stdin, then closes it:
//!
//! ```json
//! {"method": "<method>", "args": {...}}
//! ```
//!
//! The plug-in prints ONE JSON response on stdout and exits 0:
//!
//! ```json
//! {"result": <value>}
//! {"error": {"type": "<ErrorClassName>", "message": "<text>"}}
//! ```
//!
//! * `type` `IncompatibleHardwareMethodError` means "not mine": the chain asks the next
//!   manager. Plug-ins must answer it for every method they do not implement.
//! * Any other `type` is the plug-in's failure: [`HardwareError::Ipa`] of that class (IPA's own
//!   class when IPA has it, else the plug-in's name kept as it is),
//!   reported to Ironic under that class name.
//! * A non-zero exit, a response that is not JSON, or no response at all is
//!   [`HardwareError::Plugin`], whose message carries the exit status and the first 4 KiB of
//!   stderr. (If stdout holds more than the response, its last non-empty line is used.)
//! * A call that outlives its timeout is killed with its whole process group and reported as
//!   [`HardwareError::Plugin`].
//! * stderr is free-form diagnostics, logged line by line at debug level.
//!
//! Reserved methods:
//!
//! | method | args | result |
//! |---|---|---|
//! | `support` | `{}` | integer support level (1 generic, 2 mainline, 3 service provider) |
//! | `version` | `{}` | `{"name": str, "version": str, "class_name": str?}` (class name defaults to the file name) |
//! | `steps` | `{"kind": "clean"\|"deploy"\|"service", "node": {...}, "ports": [...]}` | list of step dicts (`step`, `priority`, `interface`, `reboot_requested`, `abortable`, `argsinfo`) |
//! | `initialize` | `{}` | anything; `IncompatibleHardwareMethodError` means nothing to do |
//!
//! Hardware methods (each may answer `IncompatibleHardwareMethodError`):
//!
//! | method | args | result |
//! |---|---|---|
//! | `list_network_interfaces` | `{}` | list of interface objects (inventory `interfaces[]`) |
//! | `get_cpus` | `{}` | inventory `cpu` object |
//! | `get_memory` | `{}` | inventory `memory` object |
//! | `list_block_devices` | `{"include_partitions": bool}` | list of inventory `disks[]` objects |
//! | `get_os_install_device` | `{"node": {...} or null}` | device path string |
//! | `get_bmc_address`, `get_bmc_v6address`, `get_bmc_mac` | `{}` | string or null |
//! | `get_boot_info` | `{}` | inventory `boot` object |
//! | `get_system_vendor_info` | `{}` | inventory `system_vendor` object |
//! | `get_hostname` | `{}` | string |
//! | `collect_system_logs` | `{}` | list of `{"name": str, "content": base64 str}` |
//! | `full_sync` | `{}` | anything |
//! | any step name | `{"node": {...}, "ports": [...], <step args>}` | the step's result (any JSON) |
//!
//! Steps run under [`PluginConfig::step_timeout`], everything else under
//! [`PluginConfig::query_timeout`]. Responses are limited to
//! [`PluginConfig::max_response_bytes`].

mod config;
mod executable;
mod protocol;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

pub use self::config::PluginConfig;
pub use self::executable::{ExecutableManager, RESERVED_METHODS};
pub use self::protocol::{ErrorReply, Reply, parse_reply};
use crate::error::{HardwareError, HardwareResult};
use crate::manager::HardwareManager;

/// Default directory scanned for plug-in managers.
pub const DEFAULT_PLUGIN_DIR: &str = "/etc/ironic-agent/hardware-managers.d";

/// Every executable file in `dir` becomes a manager (sorted by file name). A missing directory
/// yields no managers.
pub fn discover(dir: &Path) -> HardwareResult<Vec<Arc<dyn HardwareManager>>> {
    discover_with(dir, PluginConfig::default())
}

/// [`discover`] with explicit limits. Only an unreadable directory is an error; plug-ins that
/// misbehave at discovery are logged and skipped.
pub fn discover_with(
    dir: &Path,
    config: PluginConfig,
) -> HardwareResult<Vec<Arc<dyn HardwareManager>>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(HardwareError::io(
                format!("listing plug-in directory {}", dir.display()),
                e,
            ));
        }
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();

    let mut managers: Vec<Arc<dyn HardwareManager>> = Vec::new();
    let mut classes: Vec<String> = Vec::new();
    for path in paths.iter().filter(|p| is_executable_file(p)) {
        let manager = match ExecutableManager::load(path, config) {
            Ok(m) => m,
            Err(e) => {
                warn!(plugin = %path.display(), error = %e, "skipping hardware-manager plug-in");
                continue;
            }
        };
        let support = manager.evaluate_hardware_support();
        let class = manager.class_name();
        if !support.is_supported() {
            info!(plugin = %path.display(), support = support.0, "plug-in does not support this machine");
            continue;
        }
        if classes.contains(&class) {
            warn!(plugin = %path.display(), class, "skipping plug-in: class name already taken");
            continue;
        }
        info!(plugin = %path.display(), class, support = support.0, "found hardware-manager plug-in");
        classes.push(class);
        managers.push(Arc::new(manager));
    }
    Ok(managers)
}

/// A regular file (after following symlinks) with any execute bit.
fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
