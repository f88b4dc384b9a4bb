//! `dmi-decode`: the BIOS, processor and memory tables of `dmidecode -t bios -t processor -t
//! memory`, parsed into IPA 13's `dmi` structure (its `dmi_inspector`):
//!
//! ```json
//! {"bios": {...type 0...}, "cpu": [{...type 4...}],
//!  "memory": {...first type 16, "Number Of Devices": <sum>, "devices": [{...type 17...}]}}
//! ```
//!
//! Each table is a [`DmiSection`]: its `Key: value` lines as strings, a `Key:` line followed
//! by indented lines as a list of them, and its first line as `Handle`.

mod parse;
mod run;
#[cfg(test)]
mod tests;

pub use parse::{DmiParseError, parse};
pub use run::{DMIDECODE_ARGS, collect};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// A value in a [`DmiSection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DmiValue {
    /// `Key: value`.
    Text(String),
    /// `Key:` and the lines under it.
    List(Vec<String>),
    /// `memory`'s `Number Of Devices`: the sum over every memory array.
    Count(i64),
    /// `memory`'s `devices`: the type 17 tables.
    Sections(Vec<DmiSection>),
}

/// One table's fields, in the order they first appeared (serialised as a JSON object; a
/// repeated key keeps its first place and its last value, as a Python dict).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmiSection(pub Vec<(String, DmiValue)>);

impl DmiSection {
    /// Sets `key`, in place when present.
    pub fn insert(&mut self, key: &str, value: DmiValue) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&DmiValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<DmiValue> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut DmiValue> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl Serialize for DmiSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The parsed tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmiInfo {
    /// The (last) type 0 table; `{}` without one.
    pub bios: DmiSection,
    /// The type 4 tables.
    pub cpu: Vec<DmiSection>,
    /// The first type 16 table with the summed `Number Of Devices` and no `Handle`, plus
    /// `devices` (type 17) when there are any; `{"devices": []}` without type 16 tables.
    pub memory: DmiSection,
}

/// What is posted under `dmi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DmiTables {
    /// The parsed tables.
    Parsed(DmiInfo),
    /// `{}`: the output could not be parsed (IPA posts the empty dict it started with).
    Unparsed(Empty),
}

/// An empty JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// The collector's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmiCollected {
    /// `dmi`; absent when `dmidecode` could not run.
    pub dmi: Option<DmiTables>,
    /// The failure for the inspection `error`, IPA's text (`failed to run dmidecode: ...`,
    /// or `collector dmi-decode failed: ...` when its parser raised).
    pub failure: Option<String>,
}

impl DmiCollected {
    /// The result for `dmidecode`'s standard output `text`.
    pub fn from_output(text: &str) -> Self {
        match parse(text) {
            Ok(info) => DmiCollected {
                dmi: Some(DmiTables::Parsed(info)),
                failure: None,
            },
            Err(DmiParseError::Value(e)) => {
                tracing::warn!(error = %e, "failed to collect dmidecode info");
                DmiCollected {
                    dmi: Some(DmiTables::Unparsed(Empty {})),
                    failure: None,
                }
            }
            Err(DmiParseError::Raised(e)) => DmiCollected {
                dmi: Some(DmiTables::Unparsed(Empty {})),
                failure: Some(format!("collector dmi-decode failed: {e}")),
            },
        }
    }
}
