//! Power actions behind a trait: the real one powers the machine off, the recording one writes
//! what it was asked to do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::tools::Invocation;

/// How long `hwclock --systohc` may take (best effort).
const HWCLOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `poweroff`/`reboot` may take before the sysrq fallback.
const POWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A power action the conductor can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// `standby.power_off`.
    PowerOff,
    /// `standby.run_image` (reboot into the deployed OS).
    Reboot,
}

impl PowerAction {
    /// `poweroff` or `reboot`.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::PowerOff => "poweroff",
            PowerAction::Reboot => "reboot",
        }
    }
}

/// Errors of power actions.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The action was refused for safety.
    #[error("{0}")]
    Refused(String),
    /// The action failed.
    #[error("{action} failed: {message}")]
    Failed {
        /// Which action.
        action: &'static str,
        /// Why.
        message: String,
    },
}

/// Carries out power actions.
pub trait Power: Send + Sync {
    /// Performs `action`. On real hardware this normally does not return.
    fn perform(&self, action: PowerAction) -> Result<(), PowerError>;
}

/// Really powers off / reboots: `poweroff`/`reboot`, falling back to `/proc/sysrq-trigger`.
///
/// As a safety net it refuses unless the root filesystem is a ramdisk (rootfs, tmpfs, ramfs,
/// overlay or squashfs), so a developer running the agent on a workstation cannot power it off.
#[derive(Debug, Default)]
pub struct SystemPower;

impl SystemPower {
    /// Whether `/` is a ramdisk according to `mounts` (the text of `/proc/mounts`).
    pub(crate) fn root_is_ramdisk(mounts: &str) -> bool {
        mounts
            .lines()
            .rev()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                let _dev = f.next()?;
                let mnt = f.next()?;
                let fstype = f.next()?;
                (mnt == "/").then_some(fstype)
            })
            .map(|t| matches!(t, "rootfs" | "tmpfs" | "ramfs" | "overlay" | "squashfs"))
            .unwrap_or(false)
    }
}

impl Power for SystemPower {
    fn perform(&self, action: PowerAction) -> Result<(), PowerError> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        if !Self::root_is_ramdisk(&mounts) {
            return Err(PowerError::Refused(format!(
                "refusing to {}: / is not a ramdisk, so this is not a deploy ramdisk \
                 (use --power record:PATH to test power commands)",
                action.as_str()
            )));
        }
        // Best effort: write the clock to the RTC first, as IPA does.
        let _ = Invocation::new("hwclock", HWCLOCK_TIMEOUT)
            .args(["-v", "--systohc"])
            .run();
        info!(action = action.as_str(), "performing power action");
        let out = Invocation::new(action.as_str(), POWER_TIMEOUT).run();
        let fallback = match &out {
            Ok(o) => {
                !o.status.success()
                    || String::from_utf8_lossy(&o.stderr).contains("ignoring request")
            }
            Err(_) => true,
        };
        if fallback {
            warn!(
                action = action.as_str(),
                "command failed, using /proc/sysrq-trigger"
            );
            let key = match action {
                PowerAction::PowerOff => "o",
                PowerAction::Reboot => "b",
            };
            std::fs::write("/proc/sysrq-trigger", key).map_err(|e| PowerError::Failed {
                action: action.as_str(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Appends each requested action as a line to a file; powers nothing.
#[derive(Debug)]
pub struct RecordingPower {
    path: PathBuf,
}

impl RecordingPower {
    /// Records into `path`.
    pub fn new(path: &Path) -> Self {
        RecordingPower {
            path: path.to_path_buf(),
        }
    }
}

impl Power for RecordingPower {
    fn perform(&self, action: PowerAction) -> Result<(), PowerError> {
        let fail = |e: std::io::Error| PowerError::Failed {
            action: action.as_str(),
            message: format!("recording to {}: {e}", self.path.display()),
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(fail)?;
        writeln!(f, "{}", action.as_str()).map_err(fail)?;
        info!(action = action.as_str(), file = %self.path.display(), "power action recorded (not performed)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramdisk_detection() {
        assert!(SystemPower::root_is_ramdisk("rootfs / rootfs rw 0 0\n"));
        assert!(!SystemPower::root_is_ramdisk(
            "/dev/vda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n"
        ));
        assert!(!SystemPower::root_is_ramdisk(
            "rootfs / rootfs rw 0 0\n/dev/vda1 / ext4 rw 0 0\n"
        ));
        assert!(!SystemPower::root_is_ramdisk(""));
    }

    #[test]
    fn recording_appends() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("power");
        let r = RecordingPower::new(&p);
        r.perform(PowerAction::PowerOff)?;
        r.perform(PowerAction::Reboot)?;
        assert_eq!(std::fs::read_to_string(&p)?, "poweroff\nreboot\n");
        Ok(())
    }
}
