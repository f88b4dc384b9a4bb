//! Running the few external tools this module needs (mkfs, partx, wipefs).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use super::DiskError;

/// Directories searched after `$PATH` (a ramdisk's PATH may lack the sbin directories).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The full path of `tool`, if it is installed.
pub(crate) fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs `tool args…` with `LC_ALL=C`; returns its standard output, or an error carrying its
/// standard error when it cannot start or exits non-zero.
pub(crate) fn run<I, S>(tool: &str, args: I) -> Result<String, DiskError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = std::iter::once(tool.to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let Some(exe) = find_tool(tool) else {
        return Err(DiskError::Command {
            command: shown,
            message: format!("{tool} is not installed"),
        });
    };
    tracing::debug!(command = %shown, "running");
    let out = Command::new(exe)
        .args(&args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| DiskError::Command {
            command: shown.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(DiskError::Command {
            command: shown,
            message: format!("{} ({})", stderr, out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
