//! Start-up waits of IPA that do not belong to one subsystem: waiting for the root disk
//! (`ipa-disk-wait-attempts`, `ipa-disk-wait-delay`).
//!
//! IPA's generic hardware manager waits for a disk in `initialize()`, which `run()` reaches
//! through `hardware.get_managers()` right after the clock sync and before
//! `hardware_initialization_delay`; it waits again when a lookup caches a new node (its root
//! device hints may name another disk).

use std::time::Duration;

use tracing::{debug, info, warn};

/// How [`wait_for_disks`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskWait {
    /// `attempts` was 0: nothing was checked.
    Disabled,
    /// A disk was there at this attempt (1-based).
    Found {
        /// The attempt that found it.
        attempt: u32,
    },
    /// No disk after every attempt (logged as a warning; IPA goes on).
    NotFound,
}

impl DiskWait {
    /// Whether the caller may assume a disk (found, or waiting disabled).
    pub fn ok(self) -> bool {
        !matches!(self, DiskWait::NotFound)
    }
}

/// IPA's `wait_for_disks`: asks `found` ("is there a suitable install disk?" — IPA asks for
/// the root device under the node's hints, falling back to the default choice) up to
/// `attempts` times, `delay` apart (no sleep after the last attempt). Blocking: run it through
/// `spawn_blocking` when `found` asks the hardware chain.
pub fn wait_for_disks(attempts: u32, delay: Duration, mut found: impl FnMut() -> bool) -> DiskWait {
    if attempts == 0 {
        return DiskWait::Disabled;
    }
    for attempt in 1..=attempts {
        if found() {
            if attempt > 1 {
                info!(attempt, "the root device appeared");
            }
            return DiskWait::Found { attempt };
        }
        debug!(
            attempt,
            attempts, "still waiting for the root device to appear"
        );
        if attempt < attempts {
            std::thread::sleep(delay);
        }
    }
    let waited = delay.saturating_mul(attempts - 1);
    if waited.is_zero() {
        warn!("the root device was not detected");
    } else {
        warn!(?waited, "the root device was not detected");
    }
    DiskWait::NotFound
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn disabled_checks_nothing() {
        let mut calls = 0;
        assert_eq!(
            wait_for_disks(0, Duration::from_secs(9), || {
                calls += 1;
                true
            }),
            DiskWait::Disabled
        );
        assert_eq!(calls, 0);
        assert!(DiskWait::Disabled.ok());
    }

    #[test]
    fn waits_until_the_disk_appears() {
        let mut calls = 0;
        let started = Instant::now();
        let r = wait_for_disks(10, Duration::from_millis(20), || {
            calls += 1;
            calls == 3
        });
        assert_eq!(r, DiskWait::Found { attempt: 3 });
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert!(r.ok());
    }

    #[test]
    fn gives_up_without_sleeping_after_the_last_attempt() {
        let mut calls = 0;
        let started = Instant::now();
        let r = wait_for_disks(3, Duration::from_millis(200), || {
            calls += 1;
            false
        });
        assert_eq!(r, DiskWait::NotFound);
        assert_eq!(calls, 3);
        let took = started.elapsed();
        // Two sleeps (400 ms), not three (600 ms).
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(590),
            "{took:?}"
        );
        assert!(!r.ok());
    }
}
