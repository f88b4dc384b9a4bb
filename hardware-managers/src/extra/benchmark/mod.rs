//! The optional benchmarks (`ipa-inspection-benchmarks=cpu,disk,mem`), run as
//! `hardware-detect --benchmark` runs them: `sysbench` for cpu and memory (pinned with
//! `taskset`), `fio` for disks (read-only). Without `sysbench` the cpu benchmark reports only
//! bogomips and cache sizes, and the memory one reports zero forked bandwidths, as
//! `hardware-detect` does; without `fio` the disk benchmark fails the collector, as
//! `hardware-detect` itself fails.

pub mod cpu;
pub mod disk;
pub mod mem;

use super::{Facts, Root};
use crate::generic::sysfs::read_trimmed;

/// One benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Benchmark {
    /// `sysbench --test=cpu`.
    Cpu,
    /// `sysbench --test=memory`.
    Mem,
    /// `fio`.
    Disk,
}

/// Why the benchmarks failed the collection.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    /// A name other than cpu, mem, disk (`hardware-detect`'s argument parser rejects it).
    #[error("invalid benchmark {0:?} (choose from 'cpu', 'mem', 'disk')")]
    Unknown(String),
    /// `fio` did not run or printed no report.
    #[error("fio failed: {0}")]
    Fio(String),
}

impl Benchmark {
    /// Parses `cpu,disk,mem`; empty names are ignored.
    ///
    /// # Errors
    /// [`BenchmarkError::Unknown`] for any other name.
    pub fn parse_list(list: &str) -> Result<Vec<Benchmark>, BenchmarkError> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let b = match name {
                "cpu" => Benchmark::Cpu,
                "mem" => Benchmark::Mem,
                "disk" => Benchmark::Disk,
                other => return Err(BenchmarkError::Unknown(other.to_string())),
            };
            if !out.contains(&b) {
                out.push(b);
            }
        }
        Ok(out)
    }
}

/// Runs `benchmarks` in `hardware-detect`'s order (cpu, mem, disk), adding their facts.
///
/// # Errors
/// [`BenchmarkError::Fio`] when the disk benchmark cannot run.
pub fn run(root: &Root, benchmarks: &[Benchmark], facts: &mut Facts) -> Result<(), BenchmarkError> {
    let mut list = benchmarks.to_vec();
    list.sort();
    for b in list {
        match b {
            Benchmark::Cpu => cpu::run(root, facts),
            Benchmark::Mem => mem::run(root, facts),
            Benchmark::Disk => disk::run(root, facts)?,
        }
    }
    Ok(())
}

/// The count `cpu/<item>/number` as a number.
fn count(facts: &Facts, item: &str) -> Option<u64> {
    facts.get_text("cpu", item, "number")?.parse().ok()
}

/// `hardware-detect`'s "one CPU per socket": the package ids in increasing order of first
/// appearance over the logical CPUs (it then uses each package id as a CPU number).
pub fn one_cpu_per_socket(root: &Root, logical: u64) -> Vec<u64> {
    let mut current: i64 = -1;
    let mut out = Vec::new();
    for n in 0..logical {
        let path = root.path(&format!(
            "/sys/devices/system/cpu/cpu{n}/topology/physical_package_id"
        ));
        if let Some(id) = read_trimmed(&path).and_then(|s| s.parse::<i64>().ok())
            && id > current
        {
            current = id;
            out.push(id.unsigned_abs());
        }
    }
    out
}

/// `taskset`'s mask for one CPU (`0x1`, `0x4`).
fn mask(cpu: u64) -> String {
    format!("{:#x}", 1u128 << cpu.min(127))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            Benchmark::parse_list("disk,cpu,,mem,cpu").expect("ok"),
            [Benchmark::Disk, Benchmark::Cpu, Benchmark::Mem]
        );
        assert!(matches!(
            Benchmark::parse_list("cpu,gpu"),
            Err(BenchmarkError::Unknown(n)) if n == "gpu"
        ));
        assert_eq!(mask(0), "0x1");
        assert_eq!(mask(3), "0x8");
    }
}
