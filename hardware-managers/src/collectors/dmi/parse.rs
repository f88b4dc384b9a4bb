//! The text of `dmidecode` → [`DmiInfo`], block by block as IPA's `parse_dmi`.

use tracing::warn;

use super::{DmiInfo, DmiSection, DmiValue};
use crate::collectors::pyfmt;

/// Why the output gave no tables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DmiParseError {
    /// IPA's `ValueError`: it warns and posts `dmi: {}`.
    #[error("{0}")]
    Value(String),
    /// An exception IPA's collector does not catch (a `KeyError`, a `TypeError`): `dmi: {}`
    /// and a collector failure with this text.
    #[error("{0}")]
    Raised(String),
}

const BIOS: i64 = 0;
const PROCESSOR: i64 = 4;
const MEMORY_ARRAY: i64 = 16;
const MEMORY_DEVICE: i64 = 17;

/// Parses `dmidecode`'s output: blocks separated by an empty line, those starting with
/// `Handle 0x` typed by their `DMI type N`; types 0, 4, 16 and 17 are kept.
///
/// # Errors
/// See [`DmiParseError`]: only a type 16 table without a numeric `Number Of Devices` fails.
pub fn parse(text: &str) -> Result<DmiInfo, DmiParseError> {
    let mut bios = DmiSection::default();
    let mut cpu = Vec::new();
    let mut arrays = Vec::new();
    let mut devices = Vec::new();
    for block in text.split("\n\n") {
        if !block.starts_with("Handle 0x") {
            continue;
        }
        let Some(dmi_type) = block_type(block) else {
            warn!(block = %block.lines().next().unwrap_or(""), "failed to parse Handle type in dmi output");
            continue;
        };
        match dmi_type {
            BIOS => bios = section(block),
            PROCESSOR => cpu.push(section(block)),
            MEMORY_ARRAY => arrays.push(section(block)),
            MEMORY_DEVICE => devices.push(section(block)),
            _ => {}
        }
    }
    let mut memory = DmiSection(vec![("devices".into(), DmiValue::Sections(Vec::new()))]);
    if let Some(first) = arrays.first() {
        let mut count: i64 = 0;
        for a in &arrays {
            match a.get("Number Of Devices") {
                None => return Err(DmiParseError::Raised("'Number Of Devices'".into())),
                Some(DmiValue::Text(n)) => {
                    let n = pyfmt::int(n).ok_or_else(|| {
                        DmiParseError::Value(format!(
                            "invalid literal for int() with base 10: {}",
                            pyfmt::repr_str(n)
                        ))
                    })?;
                    count = count.saturating_add(n);
                }
                Some(_) => {
                    return Err(DmiParseError::Raised(
                        "int() argument must be a string, a bytes-like object or a real number, not 'list'"
                            .into(),
                    ));
                }
            }
        }
        memory = first.clone();
        memory.insert("Number Of Devices", DmiValue::Count(count));
        if memory.remove("Handle").is_none() {
            warn!("failed to process memory dmi data: no Handle");
            return Err(DmiParseError::Raised("'Handle'".into()));
        }
    }
    if !devices.is_empty() {
        memory.insert("devices", DmiValue::Sections(devices));
    }
    Ok(DmiInfo { bios, cpu, memory })
}

/// `int(block.split(',', 2)[1].strip()[len('DMI type'):])`.
fn block_type(block: &str) -> Option<i64> {
    let field = block.split(',').nth(1)?;
    let rest: String = pyfmt::strip(field).chars().skip("DMI type".len()).collect();
    pyfmt::int(&rest)
}

/// One block's rows (IPA's `_parse_handle_block`).
fn section(block: &str) -> DmiSection {
    let mut rows = DmiSection::default();
    let mut list: Option<String> = None;
    for line in pyfmt::splitlines(block) {
        let line = pyfmt::strip(line);
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (pyfmt::strip(k), pyfmt::strip(v));
            if v.is_empty() {
                rows.insert(k, DmiValue::List(Vec::new()));
                list = Some(k.to_string());
            } else {
                rows.insert(k, DmiValue::Text(v.to_string()));
                list = None;
            }
        } else if line.contains("Handle 0x") {
            rows.insert("Handle", DmiValue::Text(line.to_string()));
        } else if let Some(k) = &list
            && let Some(DmiValue::List(items)) = rows.get_mut(k)
        {
            items.push(line.to_string());
        }
    }
    rows
}
