//! Process limits raised at start.
//!
//! The API is served to the conductor, operators' scripts and monitoring at once; with the
//! common default soft limit of 1024 open files, a burst of a thousand connections while an
//! image is being written (which holds the disk, sockets and pipes of its own) would make
//! `accept` fail with EMFILE. The soft limit is raised to the hard limit (capped), as servers do.

use tracing::{debug, warn};

/// The open-file soft limit the agent asks for (or the hard limit, when lower).
pub const WANTED_OPEN_FILES: u64 = 65_536;

/// Raises the soft `RLIMIT_NOFILE` towards [`WANTED_OPEN_FILES`]; returns the soft limit in
/// effect afterwards (`None` when it cannot be read).
pub fn raise_open_files() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return None;
    }
    let wanted = WANTED_OPEN_FILES.min(lim.rlim_max);
    if lim.rlim_cur >= wanted {
        return Some(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), from = lim.rlim_cur, to = wanted,
            "cannot raise the open-file limit");
        return Some(lim.rlim_cur);
    }
    debug!(
        from = lim.rlim_cur,
        to = wanted,
        "raised the open-file limit"
    );
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
