//! Item validation: the merged file list is checked field by field (IPA's rules plus the
//! stricter path rules of this agent) into [`FileSpec`]s before anything touches a disk.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use hardware_managers::{HardwareError, HardwareResult, Node, Port};
use serde_json::{Map, Value};
use tracing::warn;

use super::MAX_CONTENT_BYTES;
use super::error::InjectError;
use super::template::{format_url, json_type};
use crate::disk::MIB;

/// Keys an item may carry (IPA refuses anything else).
pub(super) const FIELDS: &[&str] = &[
    "path",
    "partition",
    "content",
    "deleted",
    "mode",
    "dirmode",
    "owner",
    "group",
];
/// Longest path and file name accepted (Linux's `PATH_MAX - 1` and `NAME_MAX`).
pub(super) const MAX_PATH: usize = 4095;
pub(super) const MAX_NAME: usize = 255;

// Validation

/// Where a file goes on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PartitionRef {
    /// Partition number on the install device.
    Number(u32),
    /// A block device path.
    Device(PathBuf),
}

/// What to do with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Remove it (no error when absent).
    Delete,
    /// Write decoded inline content.
    Inline(Vec<u8>),
    /// Write what this URL serves.
    Url(String),
}

/// One validated item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileSpec {
    /// Where it came from, for messages (`files[0]`, `node.properties.inject_files[1]`).
    pub(super) label: String,
    /// The path as given.
    pub(super) path: String,
    /// Its normalised components (no empty, `.` or `..`); never empty.
    pub(super) components: Vec<String>,
    pub(super) partition: Option<PartitionRef>,
    pub(super) action: Action,
    pub(super) mode: Option<u32>,
    pub(super) dirmode: Option<u32>,
    pub(super) owner: Option<u32>,
    pub(super) group: Option<u32>,
}

impl FileSpec {
    pub(super) fn describe(&self) -> String {
        format!("{} ({})", self.label, self.path)
    }
}

pub(super) fn parse_verify_ca(v: Option<&Value>) -> HardwareResult<bool> {
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
pub(super) fn validate_files(
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

pub(super) fn list_of<'v>(v: Option<&'v Value>, what: &str) -> HardwareResult<&'v [Value]> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(HardwareError::InvalidArgs(format!(
            "{what} must be a list, got {}",
            json_type(other)
        ))),
    }
}

pub(super) fn validate_item(
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
            problem(m.to_string());
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
                problem(m.to_string());
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
                problem(m.to_string());
                None
            }
        },
    };

    let mode = int_field(map, "mode", 0, 0o7777).unwrap_or_else(|m| {
        problem(m.to_string());
        None
    });
    let dirmode = int_field(map, "dirmode", 0, 0o7777).unwrap_or_else(|m| {
        problem(m.to_string());
        None
    });
    let owner = id_field(map, "owner").unwrap_or_else(|m| {
        problem(m.to_string());
        None
    });
    let group = id_field(map, "group").unwrap_or_else(|m| {
        problem(m.to_string());
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
pub(super) fn warn_if_decimal_octal(shown: &str, key: &str, value: u32) {
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

pub(super) fn int_field(
    map: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<u32>, InjectError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if (min..=max).contains(&v) => Ok(u32::try_from(v).ok()),
            Some(v) => Err(InjectError::Invalid(format!(
                "{key} must be between {min} and {max}, got {v}"
            ))),
            None => Err(InjectError::Invalid(format!(
                "{key} must be a number, got {n}"
            ))),
        },
        Some(other) => Err(InjectError::Invalid(format!(
            "{key} must be a number, got {}",
            json_type(other)
        ))),
    }
}

/// A user or group ID; `-1` means "leave unchanged", as for `chown(2)`.
pub(super) fn id_field(map: &Map<String, Value>, key: &str) -> Result<Option<u32>, InjectError> {
    if map.get(key).and_then(Value::as_i64) == Some(-1) {
        return Ok(None);
    }
    int_field(map, key, 0, i64::from(u32::MAX) - 1)
}

pub(super) fn parse_partition(v: &Value) -> Result<Option<PartitionRef>, InjectError> {
    let number = |n: i64| -> Result<Option<PartitionRef>, InjectError> {
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| Some(PartitionRef::Number(n)))
            .ok_or_else(|| InjectError::Invalid(format!("partition numbers start at 1, got {n}")))
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(n) => number(n),
            None => Err(InjectError::Invalid(format!(
                "partition must be an integer, got {n}"
            ))),
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
                Err(InjectError::Invalid(format!(
                    "partition must be a number or a block device path under /dev/, got `{s}`"
                )))
            }
        }
        other => Err(InjectError::Invalid(format!(
            "partition must be a number or a device path, got {}",
            json_type(other)
        ))),
    }
}

/// Splits an absolute path into its components, refusing anything that could leave the
/// target filesystem or does not name a file.
pub(super) fn path_components(path: &str) -> Result<Vec<String>, InjectError> {
    if path.contains('\0') {
        return Err(InjectError::Invalid("the path contains a NUL byte".into()));
    }
    if !path.starts_with('/') {
        return Err(InjectError::Invalid(
            "the path must be absolute (start with /)".into(),
        ));
    }
    if path.len() > MAX_PATH {
        return Err(InjectError::Invalid(format!(
            "the path is longer than {MAX_PATH} bytes"
        )));
    }
    if path.ends_with('/') || path.ends_with("/.") {
        return Err(InjectError::Invalid(
            "directories not supported: the path must name a file".into(),
        ));
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(InjectError::Invalid("`..` is not allowed in paths".into())),
            c if c.len() > MAX_NAME => {
                return Err(InjectError::Invalid(format!(
                    "a path component is longer than {MAX_NAME} bytes"
                )));
            }
            c => out.push(c.to_string()),
        }
    }
    if out.is_empty() {
        return Err(InjectError::Invalid("the path must name a file".into()));
    }
    Ok(out)
}

pub(super) fn decode_base64(content: &str) -> Result<Vec<u8>, InjectError> {
    let compact: Vec<u8> = content
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.len() as u64 > MAX_CONTENT_BYTES / 3 * 4 + 4 {
        return Err(InjectError::Invalid(format!(
            "content is larger than {} MiB",
            MAX_CONTENT_BYTES / MIB
        )));
    }
    STANDARD_PAD_INDIFFERENT.decode(&compact).map_err(|e| {
        InjectError::Invalid(format!(
            "content is neither a URL (with ://) nor valid base64: {e}"
        ))
    })
}
