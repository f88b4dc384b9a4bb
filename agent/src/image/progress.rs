//! Progress of a running image write, shown in the command result while it runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// What the pipeline is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Connecting / resolving checksums.
    Starting,
    /// Downloading and writing (streamed images).
    Writing,
    /// Downloading into the spool (formats that need qemu-img).
    Spooling,
    /// `qemu-img convert` is running.
    Converting,
    /// Final checks (checksum, partition table).
    Verifying,
    /// Partitioning, config drive and other disk work.
    Finishing,
}

/// Counters updated by the pipeline threads and read by the API.
#[derive(Debug)]
pub struct Progress {
    written: AtomicU64,
    downloaded: AtomicU64,
    total: AtomicU64,
    started: Instant,
    stage: Mutex<Stage>,
}

/// A point-in-time copy of [`Progress`], as serialised into `command_result.progress`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressSnapshot {
    /// Current stage.
    pub stage: Stage,
    /// Bytes written to the target so far.
    pub bytes_written: u64,
    /// Bytes received from the image server so far.
    pub bytes_downloaded: u64,
    /// Expected total bytes to download (`Content-Length`), when known.
    pub total_bytes: Option<u64>,
    /// Average download rate since the start, bytes per second.
    pub rate_bytes_per_s: f64,
    /// Seconds since the start.
    pub elapsed_s: f64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Fresh counters, clock starting now.
    pub fn new() -> Self {
        Progress {
            written: AtomicU64::new(0),
            downloaded: AtomicU64::new(0),
            total: AtomicU64::new(0),
            started: Instant::now(),
            stage: Mutex::new(Stage::Starting),
        }
    }

    /// Adds `n` written bytes.
    pub fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the written byte count (for stages that report a position, like `qemu-img`).
    pub fn set_written(&self, n: u64) {
        self.written.store(n, Ordering::Relaxed);
    }

    /// Adds `n` downloaded bytes.
    pub fn add_downloaded(&self, n: u64) {
        self.downloaded.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the expected download size (0 = unknown).
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }

    /// Enters `stage`.
    pub fn set_stage(&self, stage: Stage) {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage;
        }
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let elapsed = self.started.elapsed().as_secs_f64();
        let downloaded = self.downloaded.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        ProgressSnapshot {
            stage: self.stage.lock().map(|s| *s).unwrap_or(Stage::Starting),
            bytes_written: self.written.load(Ordering::Relaxed),
            bytes_downloaded: downloaded,
            total_bytes: (total > 0).then_some(total),
            rate_bytes_per_s: if elapsed > 0.0 {
                downloaded as f64 / elapsed
            } else {
                0.0
            },
            elapsed_s: elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_serialises() -> anyhow::Result<()> {
        let p = Progress::new();
        p.set_total(100);
        p.add_downloaded(40);
        p.add_written(32);
        p.set_stage(Stage::Writing);
        let v = serde_json::to_value(p.snapshot())?;
        assert_eq!(v["stage"], "writing");
        assert_eq!(v["bytes_written"], 32);
        assert_eq!(v["bytes_downloaded"], 40);
        assert_eq!(v["total_bytes"], 100);
        Ok(())
    }
}
