//! `inject_files`: IPA's deploy (and service) step that writes arbitrary files into the
//! deployed system.
//!
//! The file list is `node.properties.inject_files` followed by the step's `files` argument.
//! Each item names an absolute `path`, optionally a `partition` (a number on the install disk
//! or a block-device path), and either `content` (base64, or an `http(s)://` URL formatted with
//! the node and its ports) or `deleted: true`; `mode`, `dirmode`, `owner` and `group` are
//! integers. Without `partition`, each partition of the install disk is mounted read-only in
//! turn (LVM, swap, LUKS and RAID members are skipped) until one holds the path's first
//! component as a directory.
//!
//! Order of work, so that bad input writes nothing: every item is validated, its target
//! partition found and its URL content downloaded **before** any filesystem is mounted
//! read-write. Each target filesystem is then mounted (`nodev,nosuid,noexec`) on a private
//! temporary directory; the mount is undone on every exit path (a guard unmounts on drop).
//!
//! Paths are resolved *inside* the mounted filesystem as if it were `/`: every directory is
//! opened relative to its parent with `O_NOFOLLOW`, symbolic links are expanded by hand
//! (absolute targets restart at the filesystem's root, `..` never climbs above it), and files
//! are created with `O_NOFOLLOW`. A link in the image such as `etc -> /` therefore redirects a
//! write to the image's own root, never to the ramdisk. Only regular files are written or
//! deleted.
//!
//! Differences from IPA, all on the safe side: relative paths and `..` components are refused
//! (IPA normalises them); URL content is fetched before anything is written; ownership is set
//! before the mode, so set-id bits in `mode` survive; a device-path `partition` must be under
//! `/dev/` and pass the disk guard. URL templates use IPA's Python `str.format` fields
//! (`{node[uuid]}`, `{ports[0][address]}`); the bare `{node}` and `{ports}` (a Python dict or
//! list repr in IPA, useless in a URL) give the node UUID and the comma-separated port UUIDs.

mod apply;
mod error;
mod fetch;
mod mount;
mod plan;
mod template;
mod validate;
#[doc(hidden)]
/// Public only for the fuzz target `inject_walker`; not an API.
pub mod walker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hardware_managers::guard::{DiskGuard, GuardError};
use hardware_managers::{ArgInfo, HardwareError, HardwareResult, IpaClass, Node, Port};
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::config::KernelParams;
use crate::disk::MIB;

use apply::apply_all;
use fetch::fetch_all;
use validate::{parse_verify_ca, validate_files};

pub use error::InjectError;
pub use fetch::DownloadSettings;

/// Kernel parameter holding the step's deploy (and service) priority.
pub const PRIORITY_PARAM: &str = "ipa-inject-files-priority";
/// Largest content accepted for one file (inline after decoding, or downloaded).
pub const MAX_CONTENT_BYTES: u64 = 64 * MIB;
/// Whole-request timeout of one download.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The step's `argsinfo`, as IPA describes its arguments.
pub fn argsinfo() -> BTreeMap<String, ArgInfo> {
    BTreeMap::from([
        (
            "files".to_string(),
            ArgInfo {
                description: "Files to inject, a list of file structures with keys: 'path' \
                              (path to the file), 'partition' (partition specifier), \
                              'content' (base64 encoded string), 'mode' (new file mode) and \
                              'dirmode' (mode for the leaf directory, if created). Merged with \
                              the values from node.properties[inject_files]."
                    .to_string(),
                required: false,
            },
        ),
        (
            "verify_ca".to_string(),
            ArgInfo {
                description: "Whether to verify TLS certificates. Global agent options are \
                              used by default."
                    .to_string(),
                required: false,
            },
        ),
    ])
}

/// The step's priority from `ipa-inject-files-priority` (an integer from 0 to 99; default 0,
/// i.e. only run when requested). Anything else is logged and treated as 0.
pub fn priority(kernel: &KernelParams) -> i64 {
    let Some(raw) = kernel.get(PRIORITY_PARAM) else {
        return 0;
    };
    match raw.trim().parse::<i64>() {
        Ok(p) if (0..=99).contains(&p) => p,
        _ => {
            warn!(
                value = raw,
                "{PRIORITY_PARAM} must be an integer from 0 to 99; inject_files keeps priority 0"
            );
            0
        }
    }
}

/// What the step works with besides its arguments.
pub struct Environment<'a> {
    /// Finds the install ("root") device; only called when an item needs it. In the agent it
    /// is [`install_device`], which has already applied the disk guard.
    pub root_device: &'a dyn Fn() -> HardwareResult<PathBuf>,
    /// Checked for the disk holding every partition before it is mounted read-write.
    pub guard: DiskGuard,
    /// Download settings for URL content.
    pub download: DownloadSettings,
}

impl std::fmt::Debug for Environment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("guard", &self.guard)
            .field("download", &self.download)
            .finish_non_exhaustive()
    }
}

/// The step itself: validates `node.properties.inject_files` + `args.files`, finds every
/// target partition, downloads URL content, then writes or deletes the files in order.
/// Returns `null`, as IPA does.
///
/// Errors: bad items → [`HardwareError::InvalidArgs`]; no partition holding a path →
/// [`HardwareError::DeviceNotFound`]; a refused disk → `ProtectedDeviceError`; download and
/// write failures → `CommandExecutionError`; mount failures → `DeploymentError`.
pub fn inject_files(
    node: &Node,
    ports: &[Port],
    args: &Map<String, Value>,
    env: &Environment<'_>,
) -> HardwareResult<Value> {
    let verify_ca = parse_verify_ca(args.get("verify_ca"))?;
    let files = validate_files(node, ports, args.get("files"))?;
    if files.is_empty() {
        info!("No files to inject");
        return Ok(Value::Null);
    }
    let devices = plan::plan(&files, env)?;
    let mut download = env.download.clone();
    download.insecure |= !verify_ca;
    let fetched = fetch_all(&files, &download)?;
    apply_all(&files, &devices, &fetched, &env.guard)?;
    Ok(Value::Null)
}

fn failed(class: IpaClass, message: impl Into<String>) -> HardwareError {
    HardwareError::ipa(class, message)
}

fn guard_error(e: GuardError) -> HardwareError {
    failed(IpaClass::ProtectedDeviceError, e.to_string())
}
