//! Process limits raised at start.
//!
//! The API is served to the conductor, operators' scripts and monitoring at once; with the
//! common default soft limit of 1024 open files, a burst of a thousand connections while an
//! image is being written (which holds the disk, sockets and pipes of its own) would make
//! `accept` fail with EMFILE. The soft limit is raised to the hard limit (capped), as servers do.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{debug, warn};

/// The open-file soft limit the agent asks for (or the hard limit, when lower).
pub const WANTED_OPEN_FILES: u64 = 65_536;

/// Raises the soft `RLIMIT_NOFILE` towards [`WANTED_OPEN_FILES`]; returns the soft limit in
/// effect afterwards (`None` when it cannot be read).
pub fn raise_open_files() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit");
            return None;
        }
    };
    let wanted = WANTED_OPEN_FILES.min(hard);
    if soft >= wanted {
        return Some(soft);
    }
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
        warn!(error = %e, from = soft, to = wanted, "cannot raise the open-file limit");
        return Some(soft);
    }
    debug!(from = soft, to = wanted, "raised the open-file limit");
    Some(wanted)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_least_as_high() {
        let after = super::raise_open_files().expect("a limit");
        assert!(after >= 1024.min(super::WANTED_OPEN_FILES), "{after}");
        assert_eq!(super::raise_open_files(), Some(after), "idempotent");
    }
}
