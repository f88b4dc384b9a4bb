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

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{CStr, CString};
use std::fs::{DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use hardware_managers::guard::{DiskGuard, GuardError};
use hardware_managers::{ArgInfo, HardwareError, HardwareResult, Node, Port, StepContext};
use serde_json::{Map, Value};
use tracing::{debug, error, info, warn};

use super::prepare::{DeployError, download_options, install_device};
use crate::config::KernelParams;
use crate::context::AgentContext;
use crate::disk::{MIB, blockdev, probe, table};

/// Kernel parameter holding the step's deploy (and service) priority.
pub const PRIORITY_PARAM: &str = "ipa-inject-files-priority";
/// Largest content accepted for one file (inline after decoding, or downloaded).
pub const MAX_CONTENT_BYTES: u64 = 64 * MIB;
/// Whole-request timeout of one download.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Keys an item may carry (IPA refuses anything else).
const FIELDS: &[&str] = &[
    "path",
    "partition",
    "content",
    "deleted",
    "mode",
    "dirmode",
    "owner",
    "group",
];
/// Filesystem types never mounted while looking for a path.
const SKIPPED_FILESYSTEMS: &[&str] = &["LVM2_member", "swap", "crypto_LUKS", "linux_raid_member"];
/// Symbolic links followed while resolving one path (Linux's own limit).
const MAX_SYMLINKS: u32 = 40;
/// Longest path and file name accepted (Linux's `PATH_MAX - 1` and `NAME_MAX`).
const MAX_PATH: usize = 4095;
const MAX_NAME: usize = 255;
/// Plain unmount attempts before falling back to a lazy detach.
const UMOUNT_TRIES: u32 = 10;
/// Mode of directories and files this step creates when none is given.
const DEFAULT_DIR_MODE: u32 = 0o755;
const DEFAULT_FILE_MODE: u32 = 0o644;

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

/// How URL content is downloaded.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// Skip certificate verification (the agent's `insecure`; forced by `verify_ca: false`).
    pub insecure: bool,
    /// Extra CA bundle.
    pub cafile: Option<PathBuf>,
    /// Lowest TLS version (`1.2` or `1.3`).
    pub tls_min: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries after a connection failure.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_interval: Duration,
    /// Largest body accepted.
    pub max_bytes: u64,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings {
            insecure: false,
            cafile: None,
            tls_min: "1.2".into(),
            connect_timeout: DOWNLOAD_TIMEOUT,
            timeout: DOWNLOAD_TIMEOUT,
            retries: 2,
            retry_interval: Duration::from_secs(5),
            max_bytes: MAX_CONTENT_BYTES,
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

/// Runs the step for the agent: node and ports from the step context, the install device
/// from the hardware chain, TLS and retry settings from the agent's configuration.
pub fn run(
    ctx: &AgentContext,
    step: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    let opts = download_options(ctx);
    let download = DownloadSettings {
        insecure: opts.insecure,
        cafile: opts.cafile.clone(),
        tls_min: opts.tls_min_version.clone(),
        connect_timeout: opts.connection_timeout.min(DOWNLOAD_TIMEOUT),
        timeout: DOWNLOAD_TIMEOUT,
        retries: opts.retries,
        retry_interval: opts.retry_interval,
        max_bytes: MAX_CONTENT_BYTES,
    };
    let root_device = || install_device(ctx).map_err(deploy_error);
    let env = Environment {
        root_device: &root_device,
        guard: DiskGuard::new(ctx.config.allow_devices.clone(), Path::new("/")),
        download,
    };
    inject_files(&step.node, &step.ports, args, &env)
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
    let devices = plan(&files, env)?;
    let mut download = env.download.clone();
    download.insecure |= !verify_ca;
    let fetched = fetch_all(&files, &download)?;
    apply_all(&files, &devices, &fetched, &env.guard)?;
    Ok(Value::Null)
}

fn deploy_error(e: DeployError) -> HardwareError {
    match e {
        DeployError::Hardware(h) => h,
        other => {
            let ce = other.to_command_error();
            HardwareError::Failed {
                kind: ce.kind,
                message: format!("{}: {}", ce.message, ce.details),
            }
        }
    }
}

fn failed(kind: &str, message: impl Into<String>) -> HardwareError {
    HardwareError::Failed {
        kind: kind.to_string(),
        message: message.into(),
    }
}

fn guard_error(e: GuardError) -> HardwareError {
    failed("ProtectedDeviceError", e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Where a file goes on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PartitionRef {
    /// Partition number on the install device.
    Number(u32),
    /// A block device path.
    Device(PathBuf),
}

/// What to do with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Remove it (no error when absent).
    Delete,
    /// Write decoded inline content.
    Inline(Vec<u8>),
    /// Write what this URL serves.
    Url(String),
}

/// One validated item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSpec {
    /// Where it came from, for messages (`files[0]`, `node.properties.inject_files[1]`).
    label: String,
    /// The path as given.
    path: String,
    /// Its normalised components (no empty, `.` or `..`); never empty.
    components: Vec<String>,
    partition: Option<PartitionRef>,
    action: Action,
    mode: Option<u32>,
    dirmode: Option<u32>,
    owner: Option<u32>,
    group: Option<u32>,
}

impl FileSpec {
    fn describe(&self) -> String {
        format!("{} ({})", self.label, self.path)
    }
}

fn parse_verify_ca(v: Option<&Value>) -> HardwareResult<bool> {
    let bad = || HardwareError::InvalidArgs("verify_ca must be a boolean".into());
    match v {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// Merges and checks the items. All problems are reported at once, as IPA does.
fn validate_files(
    node: &Node,
    ports: &[Port],
    files: Option<&Value>,
) -> HardwareResult<Vec<FileSpec>> {
    let from_props = list_of(
        node.properties.get("inject_files"),
        "The `inject_files` node property",
    )?;
    let from_args = list_of(files, "The `files` argument")?;
    let node_json = serde_json::to_value(node).unwrap_or(Value::Null);
    let ports_json = serde_json::to_value(ports).unwrap_or(Value::Null);
    let items = from_props
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("node.properties.inject_files[{i}]"), v))
        .chain(
            from_args
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("files[{i}]"), v)),
        );
    let mut specs = Vec::new();
    let mut failures = Vec::new();
    for (label, item) in items {
        match validate_item(&label, item, &node_json, &ports_json) {
            Ok(spec) => specs.push(spec),
            Err(mut problems) => failures.append(&mut problems),
        }
    }
    if failures.is_empty() {
        Ok(specs)
    } else {
        Err(HardwareError::InvalidArgs(format!(
            "Validation of files failed: {}",
            failures.join("; ")
        )))
    }
}

fn list_of<'v>(v: Option<&'v Value>, what: &str) -> HardwareResult<&'v [Value]> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(HardwareError::InvalidArgs(format!(
            "{what} must be a list, got {}",
            json_type(other)
        ))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn validate_item(
    label: &str,
    item: &Value,
    node: &Value,
    ports: &Value,
) -> Result<FileSpec, Vec<String>> {
    let Value::Object(map) = item else {
        return Err(vec![format!(
            "{label} must be an object, got {}",
            json_type(item)
        )]);
    };
    let shown = match map.get("path") {
        Some(Value::String(p)) => format!("{label} ({p})"),
        _ => label.to_string(),
    };
    let mut problems = Vec::new();
    let mut problem = |m: String| problems.push(format!("{shown}: {m}"));

    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !FIELDS.contains(k))
        .collect();
    if !unknown.is_empty() {
        problem(format!("unexpected fields: {}", unknown.join(", ")));
    }

    let partition = match parse_partition(map.get("partition").unwrap_or(&Value::Null)) {
        Ok(p) => p,
        Err(m) => {
            problem(m);
            None
        }
    };
    let has_partition = map
        .get("partition")
        .is_some_and(|p| !p.is_null() && p.as_str().is_none_or(|s| !s.trim().is_empty()));

    let (path, components) = match map.get("path") {
        None | Some(Value::Null) => {
            problem("expected a path".into());
            (String::new(), Vec::new())
        }
        Some(Value::String(p)) if p.is_empty() => {
            problem("expected a path".into());
            (String::new(), Vec::new())
        }
        Some(Value::String(p)) => match path_components(p) {
            Ok(c) => {
                if c.len() == 1 && !has_partition {
                    problem("files in the root directory require \"partition\"".into());
                }
                (p.clone(), c)
            }
            Err(m) => {
                problem(m);
                (p.clone(), Vec::new())
            }
        },
        Some(other) => {
            problem(format!("path must be a string, got {}", json_type(other)));
            (String::new(), Vec::new())
        }
    };

    let deleted = match map.get("deleted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problem(format!(
                "deleted must be true or false, got {}",
                json_type(other)
            ));
            false
        }
    };
    let content = match map.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            problem(format!(
                "content must be a string (base64 or a URL), got {}",
                json_type(other)
            ));
            None
        }
    };
    let action = match (deleted, content) {
        (true, Some(c)) if !c.is_empty() => {
            problem("content cannot be used with deleted".into());
            None
        }
        (true, _) => Some(Action::Delete),
        (false, None) => {
            if !map
                .get("content")
                .is_some_and(|c| !c.is_null() && !c.is_string())
            {
                problem("content is required unless deleted is true".into());
            }
            None
        }
        (false, Some(c)) if c.contains("://") => match format_url(c, node, ports) {
            Ok(url) => Some(Action::Url(url)),
            Err(m) => {
                problem(format!("content URL `{c}`: {m}"));
                None
            }
        },
        (false, Some(c)) => match decode_base64(c) {
            Ok(bytes) => Some(Action::Inline(bytes)),
            Err(m) => {
                problem(m);
                None
            }
        },
    };

    let mode = int_field(map, "mode", 0, 0o7777).unwrap_or_else(|m| {
        problem(m);
        None
    });
    let dirmode = int_field(map, "dirmode", 0, 0o7777).unwrap_or_else(|m| {
        problem(m);
        None
    });
    let owner = id_field(map, "owner").unwrap_or_else(|m| {
        problem(m);
        None
    });
    let group = id_field(map, "group").unwrap_or_else(|m| {
        problem(m);
        None
    });
    for (key, m) in [("mode", mode), ("dirmode", dirmode)] {
        if let Some(m) = m {
            warn_if_decimal_octal(&shown, key, m);
        }
    }

    match action {
        Some(action) if problems.is_empty() => Ok(FileSpec {
            label: label.to_string(),
            path,
            components,
            partition,
            action,
            mode,
            dirmode,
            owner,
            group,
        }),
        _ => Err(problems),
    }
}

/// JSON has no octal: `644` is `0o1204`. Such values are legal, so only warn.
fn warn_if_decimal_octal(shown: &str, key: &str, value: u32) {
    let digits = value.to_string();
    if value > 0o777
        && digits.len() == 3
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        && let Ok(meant) = u32::from_str_radix(&digits, 8)
    {
        warn!(
            "{shown}: {key} {value} is {value:#o}; JSON has no octal literals, so {meant} \
             would be {meant:#o}"
        );
    }
}

fn int_field(
    map: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<u32>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if (min..=max).contains(&v) => Ok(u32::try_from(v).ok()),
            Some(v) => Err(format!("{key} must be between {min} and {max}, got {v}")),
            None => Err(format!("{key} must be a number, got {n}")),
        },
        Some(other) => Err(format!("{key} must be a number, got {}", json_type(other))),
    }
}

/// A user or group ID; `-1` means "leave unchanged", as for `chown(2)`.
fn id_field(map: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    if map.get(key).and_then(Value::as_i64) == Some(-1) {
        return Ok(None);
    }
    int_field(map, key, 0, i64::from(u32::MAX) - 1)
}

fn parse_partition(v: &Value) -> Result<Option<PartitionRef>, String> {
    let number = |n: i64| -> Result<Option<PartitionRef>, String> {
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| Some(PartitionRef::Number(n)))
            .ok_or_else(|| format!("partition numbers start at 1, got {n}"))
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(n) => number(n),
            None => Err(format!("partition must be an integer, got {n}")),
        },
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Ok(None)
            } else if let Ok(n) = t.parse::<i64>() {
                number(n)
            } else if t.starts_with("/dev/")
                && !t.contains('\0')
                && !t.split('/').any(|c| c == "..")
            {
                Ok(Some(PartitionRef::Device(PathBuf::from(t))))
            } else {
                Err(format!(
                    "partition must be a number or a block device path under /dev/, got `{s}`"
                ))
            }
        }
        other => Err(format!(
            "partition must be a number or a device path, got {}",
            json_type(other)
        )),
    }
}

/// Splits an absolute path into its components, refusing anything that could leave the
/// target filesystem or does not name a file.
fn path_components(path: &str) -> Result<Vec<String>, String> {
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if !path.starts_with('/') {
        return Err("the path must be absolute (start with /)".into());
    }
    if path.len() > MAX_PATH {
        return Err(format!("the path is longer than {MAX_PATH} bytes"));
    }
    if path.ends_with('/') || path.ends_with("/.") {
        return Err("directories not supported: the path must name a file".into());
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("`..` is not allowed in paths".into()),
            c if c.len() > MAX_NAME => {
                return Err(format!("a path component is longer than {MAX_NAME} bytes"));
            }
            c => out.push(c.to_string()),
        }
    }
    if out.is_empty() {
        return Err("the path must name a file".into());
    }
    Ok(out)
}

fn decode_base64(content: &str) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = content
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.len() as u64 > MAX_CONTENT_BYTES / 3 * 4 + 4 {
        return Err(format!(
            "content is larger than {} MiB",
            MAX_CONTENT_BYTES / MIB
        ));
    }
    STANDARD_PAD_INDIFFERENT
        .decode(&compact)
        .map_err(|e| format!("content is neither a URL (with ://) nor valid base64: {e}"))
}

// ---------------------------------------------------------------------------------------------
// URL templates

/// Formats `template` as Python's `str.format(node=node, ports=ports)` would for the fields a
/// URL can use: `{node[key]...}`, `{ports[N][key]...}`, `{{`/`}}`; plus the bare `{node}`
/// (node UUID) and `{ports}` (comma-separated port UUIDs). Only `http`/`https` results pass.
fn format_url(template: &str, node: &Value, ports: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if tail.starts_with('}') {
            return Err("single `}` (write `}}` for a literal brace)".into());
        } else {
            let end = tail
                .find('}')
                .ok_or("unmatched `{` (write `{{` for a literal brace)")?;
            out.push_str(&render_field(&tail[1..end], node, ports)?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    let url = reqwest::Url::parse(&out).map_err(|e| format!("`{out}` is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http:// and https:// URLs are supported, got `{}`",
            url.scheme()
        ));
    }
    Ok(out)
}

fn render_field(field: &str, node: &Value, ports: &Value) -> Result<String, String> {
    let end = field.find(['[', '.', '!', ':']).unwrap_or(field.len());
    let (name, mut rest) = field.split_at(end);
    let mut value = match name {
        "node" => node,
        "ports" => ports,
        "" => {
            return Err(format!(
                "`{{{field}}}`: positional fields are not supported; use {{node[...]}} or {{ports[...]}}"
            ));
        }
        other => {
            return Err(format!(
                "`{{{field}}}`: unknown name `{other}` (only node and ports are available)"
            ));
        }
    };
    if rest.is_empty() {
        return match name {
            "node" => node
                .get("uuid")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| "`{node}`: the node has no UUID".to_string()),
            _ => Ok(ports
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.get("uuid").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()),
        };
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| format!("`{{{field}}}`: missing `]`"))?;
            let key = &r[..close];
            value = match value {
                Value::Object(m) => m
                    .get(key)
                    .ok_or_else(|| format!("`{{{field}}}`: no key `{key}`"))?,
                Value::Array(a) => key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .ok_or_else(|| {
                        format!("`{{{field}}}`: no item `{key}` in a list of {}", a.len())
                    })?,
                other => {
                    return Err(format!(
                        "`{{{field}}}`: cannot look up `{key}` in a {}",
                        json_type(other)
                    ));
                }
            };
            rest = &r[close + 1..];
        } else if rest.starts_with('.') {
            return Err(format!(
                "`{{{field}}}`: attribute access is not supported; use [key]"
            ));
        } else {
            return Err(format!(
                "`{{{field}}}`: conversions and format specifications are not supported"
            ));
        }
    }
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(true) => Ok("True".into()),
        Value::Bool(false) => Ok("False".into()),
        Value::Null => Ok("None".into()),
        other => Err(format!(
            "`{{{field}}}` is a {}, not a single value",
            json_type(other)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Downloads

fn fetch_all(files: &[FileSpec], s: &DownloadSettings) -> HardwareResult<Vec<Option<Vec<u8>>>> {
    let mut client = None;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let Action::Url(url) = &f.action else {
            out.push(None);
            continue;
        };
        let fail = |m: String| {
            failed(
                "CommandExecutionError",
                format!("Unable to read data from {url} for {}: {m}", f.describe()),
            )
        };
        if client.is_none() {
            client = Some(http_client(s).map_err(&fail)?);
        }
        let Some(c) = client.as_ref() else {
            return Err(fail("no HTTP client".into()));
        };
        let body = download(c, url, s).map_err(fail)?;
        info!(file = %f.path, bytes = body.len(), "downloaded file content");
        out.push(Some(body));
    }
    Ok(out)
}

fn http_client(s: &DownloadSettings) -> Result<reqwest::blocking::Client, String> {
    let tls = crate::tls::client_config(s.insecure, s.cafile.as_deref(), &s.tls_min)
        .map_err(|e| e.to_string())?;
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(s.timeout)
        .connect_timeout(s.connect_timeout)
        .user_agent(concat!("ironic-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    s: &DownloadSettings,
) -> Result<Vec<u8>, String> {
    let mut attempt = 0;
    let resp = loop {
        match client.get(url).send() {
            Ok(r) => break r,
            // A refused certificate will not verify on a retry.
            Err(e)
                if e.is_connect()
                    && attempt < s.retries
                    && !crate::tls::is_certificate_error(&e) =>
            {
                attempt += 1;
                warn!(error = %e, attempt, "connection failed; retrying");
                std::thread::sleep(s.retry_interval);
            }
            Err(e) => return Err(crate::tls::describe_error(&e)),
        }
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if resp.content_length().is_some_and(|l| l > s.max_bytes) {
        return Err(format!("the content is larger than {} bytes", s.max_bytes));
    }
    let mut body = Vec::new();
    resp.take(s.max_bytes + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() as u64 > s.max_bytes {
        return Err(format!("the content is larger than {} bytes", s.max_bytes));
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Finding partitions

/// The install device and its partition table, looked up once.
struct RootDisk {
    device: PathBuf,
    table: table::PartitionTable,
}

fn root_disk(env: &Environment<'_>) -> HardwareResult<RootDisk> {
    let device = (env.root_device)()?;
    env.guard.check_writable(&device).map_err(guard_error)?;
    let table = table::read_table(&device)
        .map_err(|e| failed("DeploymentError", e.to_string()))?
        .ok_or_else(|| {
            HardwareError::DeviceNotFound(format!(
                "{} has no partition table, so no partition can hold the files",
                device.display()
            ))
        })?;
    let numbers: Vec<u32> = table
        .partitions
        .iter()
        .filter(|p| !p.is_extended())
        .map(|p| p.number)
        .collect();
    let missing = numbers
        .iter()
        .any(|n| !blockdev::is_block_device(&blockdev::partition_path(&device, *n)));
    if missing {
        blockdev::reread_partitions(&device, &numbers)
            .map_err(|e| failed("DeploymentError", e.to_string()))?;
    }
    Ok(RootDisk { device, table })
}

/// The disk a device belongs to: its parent for a partition, else the device itself.
fn disk_of(device: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let Some(name) = canonical.file_name() else {
        return canonical;
    };
    let sys = Path::new("/sys/class/block").join(name);
    if sys.join("partition").is_file()
        && let Ok(real) = std::fs::canonicalize(&sys)
        && let Some(parent) = real.parent().and_then(Path::file_name)
    {
        return Path::new("/dev").join(parent);
    }
    canonical
}

/// The device of every item, found before anything is written.
fn plan(files: &[FileSpec], env: &Environment<'_>) -> HardwareResult<Vec<PathBuf>> {
    let mut root: Option<RootDisk> = None;
    let mut devices: Vec<Option<PathBuf>> = vec![None; files.len()];
    let mut search = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match &f.partition {
            Some(PartitionRef::Number(n)) => {
                if root.is_none() {
                    root = Some(root_disk(env)?);
                }
                let Some(r) = root.as_ref() else { continue };
                match r.table.get(*n) {
                    Some(p) if !p.is_extended() => {
                        devices[i] = Some(blockdev::partition_path(&r.device, *n));
                    }
                    Some(_) => {
                        return Err(HardwareError::InvalidArgs(format!(
                            "{}: partition {n} of {} is an extended partition and holds no filesystem",
                            f.describe(),
                            r.device.display()
                        )));
                    }
                    None => {
                        let have: Vec<String> =
                            r.table.numbers().iter().map(u32::to_string).collect();
                        return Err(HardwareError::DeviceNotFound(format!(
                            "{}: partition {n} does not exist on {} (partitions: {})",
                            f.describe(),
                            r.device.display(),
                            have.join(", ")
                        )));
                    }
                }
            }
            Some(PartitionRef::Device(p)) => {
                if !blockdev::is_block_device(p) {
                    return Err(HardwareError::DeviceNotFound(format!(
                        "{}: {} is not a block device",
                        f.describe(),
                        p.display()
                    )));
                }
                let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                env.guard
                    .check_writable(&disk_of(&canonical))
                    .map_err(guard_error)?;
                devices[i] = Some(canonical);
            }
            None => search.push(i),
        }
    }
    if !search.is_empty() {
        if root.is_none() {
            root = Some(root_disk(env)?);
        }
        if let Some(r) = root.as_ref() {
            find_partitions(files, &search, r, &mut devices)?;
        }
    }
    devices
        .into_iter()
        .zip(files)
        .map(|(d, f)| {
            d.ok_or_else(|| {
                HardwareError::DeviceNotFound(format!("no partition found for {}", f.describe()))
            })
        })
        .collect()
}

/// Mounts each partition of the install disk read-only in turn until every searched item's
/// first path component is found as a directory on one.
fn find_partitions(
    files: &[FileSpec],
    search: &[usize],
    root: &RootDisk,
    devices: &mut [Option<PathBuf>],
) -> HardwareResult<()> {
    let mut scanned = Vec::new();
    for part in &root.table.partitions {
        if search.iter().all(|i| devices[*i].is_some()) {
            break;
        }
        if part.is_extended() {
            continue;
        }
        let dev = blockdev::partition_path(&root.device, part.number);
        let fstype = match probe::probe(&dev) {
            Ok(Some(p)) if SKIPPED_FILESYSTEMS.contains(&p.fstype) => {
                debug!(partition = %dev.display(), fstype = p.fstype, "skipping partition");
                scanned.push(format!("{} ({}, skipped)", dev.display(), p.fstype));
                continue;
            }
            Ok(Some(p)) => p.fstype,
            Ok(None) => "unknown",
            Err(e) => {
                warn!(partition = %dev.display(), error = %e, "cannot inspect partition");
                scanned.push(format!("{} (unreadable)", dev.display()));
                continue;
            }
        };
        let mounted = match Mounted::new(&dev, false) {
            Ok(m) => m,
            Err(e) => {
                warn!(partition = %dev.display(), error = %e, "failure when inspecting partition");
                scanned.push(format!("{} ({fstype}, not mountable)", dev.display()));
                continue;
            }
        };
        scanned.push(format!("{} ({fstype})", dev.display()));
        let root_dir = match open_root(&mounted.dir) {
            Ok(d) => d,
            Err(e) => {
                warn!(partition = %dev.display(), error = %e, "cannot open the mounted partition");
                continue;
            }
        };
        for &i in search {
            if devices[i].is_some() {
                continue;
            }
            let Some(first) = files[i].components.first() else {
                continue;
            };
            let mut walker = Walker::new(root_dir.as_fd());
            match walker.walk([first.as_bytes().to_vec()], None) {
                Ok(true) => {
                    info!(path = %files[i].path, partition = %dev.display(), "found /{first}");
                    devices[i] = Some(dev.clone());
                }
                Ok(false) => {}
                Err(e) => debug!(partition = %dev.display(), error = %e, "not usable"),
            }
        }
        drop(root_dir);
        drop(mounted);
    }
    let missing: Vec<String> = search
        .iter()
        .filter(|i| devices[**i].is_none())
        .map(|i| {
            let first = files[*i]
                .components
                .first()
                .map(String::as_str)
                .unwrap_or("");
            format!("/{first} (for {})", files[*i].describe())
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HardwareError::DeviceNotFound(format!(
            "No partition found with path {} on {}, scanned: {}",
            missing.join(", "),
            root.device.display(),
            if scanned.is_empty() {
                "nothing".to_string()
            } else {
                scanned.join(", ")
            }
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

fn apply_all(
    files: &[FileSpec],
    devices: &[PathBuf],
    fetched: &[Option<Vec<u8>>],
    guard: &DiskGuard,
) -> HardwareResult<()> {
    let mut current: Option<Mounted> = None;
    for ((f, dev), body) in files.iter().zip(devices).zip(fetched) {
        if current.as_ref().is_none_or(|m| m.device != *dev) {
            // Unmount the previous filesystem before the guard looks at the disk again.
            drop(current.take());
            guard.check_writable(&disk_of(dev)).map_err(guard_error)?;
            current = Some(Mounted::new(dev, true).map_err(|e| {
                failed(
                    "DeploymentError",
                    format!("Cannot mount {} for {}: {e}", dev.display(), f.describe()),
                )
            })?);
        }
        let Some(m) = current.as_ref() else { continue };
        let content = match &f.action {
            Action::Delete => None,
            Action::Inline(b) => Some(b.as_slice()),
            // Never None here (fetched before); an error rather than a delete if it were.
            Action::Url(_) => Some(body.as_deref().ok_or_else(|| {
                failed(
                    "CommandExecutionError",
                    format!("no content was downloaded for {}", f.describe()),
                )
            })?),
        };
        let done = apply_one(&m.dir, f, content).map_err(|e| {
            failed(
                "CommandExecutionError",
                format!("Failed to process file {}: {e}", f.describe()),
            )
        })?;
        info!(file = %f.path, partition = %dev.display(), "{done}");
    }
    drop(current);
    Ok(())
}

/// Writes or deletes one file below `mount` (a mounted filesystem, treated as `/`). Returns
/// what happened, for the log.
fn apply_one(mount: &Path, f: &FileSpec, content: Option<&[u8]>) -> Result<String, String> {
    let root = open_root(mount).map_err(|e| format!("opening {}: {e}", mount.display()))?;
    let mut w = Walker::new(root.as_fd());
    let Some((name, parents)) = f.components.split_last() else {
        return Err("the path names no file".into());
    };
    let parents = parents.iter().map(|c| c.as_bytes().to_vec());
    let Some(content) = content else {
        // Delete: a missing directory means there is nothing to delete.
        if !w.walk(parents, None)? {
            return Ok("already absent".into());
        }
        let at = w.shown(Some(name.as_bytes()));
        let cname = c_name(name.as_bytes())?;
        return match unlink_at(w.cur(), &cname) {
            Ok(()) => Ok("deleted".into()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok("already absent".into()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {
                Err(format!("{at} is a directory; only files can be deleted"))
            }
            Err(e) => Err(format!("deleting {at}: {e}")),
        };
    };

    if !w.walk(parents, Some(f.dirmode))? {
        return Err("the directory could not be created".into());
    }
    let mut name = name.as_bytes().to_vec();
    let existed = loop {
        let at = w.shown(Some(&name));
        let cname = c_name(&name)?;
        let Some(st) = stat_at(w.cur(), &cname).map_err(|e| format!("inspecting {at}: {e}"))?
        else {
            break false;
        };
        match file_kind(&st) {
            Kind::File => break true,
            Kind::Dir => return Err(format!("{at} is a directory")),
            Kind::Other => {
                return Err(format!(
                    "{at} is not a regular file (a device, FIFO or socket); refusing to write it"
                ));
            }
            Kind::Link => {
                w.hop(&at)?;
                let target =
                    readlink_at(w.cur(), &cname).map_err(|e| format!("reading link {at}: {e}"))?;
                if target.ends_with(b"/") {
                    return Err(format!("{at} is a symbolic link to a directory"));
                }
                if target.starts_with(b"/") {
                    w.back_to_root();
                }
                let mut comps: Vec<Vec<u8>> = target
                    .split(|b| *b == b'/')
                    .filter(|c| !c.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
                match comps.pop() {
                    Some(last) if last != b"." && last != b".." => {
                        if !w.walk(comps, None)? {
                            return Err(format!(
                                "{at} is a symbolic link into a directory missing from the image"
                            ));
                        }
                        name = last;
                    }
                    _ => return Err(format!("{at} is a symbolic link to a directory")),
                }
            }
        }
    };
    let at = w.shown(Some(&name));
    let mut file = create_at(w.cur(), &c_name(&name)?).map_err(|e| format!("opening {at}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("inspecting {at}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{at} is not a regular file"));
    }
    file.write_all(content)
        .map_err(|e| format!("writing {at}: {e}"))?;
    // Ownership first: chown(2) clears set-id bits, which `mode` may ask for.
    if f.owner.is_some() || f.group.is_some() {
        std::os::unix::fs::fchown(&file, f.owner, f.group)
            .map_err(|e| format!("changing the owner of {at}: {e}"))?;
    }
    let mode = f.mode.or((!existed).then_some(DEFAULT_FILE_MODE));
    if let Some(m) = mode {
        file.set_permissions(Permissions::from_mode(m))
            .map_err(|e| format!("changing the mode of {at}: {e}"))?;
    }
    file.sync_all().map_err(|e| format!("syncing {at}: {e}"))?;
    Ok(format!(
        "wrote {} bytes to {at}{}",
        content.len(),
        if existed { " (replaced)" } else { "" }
    ))
}

// ---------------------------------------------------------------------------------------------
// Resolving paths inside a filesystem

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link,
    Other,
}

fn file_kind(st: &libc::stat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    }
}

/// Resolves directories below `root` as a `chroot` would: each step is an `openat` of one
/// name with `O_NOFOLLOW` relative to the directory before it; links are read and expanded
/// here, `/` in a link target means `root`, and `..` stops at `root`.
struct Walker<'r> {
    root: BorrowedFd<'r>,
    /// Open directories from `root` (exclusive) down, with their names.
    stack: Vec<(File, Vec<u8>)>,
    hops: u32,
}

impl<'r> Walker<'r> {
    fn new(root: BorrowedFd<'r>) -> Self {
        Walker {
            root,
            stack: Vec::new(),
            hops: 0,
        }
    }

    /// The current directory.
    fn cur(&self) -> BorrowedFd<'_> {
        self.stack
            .last()
            .map(|(f, _)| f.as_fd())
            .unwrap_or(self.root)
    }

    fn back_to_root(&mut self) {
        self.stack.clear();
    }

    /// The current directory (and `name` in it) as a path inside the image, for messages.
    fn shown(&self, name: Option<&[u8]>) -> String {
        let mut parts: Vec<&[u8]> = self.stack.iter().map(|(_, n)| n.as_slice()).collect();
        parts.extend(name);
        let joined: Vec<String> = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        format!("/{}", joined.join("/"))
    }

    fn hop(&mut self, at: &str) -> Result<(), String> {
        self.hops += 1;
        if self.hops > MAX_SYMLINKS {
            return Err(format!("too many levels of symbolic links at {at}"));
        }
        Ok(())
    }

    /// Descends through `comps` from the current directory; true when every component
    /// resolved to a directory. With `create`, missing directories are made (mode 0755, or
    /// the given mode for the last one, as IPA's `dirmode`); without it a missing one ends the
    /// walk with `false`.
    fn walk(
        &mut self,
        comps: impl IntoIterator<Item = Vec<u8>>,
        create: Option<Option<u32>>,
    ) -> Result<bool, String> {
        let mut pending: VecDeque<Vec<u8>> = comps.into_iter().collect();
        let mut created_leaf = false;
        while let Some(c) = pending.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    self.stack.pop();
                    created_leaf = false;
                    continue;
                }
                _ => {}
            }
            let at = self.shown(Some(&c));
            let name = c_name(&c)?;
            let st = stat_at(self.cur(), &name).map_err(|e| format!("inspecting {at}: {e}"))?;
            match st.as_ref().map(file_kind) {
                None => {
                    if create.is_none() {
                        return Ok(false);
                    }
                    match mkdir_at(self.cur(), &name, DEFAULT_DIR_MODE) {
                        Ok(()) => created_leaf = true,
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => created_leaf = false,
                        Err(e) => return Err(format!("creating directory {at}: {e}")),
                    }
                    let dir = open_dir_at(self.cur(), &name)
                        .map_err(|e| format!("opening directory {at}: {e}"))?;
                    if created_leaf {
                        dir.set_permissions(Permissions::from_mode(DEFAULT_DIR_MODE))
                            .map_err(|e| format!("changing the mode of {at}: {e}"))?;
                    }
                    self.stack.push((dir, c));
                }
                Some(Kind::Dir) => {
                    let dir = open_dir_at(self.cur(), &name)
                        .map_err(|e| format!("opening directory {at}: {e}"))?;
                    self.stack.push((dir, c));
                    created_leaf = false;
                }
                Some(Kind::Link) => {
                    self.hop(&at)?;
                    let target = readlink_at(self.cur(), &name)
                        .map_err(|e| format!("reading link {at}: {e}"))?;
                    if target.starts_with(b"/") {
                        self.back_to_root();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        pending.push_front(part.to_vec());
                    }
                    created_leaf = false;
                }
                Some(Kind::File | Kind::Other) => {
                    return Err(format!("{at} exists in the image and is not a directory"));
                }
            }
        }
        if created_leaf
            && let Some(Some(mode)) = create
            && let Some((dir, _)) = self.stack.last()
        {
            dir.set_permissions(Permissions::from_mode(mode))
                .map_err(|e| format!("changing the mode of {}: {e}", self.shown(None)))?;
        }
        Ok(true)
    }
}

// Thin wrappers over the `*at` system calls std does not offer.

fn c_name(name: &[u8]) -> Result<CString, String> {
    CString::new(name).map_err(|_| "a file name contains a NUL byte".to_string())
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens the root directory of a mount.
fn open_root(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated, `st` is writable memory for one `stat`, and `dir` is an
    // open descriptor borrowed for the duration of the call.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match cvt(rc) {
        // SAFETY: fstatat succeeded, so it initialised `st`.
        Ok(_) => Ok(Some(unsafe { st.assume_init() })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn open_at(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor; the mode is passed as
    // the variadic `mode_t` argument openat expects (ignored without O_CREAT).
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens directory `name` in `dir`, refusing a symbolic link.
fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens regular file `name` in `dir` for writing, creating or truncating it; never follows a
/// symbolic link and never blocks on a FIFO.
fn create_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    open_at(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK | libc::O_NOCTTY,
        DEFAULT_FILE_MODE,
    )
}

fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor; flags 0 removes a
    // non-directory entry (a symbolic link itself, never its target).
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAX_PATH + 1];
    // SAFETY: `name` is NUL-terminated, `dir` is an open descriptor and `buf` is writable for
    // `buf.len()` bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

// ---------------------------------------------------------------------------------------------
// Mounting

/// A filesystem mounted on a private temporary directory (`nodev,nosuid,noexec`), unmounted
/// and its directory removed when dropped, on every path out of the code using it.
#[derive(Debug)]
struct Mounted {
    /// The mount point.
    dir: PathBuf,
    /// The mounted device.
    device: PathBuf,
}

impl Mounted {
    /// Mounts `device` (read-write with `writable`, else read-only).
    fn new(device: &Path, writable: bool) -> Result<Mounted, String> {
        let dir = private_dir()?;
        // From here on, Drop cleans up whatever happens.
        let m = Mounted {
            dir,
            device: device.to_path_buf(),
        };
        let out = Command::new("mount")
            .arg(if writable { "-w" } else { "-r" })
            .args(["-o", "nodev,nosuid,noexec"])
            .arg(device)
            .arg(&m.dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount {} failed: {}",
                device.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if !is_mountpoint(&m.dir) {
            return Err(format!(
                "mount {} reported success but nothing is mounted on {}",
                device.display(),
                m.dir.display()
            ));
        }
        debug!(device = %device.display(), dir = %m.dir.display(), writable, "mounted");
        Ok(m)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for attempt in 1..=UMOUNT_TRIES + 2 {
            if !is_mountpoint(&self.dir) {
                break;
            }
            let lazy = attempt > UMOUNT_TRIES;
            match umount(&self.dir, if lazy { libc::MNT_DETACH } else { 0 }) {
                Ok(()) if lazy => {
                    warn!(dir = %self.dir.display(), "the mount was busy; detached it lazily");
                }
                Ok(()) => {}
                Err(e) => {
                    debug!(dir = %self.dir.display(), error = %e, attempt, "unmount failed");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        if is_mountpoint(&self.dir) {
            error!(
                dir = %self.dir.display(), device = %self.device.display(),
                "could not unmount; leaving the mount point in place"
            );
            return;
        }
        // Only removes an empty directory: never anything of the unmounted filesystem.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "could not remove the mount point");
        }
    }
}

fn umount(dir: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    cvt(unsafe { libc::umount2(c.as_ptr(), flags) }).map(drop)
}

/// Whether something is mounted on `dir` (its device differs from its parent's).
fn is_mountpoint(dir: &Path) -> bool {
    let (Ok(d), Some(parent)) = (std::fs::symlink_metadata(dir), dir.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != d.dev())
}

/// A new empty directory only root can enter, under the temp directory.
fn private_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let p = base.join(format!(
            "ironic-agent-inject-{:016x}",
            rand::random::<u64>()
        ));
        match DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating a mount point in {}: {e}", base.display())),
        }
    }
    Err(format!("no free mount point name in {}", base.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::os::unix::fs::symlink;

    use base64::engine::general_purpose::STANDARD;
    use hardware_managers::StepKind;
    use hardware_managers::generic::backend::StepBackend as _;
    use serde_json::json;

    use super::*;
    use crate::disk::table::{PartitionKind, PartitionSpec, TableKind};
    use crate::testutil::LoopDevice;

    const NODE_UUID: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";

    fn node(props: Value) -> Node {
        Node {
            uuid: Some(NODE_UUID.into()),
            properties: match props {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            ..Node::default()
        }
    }

    fn ports() -> Vec<Port> {
        vec![
            Port {
                address: Some("52:54:00:12:34:56".into()),
                uuid: Some("port-a".into()),
                extra: Map::new(),
            },
            Port {
                address: Some("52:54:00:ab:cd:ef".into()),
                uuid: Some("port-b".into()),
                extra: Map::new(),
            },
        ]
    }

    fn args(files: Value) -> Map<String, Value> {
        Map::from_iter([("files".to_string(), files)])
    }

    fn b64(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    fn unique() -> String {
        format!("inject-test-{:016x}", rand::random::<u64>())
    }

    fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
        let out = cmd.output()?;
        anyhow::ensure!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// A spec as validation would build it, for the resolver tests.
    fn spec(path: &str) -> anyhow::Result<FileSpec> {
        Ok(FileSpec {
            label: "files[0]".into(),
            path: path.into(),
            components: path_components(path).map_err(anyhow::Error::msg)?,
            partition: None,
            action: Action::Inline(Vec::new()),
            mode: None,
            dirmode: None,
            owner: None,
            group: None,
        })
    }

    // ---- validation, templates, step catalogue (no disks) ----------------------------------

    #[test]
    fn bad_items_are_all_reported_as_invalid_args() -> anyhow::Result<()> {
        let ok = b64(b"x");
        let files = json!([
            {"content": ok},
            {"path": "etc/relative", "content": ok},
            {"path": "/../x", "content": ok},
            {"path": "/etc/../../x", "content": ok},
            {"path": "/etc/\u{0}x", "content": ok},
            {"path": "/etc/", "content": ok},
            {"path": "/rootfile", "content": ok},
            {"path": "/etc/a", "content": "%%% not base64 %%%"},
            {"path": "/etc/a", "content": ok, "deleted": true},
            {"path": "/etc/a", "content": ok, "mode": "0644"},
            {"path": "/etc/a", "content": ok, "owner": true},
            {"path": "/etc/a", "content": ok, "dirmode": 70000},
            {"path": "/etc/a", "content": ok, "bogus": 1},
            {"path": "/etc/nocontent"},
            {"path": "/etc/a", "content": ok, "partition": 0},
            {"path": "/etc/a", "content": ok, "partition": "sda1"},
            {"path": "/etc/a", "content": "http://h/{nope}"},
            {"path": "/etc/a", "content": "ftp://h/x"},
            42
        ]);
        let err = validate_files(&node(json!({})), &ports(), Some(&files)).err();
        let Some(HardwareError::InvalidArgs(msg)) = err else {
            anyhow::bail!("expected InvalidArgs, got {err:?}");
        };
        assert!(msg.starts_with("Validation of files failed: "), "{msg}");
        for needle in [
            "files[0]: expected a path",
            "files[1] (etc/relative): the path must be absolute",
            "files[2] (/../x): `..` is not allowed",
            "files[3] (/etc/../../x): `..` is not allowed",
            "files[4]",
            "NUL byte",
            "files[5] (/etc/): directories not supported",
            "files[6] (/rootfile): files in the root directory require \"partition\"",
            "files[7] (/etc/a): content is neither a URL (with ://) nor valid base64",
            "files[8] (/etc/a): content cannot be used with deleted",
            "files[9] (/etc/a): mode must be a number",
            "files[10] (/etc/a): owner must be a number",
            "files[11] (/etc/a): dirmode must be between 0 and 4095",
            "files[12] (/etc/a): unexpected fields: bogus",
            "files[13] (/etc/nocontent): content is required unless deleted is true",
            "files[14] (/etc/a): partition numbers start at 1",
            "files[15] (/etc/a): partition must be a number or a block device path under /dev/",
            "files[16] (/etc/a): content URL `http://h/{nope}`: `{nope}`: unknown name `nope`",
            "files[17] (/etc/a): content URL `ftp://h/x`: only http:// and https://",
            "files[18] must be an object, got number",
        ] {
            assert!(msg.contains(needle), "missing `{needle}` in: {msg}");
        }

        let e = validate_files(&node(json!({"inject_files": {"path": "/x"}})), &[], None).err();
        assert!(
            matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("The `inject_files` node property must be a list, got object")),
            "{e:?}"
        );
        let e = validate_files(&node(json!({})), &[], Some(&json!("x"))).err();
        assert!(
            matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("The `files` argument must be a list")),
            "{e:?}"
        );
        assert!(matches!(
            parse_verify_ca(Some(&json!("perhaps"))),
            Err(HardwareError::InvalidArgs(_))
        ));
        assert!(!parse_verify_ca(Some(&json!(false))).map_err(anyhow::Error::msg)?);
        assert!(!parse_verify_ca(Some(&json!("no"))).map_err(anyhow::Error::msg)?);
        assert!(parse_verify_ca(None).map_err(anyhow::Error::msg)?);
        Ok(())
    }

    #[test]
    fn items_are_merged_and_normalised() -> anyhow::Result<()> {
        let n = node(json!({"inject_files": [
            {"path": "/etc/from-props", "content": b64(b"p"), "deleted": null}
        ]}));
        let files = json!([
            {"path": "//etc/./sysctl.d//my.conf", "content": b64(b"x=1\n"), "mode": 420,
             "dirmode": 448, "owner": -1, "group": 0, "partition": " 2 "},
            {"path": "/boot.cfg", "deleted": true, "content": "", "partition": "/dev/disk/by-partlabel/boot"},
            {"path": "/etc/url", "content": "https://h/{node[uuid]}/{ports[1][address]}"}
        ]);
        let specs = validate_files(&n, &ports(), Some(&files)).map_err(anyhow::Error::msg)?;
        assert_eq!(specs.len(), 4);
        assert_eq!(specs[0].label, "node.properties.inject_files[0]");
        assert_eq!(specs[0].action, Action::Inline(b"p".to_vec()));
        assert_eq!(specs[1].label, "files[0]");
        assert_eq!(specs[1].components, ["etc", "sysctl.d", "my.conf"]);
        assert_eq!(specs[1].partition, Some(PartitionRef::Number(2)));
        assert_eq!(
            (
                specs[1].mode,
                specs[1].dirmode,
                specs[1].owner,
                specs[1].group
            ),
            (Some(0o644), Some(0o700), None, Some(0))
        );
        assert_eq!(specs[2].action, Action::Delete);
        assert_eq!(
            specs[2].partition,
            Some(PartitionRef::Device("/dev/disk/by-partlabel/boot".into()))
        );
        assert_eq!(
            specs[3].action,
            Action::Url(format!("https://h/{NODE_UUID}/52:54:00:ab:cd:ef"))
        );
        // Nothing at all: success without touching any disk.
        let never = || -> HardwareResult<PathBuf> {
            Err(HardwareError::DeviceNotFound("must not be asked".into()))
        };
        let env = Environment {
            root_device: &never,
            guard: DiskGuard::new(Vec::new(), Path::new("/")),
            download: DownloadSettings::default(),
        };
        assert_eq!(
            inject_files(&node(json!({})), &[], &Map::new(), &env).map_err(anyhow::Error::msg)?,
            Value::Null
        );
        Ok(())
    }

    #[test]
    fn url_templates_follow_python_format() -> anyhow::Result<()> {
        let n = serde_json::to_value(node(json!({"flag": true, "n": 3})))?;
        let p = serde_json::to_value(ports())?;
        let f = |t: &str| format_url(t, &n, &p);
        assert_eq!(
            f("http://h/{node}/{ports}").map_err(anyhow::Error::msg)?,
            format!("http://h/{NODE_UUID}/port-a,port-b")
        );
        assert_eq!(
            f("http://h/{node[uuid]}?mac={ports[0][address]}&f={node[properties][flag]}&n={node[properties][n]}")
                .map_err(anyhow::Error::msg)?,
            format!("http://h/{NODE_UUID}?mac=52:54:00:12:34:56&f=True&n=3")
        );
        assert_eq!(
            f("http://h/{{literal}}").map_err(anyhow::Error::msg)?,
            "http://h/{literal}"
        );
        for (t, needle) in [
            ("http://h/{node[nope]}", "no key `nope`"),
            ("http://h/{ports[5][uuid]}", "no item `5` in a list of 2"),
            ("http://h/{node.uuid}", "attribute access is not supported"),
            ("http://h/{0}", "unknown name `0`"),
            ("http://h/{}", "positional fields are not supported"),
            (
                "http://h/{node[uuid]!r}",
                "conversions and format specifications",
            ),
            ("http://h/{node", "unmatched `{`"),
            ("http://h/}", "single `}`"),
            (
                "http://h/{node[properties]}",
                "is a object, not a single value",
            ),
            ("file:///etc/passwd", "only http:// and https://"),
        ] {
            match f(t) {
                Err(m) => assert!(m.contains(needle), "{t}: {m}"),
                Ok(u) => anyhow::bail!("{t} formatted to {u}"),
            }
        }
        Ok(())
    }

    #[test]
    fn priority_comes_from_the_kernel_command_line() {
        let p = |s: &str| priority(&KernelParams::parse(s));
        assert_eq!(p(""), 0);
        assert_eq!(p("ipa-inject-files-priority=55"), 55);
        assert_eq!(p("ipa-inject-files-priority=99"), 99);
        assert_eq!(p("ipa-inject-files-priority=100"), 0);
        assert_eq!(p("ipa-inject-files-priority=-1"), 0);
        assert_eq!(p("ipa-inject-files-priority=soon"), 0);
    }

    #[test]
    fn offered_as_deploy_and_service_step() -> anyhow::Result<()> {
        let steps = crate::deploy::steps::AgentSteps::new();
        for kind in [StepKind::Deploy, StepKind::Service] {
            let all = steps.steps(kind);
            let s = all
                .iter()
                .find(|s| s.step == "inject_files")
                .ok_or_else(|| anyhow::anyhow!("no inject_files in {kind:?}"))?;
            assert_eq!((s.interface.as_str(), s.priority), ("deploy", 0));
            assert!(!s.reboot_requested && s.abortable.is_none());
            let info = s.argsinfo.clone().unwrap_or_default();
            assert_eq!(
                info.keys().map(String::as_str).collect::<Vec<_>>(),
                ["files", "verify_ca"]
            );
            assert!(info.values().all(|a| !a.required));
        }
        assert!(
            !steps
                .steps(StepKind::Clean)
                .iter()
                .any(|s| s.step == "inject_files")
        );
        Ok(())
    }

    // ---- path resolution inside a tree (a plain directory; no mounts) -----------------------

    #[test]
    fn symlinks_in_the_image_cannot_escape_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        let u = unique();
        std::fs::create_dir_all(root.join("conf"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::write(root.join("conf/file"), b"regular")?;
        symlink("/", root.join("etc"))?;
        symlink("../../../..", root.join("conf/up"))?;
        symlink(format!("/tmp/{u}-c"), root.join("conf/abs"))?;
        symlink("loop", root.join("conf/loop"))?;
        symlink("/tmp/", root.join("conf/dirlink"))?;
        symlink("/missing/x", root.join("conf/dangling"))?;
        run_cmd(Command::new("mkfifo").arg(root.join("conf/fifo")))?;
        let host = |p: &str| Path::new(p).symlink_metadata().is_ok();
        assert!(!host(&format!("/{u}-a")) && !host(&format!("/tmp/{u}-c")));

        let write = |path: &str, body: &[u8]| -> anyhow::Result<Result<String, String>> {
            Ok(apply_one(&root, &spec(path)?, Some(body)))
        };
        // `etc -> /` lands in the tree's root, `conf/up` climbs no higher than it.
        write(&format!("/etc/{u}-a"), b"a")?.map_err(anyhow::Error::msg)?;
        write(&format!("/conf/up/{u}-b"), b"b")?.map_err(anyhow::Error::msg)?;
        // A final component linking to an absolute path is followed inside the tree.
        write("/conf/abs", b"c")?.map_err(anyhow::Error::msg)?;
        assert_eq!(std::fs::read(root.join(format!("{u}-a")))?, b"a");
        assert_eq!(std::fs::read(root.join(format!("{u}-b")))?, b"b");
        assert_eq!(std::fs::read(root.join(format!("tmp/{u}-c")))?, b"c");
        assert!(
            root.join("conf/abs")
                .symlink_metadata()?
                .file_type()
                .is_symlink()
        );
        assert!(!host(&format!("/{u}-a")) && !host(&format!("/{u}-b")));
        assert!(!host(&format!("/tmp/{u}-c")));

        for (path, needle) in [
            ("/conf/loop", "too many levels of symbolic links"),
            ("/conf/fifo", "not a regular file"),
            ("/conf/dirlink", "symbolic link to a directory"),
            ("/conf/dangling", "into a directory missing from the image"),
            (
                "/conf/file/x",
                "/conf/file exists in the image and is not a directory",
            ),
            ("/conf", "/conf is a directory"),
        ] {
            match write(path, b"x")? {
                Err(m) => assert!(m.contains(needle), "{path}: {m}"),
                Ok(m) => anyhow::bail!("{path} was written: {m}"),
            }
        }

        // New directories: 0755, the leaf gets dirmode.
        let mut s = spec(&format!("/etc/new/leaf/{u}-d"))?;
        s.dirmode = Some(0o700);
        apply_one(&root, &s, Some(b"d")).map_err(anyhow::Error::msg)?;
        let mode = |p: &str| -> anyhow::Result<u32> {
            Ok(std::fs::metadata(root.join(p))?.permissions().mode() & 0o7777)
        };
        assert_eq!(mode("new")?, 0o755);
        assert_eq!(mode("new/leaf")?, 0o700);
        assert_eq!(mode(&format!("new/leaf/{u}-d"))?, 0o644);

        // Deleting removes a link itself, never its target; absent is fine; directories are not.
        let del = |path: &str| -> anyhow::Result<Result<String, String>> {
            let mut s = spec(path)?;
            s.action = Action::Delete;
            Ok(apply_one(&root, &s, None))
        };
        assert_eq!(del("/conf/abs")?.map_err(anyhow::Error::msg)?, "deleted");
        assert!(root.join(format!("tmp/{u}-c")).exists());
        assert!(root.join("conf/abs").symlink_metadata().is_err());
        assert_eq!(
            del("/conf/abs")?.map_err(anyhow::Error::msg)?,
            "already absent"
        );
        assert_eq!(
            del("/no/such/dir/x")?.map_err(anyhow::Error::msg)?,
            "already absent"
        );
        assert_eq!(
            del(&format!("/etc/{u}-a"))?.map_err(anyhow::Error::msg)?,
            "deleted"
        );
        assert!(!root.join(format!("{u}-a")).exists());
        assert!(del("/conf")?.is_err_and(|m| m.contains("is a directory")));
        Ok(())
    }

    /// Every entry below `dir` (relative paths) with the contents of the files.
    fn snapshot(dir: &Path) -> anyhow::Result<Vec<(String, Option<Vec<u8>>)>> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                let meta = p.symlink_metadata()?;
                let rel = p.strip_prefix(dir)?.display().to_string();
                if meta.is_dir() {
                    todo.push(p);
                    out.push((rel, None));
                } else {
                    out.push((rel, Some(std::fs::read(&p)?)));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    #[test]
    fn links_to_real_host_paths_are_resolved_inside_the_image() -> anyhow::Result<()> {
        // `outside` is a real directory next to the image: any link below that the kernel
        // followed would land in it.
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("etc"))?;
        std::fs::create_dir_all(&outside)?;
        std::fs::write(outside.join("sentinel"), b"host")?;
        let before = snapshot(&outside)?;
        let abs = outside.display().to_string();
        let abs_in_image = abs.trim_start_matches('/');
        // Parent directories that are links: absolute, relative climbing out of the image,
        // through a link to `/`.
        symlink(&outside, root.join("abs_parent"))?;
        symlink("../outside", root.join("rel_parent"))?;
        symlink("../../../../../../../../outside", root.join("etc/deep_rel"))?;
        symlink("/", root.join("slash"))?;
        // Final components that are links to the host's file.
        symlink(outside.join("sentinel"), root.join("final_abs"))?;
        symlink("../outside/sentinel", root.join("etc/final_rel"))?;

        let write = |path: &str, body: &[u8]| -> anyhow::Result<String> {
            apply_one(&root, &spec(path)?, Some(body)).map_err(anyhow::Error::msg)
        };
        write("/abs_parent/a", b"a")?;
        write("/rel_parent/b", b"b")?;
        write("/etc/deep_rel/c", b"c")?;
        write(&format!("/slash/{abs_in_image}/d"), b"d")?;
        write("/final_abs", b"e")?;
        write("/etc/final_rel", b"f")?;
        let mut del = spec("/abs_parent/sentinel")?;
        del.action = Action::Delete;
        // The image's own copy (just written through /final_abs) goes; the host's stays.
        assert_eq!(
            apply_one(&root, &del, None).map_err(anyhow::Error::msg)?,
            "deleted"
        );

        assert_eq!(snapshot(&outside)?, before, "the host directory changed");
        let inside = |p: &str| std::fs::read(root.join(p)).ok();
        assert_eq!(
            inside(&format!("{abs_in_image}/a")).as_deref(),
            Some(&b"a"[..])
        );
        assert_eq!(inside("outside/b").as_deref(), Some(&b"b"[..]));
        assert_eq!(inside("outside/c").as_deref(), Some(&b"c"[..]));
        assert_eq!(
            inside(&format!("{abs_in_image}/d")).as_deref(),
            Some(&b"d"[..])
        );
        assert_eq!(
            inside(&format!("{abs_in_image}/sentinel")),
            None,
            "deleted in the image"
        );
        assert_eq!(inside("outside/sentinel").as_deref(), Some(&b"f"[..]));
        // The links themselves are untouched.
        for link in [
            "abs_parent",
            "rel_parent",
            "etc/deep_rel",
            "slash",
            "final_abs",
            "etc/final_rel",
        ] {
            assert!(
                root.join(link).symlink_metadata()?.file_type().is_symlink(),
                "{link}"
            );
        }
        Ok(())
    }

    #[test]
    fn url_content_verifies_certificates() -> anyhow::Result<()> {
        let server = crate::tls::testing::https_server(b"from https".to_vec())?;
        let dir = tempfile::tempdir()?;
        let ca = server.ca_file(dir.path())?;
        let url = format!("{}/file", server.url);
        let mut item = spec("/etc/x")?;
        item.action = Action::Url(url.clone());
        let strict = DownloadSettings {
            retries: 3,
            retry_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            ..DownloadSettings::default()
        };
        let started = std::time::Instant::now();
        let e = fetch_all(std::slice::from_ref(&item), &strict).err();
        assert!(
            matches!(&e, Some(HardwareError::Failed { kind, message })
                if kind == "CommandExecutionError"
                    && message.contains(&format!("Unable to read data from {url}"))
                    && message.contains("TLS certificate verification failed (UnknownIssuer)")),
            "{e:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a refused certificate is not retried ({:?})",
            started.elapsed()
        );
        for settings in [
            DownloadSettings {
                cafile: Some(ca.clone()),
                ..strict.clone()
            },
            DownloadSettings {
                insecure: true,
                ..strict.clone()
            },
        ] {
            let got =
                fetch_all(std::slice::from_ref(&item), &settings).map_err(anyhow::Error::msg)?;
            assert_eq!(got, vec![Some(b"from https".to_vec())]);
        }
        Ok(())
    }

    // ---- on loop devices ----------------------------------------------------------------------

    enum Fs<'a> {
        Ext4(&'a Path),
        Swap,
    }

    /// A 64 MiB loop disk with a GPT of 16 MiB partitions formatted as asked (ext4 filled
    /// from a directory with `mkfs.ext4 -d`).
    fn test_disk(dir: &Path, parts: &[Fs<'_>]) -> anyhow::Result<LoopDevice> {
        let lo = LoopDevice::create(&dir.join("disk.img"), 64 << 20)?;
        let specs: Vec<PartitionSpec> = (1..=parts.len())
            .map(|i| PartitionSpec {
                size_mib: 16,
                kind: PartitionKind::Linux,
                name: format!("p{i}"),
                bootable: false,
            })
            .collect();
        table::write_table(&lo.path, TableKind::Gpt, &specs)?;
        let numbers: Vec<u32> = (1..=parts.len() as u32).collect();
        blockdev::reread_partitions(&lo.path, &numbers)?;
        for (n, fs) in numbers.iter().zip(parts) {
            let dev = lo.partition(*n);
            match fs {
                Fs::Ext4(src) => run_cmd(
                    Command::new("mkfs.ext4")
                        .args(["-q", "-F", "-d"])
                        .arg(src)
                        .arg(&dev),
                )?,
                Fs::Swap => run_cmd(Command::new("mkswap").arg(&dev))?,
            }
        }
        Ok(lo)
    }

    /// A source tree for `mkfs.ext4 -d`.
    fn tree(
        dir: &Path,
        name: &str,
        dirs: &[&str],
        files: &[(&str, &str)],
    ) -> anyhow::Result<PathBuf> {
        let root = dir.join(name);
        std::fs::create_dir_all(&root)?;
        for d in dirs {
            std::fs::create_dir_all(root.join(d))?;
        }
        for (f, body) in files {
            std::fs::write(root.join(f), body)?;
        }
        Ok(root)
    }

    /// Lines of /proc/self/mounts whose source is `lo` or one of its partitions.
    fn mounts_of(lo: &LoopDevice) -> anyhow::Result<Vec<String>> {
        let disk = lo.path.display().to_string();
        Ok(std::fs::read_to_string("/proc/self/mounts")?
            .lines()
            .filter(|l| {
                let src = l.split_whitespace().next().unwrap_or("");
                src == disk
                    || src
                        .strip_prefix(disk.as_str())
                        .and_then(|r| r.strip_prefix('p'))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(String::from)
            .collect())
    }

    /// Mounts partition `dev` read-only and runs `check` on its mount point.
    fn inspect<T>(dev: &Path, check: impl FnOnce(&Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let m = Mounted::new(dev, false).map_err(anyhow::Error::msg)?;
        check(&m.dir)
    }

    fn run_on(lo: &LoopDevice, n: &Node, a: &Map<String, Value>) -> HardwareResult<Value> {
        let dev = lo.path.clone();
        let root = move || -> HardwareResult<PathBuf> { Ok(dev.clone()) };
        let env = Environment {
            root_device: &root,
            guard: DiskGuard::new(Vec::new(), Path::new("/")),
            download: DownloadSettings {
                retries: 0,
                ..DownloadSettings::default()
            },
        };
        inject_files(n, &ports(), a, &env)
    }

    #[test]
    fn file_goes_to_the_partition_holding_etc_with_mode_and_owner() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let boot = tree(dir.path(), "boot", &["grub"], &[])?;
        let rootfs = tree(
            dir.path(),
            "rootfs",
            &["etc", "usr/bin"],
            &[("etc/hostname", "old\n")],
        )?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&boot), Fs::Swap, Fs::Ext4(&rootfs)])?;
        let files = json!([
            {"path": "/etc/sysctl.d/my.conf", "content": b64(b"x=1\n"), "mode": 0o640,
             "dirmode": 0o700, "owner": 1000, "group": 1001},
            {"path": "/usr/bin/tool", "content": b64(b"#!/bin/sh\n"), "mode": 0o4755, "owner": 1000},
            {"path": "/etc/hostname", "content": b64(b"new\n")}
        ]);
        assert_eq!(
            run_on(&lo, &node(json!({})), &args(files)).map_err(anyhow::Error::msg)?,
            Value::Null
        );
        assert!(mounts_of(&lo)?.is_empty(), "{:?}", mounts_of(&lo)?);

        inspect(&lo.partition(3), |m| {
            let conf = m.join("etc/sysctl.d/my.conf");
            assert_eq!(std::fs::read(&conf)?, b"x=1\n");
            let meta = std::fs::metadata(&conf)?;
            assert_eq!(
                (meta.mode() & 0o7777, meta.uid(), meta.gid()),
                (0o640, 1000, 1001)
            );
            let d = std::fs::metadata(m.join("etc/sysctl.d"))?;
            assert_eq!((d.mode() & 0o7777, d.uid()), (0o700, 0));
            // chown before chmod: the set-uid bit survives.
            let tool = std::fs::metadata(m.join("usr/bin/tool"))?;
            assert_eq!(
                (tool.mode() & 0o7777, tool.uid(), tool.gid()),
                (0o4755, 1000, 0)
            );
            assert_eq!(std::fs::read(m.join("etc/hostname"))?, b"new\n");
            Ok(())
        })?;
        inspect(&lo.partition(1), |m| {
            assert!(!m.join("etc").exists() && !m.join("usr").exists());
            Ok(())
        })?;
        assert!(mounts_of(&lo)?.is_empty());
        Ok(())
    }

    #[test]
    fn explicit_partition_by_number_and_device_path() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let empty = tree(dir.path(), "empty", &[], &[])?;
        let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&empty), Fs::Ext4(&rootfs)])?;
        let p2 = lo.partition(2).display().to_string();
        let files = json!([
            {"path": "/hello.txt", "partition": 1, "content": b64(b"hello")},
            {"path": "/sub/dir/x", "partition": "2", "content": b64(b"x"), "dirmode": 0o750},
            {"path": "/etc/y", "partition": p2, "content": b64(b"y")},
            {"path": "/top", "partition": p2, "content": b64(b"top")}
        ]);
        run_on(&lo, &node(json!({})), &args(files)).map_err(anyhow::Error::msg)?;
        assert!(mounts_of(&lo)?.is_empty());
        inspect(&lo.partition(1), |m| {
            assert_eq!(std::fs::read(m.join("hello.txt"))?, b"hello");
            assert!(!m.join("sub").exists());
            Ok(())
        })?;
        inspect(&lo.partition(2), |m| {
            assert_eq!(std::fs::read(m.join("sub/dir/x"))?, b"x");
            assert_eq!(std::fs::metadata(m.join("sub"))?.mode() & 0o7777, 0o755);
            assert_eq!(std::fs::metadata(m.join("sub/dir"))?.mode() & 0o7777, 0o750);
            assert_eq!(std::fs::read(m.join("etc/y"))?, b"y");
            assert_eq!(std::fs::read(m.join("top"))?, b"top");
            Ok(())
        })?;

        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/a", "partition": 9, "content": b64(b"a")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::DeviceNotFound(m)) if m.contains("partition 9 does not exist") && m.contains("partitions: 1, 2")),
            "{e:?}"
        );
        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/a", "partition": "/dev/null", "content": b64(b"a")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::DeviceNotFound(m)) if m.contains("/dev/null is not a block device")),
            "{e:?}"
        );
        assert!(mounts_of(&lo)?.is_empty());
        Ok(())
    }

    #[test]
    fn deleted_files_are_removed_and_absent_ones_ignored() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let rootfs = tree(
            dir.path(),
            "rootfs",
            &["etc"],
            &[("etc/existing", "bye"), ("etc/keep", "stay")],
        )?;
        symlink("keep", rootfs.join("etc/link"))?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
        let files = json!([
            {"path": "/etc/existing", "deleted": true},
            {"path": "/etc/absent", "deleted": true},
            {"path": "/nodir/x", "deleted": true, "partition": 1},
            {"path": "/etc/link", "deleted": true}
        ]);
        run_on(&lo, &node(json!({})), &args(files)).map_err(anyhow::Error::msg)?;
        assert!(mounts_of(&lo)?.is_empty());
        inspect(&lo.partition(1), |m| {
            assert!(!m.join("etc/existing").exists());
            assert!(m.join("etc/link").symlink_metadata().is_err());
            assert_eq!(std::fs::read(m.join("etc/keep"))?, b"stay");
            assert!(!m.join("nodir").exists());
            Ok(())
        })
    }
    #[test]
    fn url_content_and_node_property_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
        let base = crate::testutil::serve_routes(HashMap::from([
            (
                format!("/n/{NODE_UUID}/52:54:00:12:34:56"),
                (200, b"per-node".to_vec()),
            ),
            ("/p/port-a,port-b".to_string(), (200, b"per-ports".to_vec())),
        ]))?;
        let n = node(json!({"inject_files": [
            {"path": "/etc/a", "content": format!("{base}/n/{{node[uuid]}}/{{ports[0][address]}}")},
            {"path": "/etc/b", "content": b64(b"props-b")}
        ]}));
        let mut a = args(json!([
            {"path": "/etc/b", "content": b64(b"args-b")},
            {"path": "/etc/c", "content": format!("{base}/p/{{ports}}")},
            {"path": "/etc/d", "content": format!("{base}/n/{{node}}/{{ports[0][address]}}"), "mode": 0o600}
        ]));
        a.insert("verify_ca".into(), json!(false));
        run_on(&lo, &n, &a).map_err(anyhow::Error::msg)?;
        inspect(&lo.partition(1), |m| {
            assert_eq!(std::fs::read(m.join("etc/a"))?, b"per-node");
            // node.properties first, then the argument: the argument's /etc/b wins.
            assert_eq!(std::fs::read(m.join("etc/b"))?, b"args-b");
            assert_eq!(std::fs::read(m.join("etc/c"))?, b"per-ports");
            assert_eq!(std::fs::read(m.join("etc/d"))?, b"per-node");
            assert_eq!(std::fs::metadata(m.join("etc/d"))?.mode() & 0o7777, 0o600);
            Ok(())
        })?;

        // A failed download writes nothing, not even the items before it.
        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/etc/first", "content": b64(b"1")},
                {"path": "/etc/second", "content": format!("{base}/missing")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::Failed { kind, message })
                if kind == "CommandExecutionError"
                    && message.contains("Unable to read data from")
                    && message.contains("404")),
            "{e:?}"
        );
        inspect(&lo.partition(1), |m| {
            assert!(!m.join("etc/first").exists());
            Ok(())
        })?;
        assert!(mounts_of(&lo)?.is_empty());
        Ok(())
    }

    #[test]
    fn traversal_is_refused_or_contained_on_a_real_filesystem() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let u = unique();
        let rootfs = tree(dir.path(), "rootfs", &["tmp", "conf"], &[])?;
        symlink("/", rootfs.join("etc"))?;
        symlink(format!("/tmp/{u}-c"), rootfs.join("conf/abs"))?;
        symlink("loop", rootfs.join("conf/loop"))?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
        let host = |p: String| Path::new(&p).symlink_metadata().is_ok();

        // `/etc` is a link to `/` in the image: found as a directory, written inside the image.
        run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": format!("/etc/{u}-a"), "content": b64(b"a")},
                {"path": "/conf/abs", "content": b64(b"c")}
            ])),
        )
        .map_err(anyhow::Error::msg)?;
        assert!(!host(format!("/{u}-a")) && !host(format!("/tmp/{u}-c")));
        assert!(!host(format!("{}/{u}-a", std::env::temp_dir().display())));
        inspect(&lo.partition(1), |m| {
            assert_eq!(std::fs::read(m.join(format!("{u}-a")))?, b"a");
            assert_eq!(std::fs::read(m.join(format!("tmp/{u}-c")))?, b"c");
            Ok(())
        })?;

        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/conf/loop", "content": b64(b"x")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::Failed { kind, message })
                if kind == "CommandExecutionError" && message.contains("too many levels of symbolic links")),
            "{e:?}"
        );
        for path in ["/../x", "/etc/../../x", "/conf/../../../x"] {
            let e = run_on(
                &lo,
                &node(json!({})),
                &args(json!([
                    {"path": path, "partition": 1, "content": b64(b"x")}
                ])),
            )
            .err();
            assert!(
                matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("`..` is not allowed")),
                "{path}: {e:?}"
            );
        }
        assert!(mounts_of(&lo)?.is_empty(), "{:?}", mounts_of(&lo)?);
        Ok(())
    }

    #[test]
    fn a_mounted_image_cannot_reach_the_host_and_a_bad_item_writes_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside)?;
        std::fs::write(outside.join("sentinel"), b"host")?;
        let before = snapshot(&outside)?;
        let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
        // In the mounted image these point at the host's `outside` (absolute), or climb out
        // of the mount point (relative).
        symlink(&outside, rootfs.join("etc/abs"))?;
        symlink("../../../../../../../../../..", rootfs.join("etc/up"))?;
        symlink(outside.join("sentinel"), rootfs.join("etc/final"))?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
        let outside_in_image = outside.display().to_string();
        let outside_in_image = outside_in_image.trim_start_matches('/');

        // One bad item (`..`) refuses the whole request before anything is mounted.
        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/etc/fine", "content": b64(b"x")},
                {"path": "/etc/up/../../x", "content": b64(b"x")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("`..` is not allowed")),
            "{e:?}"
        );
        inspect(&lo.partition(1), |m| {
            assert!(!m.join("etc/fine").exists());
            Ok(())
        })?;

        run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/etc/abs/a", "content": b64(b"a")},
                {"path": format!("/etc/up{}/b", outside.display()), "content": b64(b"b")},
                {"path": "/etc/final", "content": b64(b"c")}
            ])),
        )
        .map_err(anyhow::Error::msg)?;
        assert_eq!(snapshot(&outside)?, before, "the host directory changed");
        inspect(&lo.partition(1), |m| {
            let at = m.join(outside_in_image);
            assert_eq!(std::fs::read(at.join("a"))?, b"a");
            assert_eq!(std::fs::read(at.join("b"))?, b"b");
            assert_eq!(std::fs::read(at.join("sentinel"))?, b"c");
            Ok(())
        })?;
        assert!(mounts_of(&lo)?.is_empty(), "{:?}", mounts_of(&lo)?);
        Ok(())
    }

    #[test]
    fn nothing_is_written_when_a_path_has_no_partition() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs), Fs::Swap])?;
        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": "/etc/a", "content": b64(b"a")},
                {"path": "/nope/b", "content": b64(b"b")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::DeviceNotFound(m))
                if m.contains("No partition found with path /nope (for files[1] (/nope/b))")
                    && m.contains("swap, skipped")),
            "{e:?}"
        );
        assert!(mounts_of(&lo)?.is_empty());
        inspect(&lo.partition(1), |m| {
            assert!(!m.join("etc/a").exists());
            Ok(())
        })
    }

    #[test]
    fn the_disk_guard_refuses_a_disk_in_use() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let empty = tree(dir.path(), "empty", &[], &[])?;
        let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&empty), Fs::Ext4(&rootfs)])?;
        let p2 = lo.partition(2).display().to_string();
        {
            // Someone else has partition 1 mounted: no partition of this disk may be written.
            let _busy = Mounted::new(&lo.partition(1), false).map_err(anyhow::Error::msg)?;
            for files in [
                json!([{"path": "/etc/x", "partition": p2, "content": b64(b"x")}]),
                json!([{"path": "/etc/x", "content": b64(b"x")}]),
            ] {
                let e = run_on(&lo, &node(json!({})), &args(files)).err();
                assert!(
                    matches!(&e, Some(HardwareError::Failed { kind, message })
                        if kind == "ProtectedDeviceError" && message.contains("mounted")),
                    "{e:?}"
                );
            }
        }
        assert!(mounts_of(&lo)?.is_empty());
        inspect(&lo.partition(2), |m| {
            assert!(!m.join("etc/x").exists());
            Ok(())
        })
    }

    #[test]
    fn mounts_are_always_undone() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
        let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs), Fs::Swap])?;
        let mount_dir;
        {
            let m = Mounted::new(&lo.partition(1), true).map_err(anyhow::Error::msg)?;
            mount_dir = m.dir.clone();
            assert!(is_mountpoint(&m.dir));
            assert_eq!(std::fs::metadata(&m.dir)?.mode() & 0o777, 0o755);
            assert_eq!(mounts_of(&lo)?.len(), 1);
            assert!(
                mounts_of(&lo)?[0].contains("nosuid,nodev,noexec"),
                "{:?}",
                mounts_of(&lo)?
            );
            // Busy (a file is open inside) when dropped: detached lazily, still gone.
            let _open = File::open(m.dir.join("etc"))?;
            drop(m);
            assert!(mounts_of(&lo)?.is_empty());
        }
        assert!(!mount_dir.exists(), "mount point left behind");
        // A swap partition does not mount; nothing is left either.
        assert!(Mounted::new(&lo.partition(2), false).is_err());
        assert!(mounts_of(&lo)?.is_empty());
        Ok(())
    }
}
