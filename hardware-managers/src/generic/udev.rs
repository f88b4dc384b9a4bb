//! Properties from udev's database (`/run/udev/data/b<major>:<minor>`), which lsblk and IPA
//! consult for serials, WWNs and filesystem UUIDs. Absent without a udev daemon: then every
//! lookup is simply `None`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// The `E:KEY=value` properties udev recorded for block device `devnum` (`8:0`).
#[derive(Debug, Default, Clone)]
pub(crate) struct UdevProperties(HashMap<String, String>);

impl UdevProperties {
    /// Reads the record of block device `devnum` under `root`; empty when there is none.
    pub fn read(root: &Path, devnum: Option<&str>) -> Self {
        let Some(devnum) = devnum else {
            return Self::default();
        };
        let path = root.join("run/udev/data").join(format!("b{devnum}"));
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(_) => Self::default(),
        }
    }

    /// Parses a udev database record.
    pub fn parse(text: &str) -> Self {
        UdevProperties(
            text.lines()
                .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    /// Sets property `key` (an empty value removes it).
    pub fn set(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            self.0.remove(key);
        } else {
            self.0.insert(key.to_string(), value.to_string());
        }
    }

    /// The value of property `key`, if set and non-empty.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_properties() {
        let p =
            UdevProperties::parse("S:disk/by-id/x\nE:ID_SERIAL_SHORT=abc\nE:ID_WWN=\nE:A=b=c\n");
        assert_eq!(p.get("ID_SERIAL_SHORT").as_deref(), Some("abc"));
        assert_eq!(p.get("ID_WWN"), None);
        assert_eq!(p.get("A").as_deref(), Some("b=c"));
    }
}
