//! `erase_devices`: every disk, in parallel, with the best method it supports.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hardware_managers::{BlockDevice, HardwareResult};
use serde_json::{Map, Value};
use tracing::{error, info, warn};

use super::report::{self, Failure};
use super::select::{Admission, ReadOnly};
use super::{Eraser, ata, is_nvme, nvme, overwrite, protect};

/// Runs `f` on every item with at most `threads` threads; results in item order.
pub(super) fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let threads = threads.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut v) = results.lock() {
                        v.push((i, r));
                    }
                }
            });
        }
    });
    let mut v = results.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

impl Eraser<'_> {
    /// IPA's `erase_devices` over `disks` (already without the skip list): admission, the
    /// special-filesystem guard on every disk to be erased, then the erasure with
    /// `min(disk_erasure_concurrency, n)` threads. Result `{"<disk>": null, ...}`.
    pub fn erase_devices(&self, disks: &[BlockDevice]) -> HardwareResult<Value> {
        let read_only = if self.settings.skip_read_only {
            ReadOnly::Skip
        } else {
            ReadOnly::Fail
        };
        let mut result = Map::new();
        let mut failures = Vec::new();
        let mut targets = Vec::new();
        for d in disks {
            result.insert(d.name.clone(), Value::Null);
            match self.selector.admit(&d.name, None, read_only) {
                Ok(Admission::Erase) => targets.push(d.name.clone()),
                Ok(Admission::Skip(_)) => {}
                Err(e) => {
                    error!(device = %d.name, error = %e, "cannot erase {}", d.name);
                    failures.push(Failure::new(&d.name, e));
                }
            }
        }
        if self.settings.wipe_special_filesystems {
            let found: Vec<_> = targets
                .iter()
                .filter_map(|t| protect::check_disk(Path::new(t)).err())
                .collect();
            if !found.is_empty() {
                return Err(report::protected(&found));
            }
        }
        let threads = self.settings.concurrency.min(targets.len()).max(1);
        info!(
            disks = ?targets,
            threads,
            "erasing {} disk(s) with {threads} thread(s)",
            targets.len()
        );
        let outcomes = run_parallel(&targets, threads, |dev| self.erase_block_device(dev));
        for (dev, outcome) in targets.iter().zip(outcomes) {
            match outcome {
                Ok(method) => info!(device = %dev, method = %method, "{dev} erased with {method}"),
                Err(e) => {
                    error!(device = %dev, error = %e, "erasing {dev} failed");
                    failures.push(Failure::new(dev, e));
                }
            }
        }
        report::aggregate("Failed to erase the device(s)", &failures)?;
        Ok(Value::Object(result))
    }

    /// IPA's `erase_block_device` for an admitted disk: secure erase where it applies, else
    /// (or after a tolerated secure-erase failure) the overwrite. Returns the method used.
    pub(super) fn erase_block_device(&self, dev: &str) -> Result<String, String> {
        let s = &self.settings;
        let secure: Result<Option<String>, String> = if is_nvme(dev) {
            if s.nvme_secure_erase {
                nvme::erase(self.tools, dev, s.nvme_sanitize, &self.nvme)
                    .map(|m| Some(m.describe()))
            } else {
                info!(
                    device = dev,
                    "NVMe secure erase disabled (agent_enable_nvme_secure_erase)"
                );
                Ok(None)
            }
        } else if s.ata_secure_erase {
            ata::erase(self.tools, dev, &self.ata)
                .map(|m| m.map(|m| format!("ATA secure erase ({})", m.option())))
        } else {
            info!(
                device = dev,
                "ATA secure erase disabled (agent_enable_ata_secure_erase)"
            );
            Ok(None)
        };
        match secure {
            Ok(Some(method)) => return Ok(method),
            Ok(None) => {}
            Err(e) if s.continue_if_secure_erase_failed => {
                warn!(
                    device = dev,
                    error = %e,
                    "secure erase of {dev} failed; falling back to overwriting it \
                     (agent_continue_if_secure_erase_failed is set)"
                );
            }
            Err(e) => {
                return Err(format!(
                    "secure erase failed and the fallback to overwriting is not enabled: {e}. \
                     Set driver_internal_info.agent_continue_if_secure_erase_failed to true \
                     (Ironic's [deploy]continue_if_disk_secure_erase_fails) to fall back to \
                     overwriting the disk"
                ));
            }
        }
        overwrite::overwrite(Path::new(dev), s.iterations, s.zeroize)?;
        Ok(format!(
            "overwrite ({} random pass(es){})",
            s.iterations,
            if s.zeroize { ", then zeros" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn parallel_runs_keep_order_and_bound_threads() {
        let items: Vec<u64> = (0..6).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let start = Instant::now();
        let out = run_parallel(&items, 3, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 10
        });
        assert_eq!(out, [0, 10, 20, 30, 40, 50]);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        // Six items of 100 ms on three threads take about 200 ms; one by one, 600.
        assert!(
            start.elapsed() < Duration::from_millis(550),
            "{:?}",
            start.elapsed()
        );
        assert!(run_parallel(&Vec::<u8>::new(), 4, |_| 1).is_empty());
        assert_eq!(run_parallel(&[1, 2], 0, |x| x + 1), [2, 3]);
    }
}
