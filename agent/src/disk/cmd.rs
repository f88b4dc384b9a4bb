//! The few external tools the disk modules need (mkfs, partx, wipefs, mdadm), on the agent's
//! one runner ([`crate::tools::Invocation`]).

use std::ffi::OsStr;
use std::time::Duration;

use super::DiskError;
use crate::tools::Invocation;

/// How long one of these tools may run (mkfs of a large disk included) before it is killed.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs `tool args…`; returns its standard output, or an error carrying its standard error
/// when it is missing, cannot start, times out or exits non-zero.
pub(crate) fn run<I, S>(tool: &str, args: I) -> Result<String, DiskError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let ran = Invocation::new(tool, TIMEOUT).args(args).run_ok()?;
    Ok(ran.stdout_text())
}
