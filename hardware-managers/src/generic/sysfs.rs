//! Tolerant readers for sysfs/procfs attributes: a missing or unreadable attribute is `None`,
//! never an error, because the kernel exposes different files on different hardware.

use std::fs;
use std::path::Path;

/// The attribute's text with surrounding whitespace removed; `None` if unreadable or empty.
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The attribute parsed as a decimal integer.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// The attribute parsed as a signed decimal integer.
pub(crate) fn read_i64(path: &Path) -> Option<i64> {
    read_trimmed(path)?.parse().ok()
}

/// The final component of the symlink at `path` (e.g. `0000:00:03.0` for a NIC's `device`).
pub(crate) fn link_basename(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The names of the entries of directory `dir`, sorted; empty when it cannot be read.
pub(crate) fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Compares names so that embedded numbers sort numerically (`nvme0n2` before `nvme0n10`),
/// giving a stable, human order for device listings.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    natural_key(a).cmp(&natural_key(b))
}

/// Splits a name into text and number chunks.
fn natural_key(s: &str) -> Vec<(String, u128)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u128::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    let n = if digits.is_empty() {
        0
    } else {
        digits.parse().unwrap_or(u128::MAX)
    };
    out.push((text, n));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["nvme0n10", "nvme0n2", "sdb", "sda", "vda1", "vda10", "vda2"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec!["nvme0n2", "nvme0n10", "sda", "sdb", "vda1", "vda2", "vda10"]
        );
    }

    #[test]
    fn missing_attributes_are_none() {
        let p = Path::new("/nonexistent/ironic-agent/attr");
        assert_eq!(read_trimmed(p), None);
        assert_eq!(read_u64(p), None);
        assert_eq!(link_basename(p), None);
        assert!(list_dir(p).is_empty());
    }
}
