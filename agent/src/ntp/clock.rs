//! The clock [`super::sync`] reads and sets: the real one, or a recording one for tests.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::NtpError;
use crate::tools::Invocation;

/// A settable wall clock.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Sets the time.
    ///
    /// # Errors
    /// [`NtpError::SetClock`].
    fn set(&self, to: SystemTime) -> Result<(), NtpError>;
}

/// The system clock: `clock_settime(CLOCK_REALTIME)`, then (unless disabled) the hardware
/// clock from it with `hwclock -v --systohc` as IPA does; a failing `hwclock` is only logged.
#[derive(Debug, Clone)]
pub struct SystemClock {
    /// Also write the hardware clock after setting the system clock.
    pub sync_hardware_clock: bool,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            sync_hardware_clock: true,
        }
    }
}

/// How long `hwclock` may take (it waits for a second boundary, sometimes a few).
const HWCLOCK_TIMEOUT: Duration = Duration::from_secs(30);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn set(&self, to: SystemTime) -> Result<(), NtpError> {
        let since = to
            .duration_since(UNIX_EPOCH)
            .map_err(|_| NtpError::SetClock("time before 1970".into()))?;
        nix::time::clock_settime(
            nix::time::ClockId::CLOCK_REALTIME,
            nix::sys::time::TimeSpec::from(since),
        )
        .map_err(|e| NtpError::SetClock(e.to_string()))?;
        if self.sync_hardware_clock {
            match Invocation::new("hwclock", HWCLOCK_TIMEOUT)
                .args(["-v", "--systohc"])
                .run_ok()
            {
                Ok(_) => info!("hardware clock set from the system clock"),
                Err(e) => warn!(error = %e, "could not set the hardware clock"),
            }
        }
        Ok(())
    }
}

/// A clock that reads the system time and records what it was set to (tests).
#[derive(Debug, Default)]
pub struct RecordingClock {
    sets: Mutex<Vec<SystemTime>>,
    fail: bool,
}

impl RecordingClock {
    /// A clock whose `set` fails (for `fail_if_clock_not_set` tests).
    pub fn failing() -> Self {
        Self {
            sets: Mutex::default(),
            fail: true,
        }
    }

    /// The times it was set to, in order.
    pub fn sets(&self) -> Vec<SystemTime> {
        self.sets.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Clock for RecordingClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn set(&self, to: SystemTime) -> Result<(), NtpError> {
        if self.fail {
            return Err(NtpError::SetClock("refused by the recording clock".into()));
        }
        if let Ok(mut s) = self.sets.lock() {
            s.push(to);
        }
        Ok(())
    }
}
