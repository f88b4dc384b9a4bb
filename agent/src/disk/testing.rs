//! Test helpers for the disk modules: sparse files, mkfs wrappers and independent readers
//! (`partx`, `sfdisk`, `blkid`, `wipefs`) to check our tables and wipes against.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::testutil::{run_tool, wipefs_list};

/// A sparse file of `size` bytes.
pub fn sparse(dir: &Path, name: &str, size: u64) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    File::create(&p)?.set_len(size)?;
    Ok(p)
}

/// A filesystem image file made by `mkfs.vfat -n label` of `size` bytes.
pub fn vfat_image(dir: &Path, name: &str, size: u64, label: &str) -> anyhow::Result<PathBuf> {
    let p = sparse(dir, name, size)?;
    run_tool("mkfs.vfat", &["-n", label], &p)?;
    Ok(p)
}

/// One partition as `partx --show` (util-linux's own parser) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartxEntry {
    /// NR.
    pub nr: u32,
    /// START (sectors).
    pub start: u64,
    /// SECTORS.
    pub sectors: u64,
    /// TYPE (GUID lowercase or `0x83`).
    pub ptype: String,
    /// UUID (PARTUUID).
    pub uuid: String,
    /// NAME.
    pub name: String,
    /// FLAGS (`0x80` for an active MBR partition).
    pub flags: String,
}

fn pairs(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = line.trim();
    while let Some((k, v)) = rest.split_once("=\"") {
        let Some(end) = v.find('"') else { break };
        out.insert(k.trim().to_string(), v[..end].to_string());
        rest = &v[end + 1..];
    }
    out
}

/// `partx --pairs` (the `--show` listing) of `path`.
pub fn partx_show(path: &Path) -> anyhow::Result<Vec<PartxEntry>> {
    let out = run_tool(
        "partx",
        &["--pairs", "-o", "NR,START,SECTORS,TYPE,UUID,NAME,FLAGS"],
        path,
    )?;
    Ok(out
        .lines()
        .map(pairs)
        .map(|m| {
            let get = |k: &str| m.get(k).cloned().unwrap_or_default();
            PartxEntry {
                nr: get("NR").parse().unwrap_or(0),
                start: get("START").parse().unwrap_or(0),
                sectors: get("SECTORS").parse().unwrap_or(0),
                ptype: get("TYPE").to_ascii_lowercase(),
                uuid: get("UUID").to_ascii_lowercase(),
                name: get("NAME"),
                flags: get("FLAGS"),
            }
        })
        .collect())
}

/// Whether an optional test tool can run. Missing is an error under CI (`CI` set), where
/// `scripts/test.sh` installs every tool, so no check silently passes by skipping there;
/// elsewhere a note is printed and the check is skipped.
pub fn tool_available(tool: &str, package: &str) -> anyhow::Result<bool> {
    if crate::tools::find_tool(tool).is_some() {
        return Ok(true);
    }
    if std::env::var_os("CI").is_some() {
        anyhow::bail!("{tool} is missing: install the `{package}` package (scripts/test.sh does)");
    }
    eprintln!("note: {tool} not installed ({package}); this check is skipped outside CI");
    Ok(false)
}

/// `sfdisk --json` of `path` when sfdisk is installed (`None` otherwise, with a note).
pub fn sfdisk_json(path: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    if !tool_available("sfdisk", "fdisk")? {
        return Ok(None);
    }
    let out = run_tool("sfdisk", &["--json"], path)?;
    Ok(Some(serde_json::from_str(&out)?))
}

/// `blkid -p -o export` of `path` (empty when blkid finds nothing).
pub fn blkid_export(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}
