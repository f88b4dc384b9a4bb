//! The memory benchmark: `sysbench --test=memory` bandwidths per block size, per socket on
//! one pinned thread, then (with several CPUs) threaded and forked over all CPUs.

use std::time::Duration;

use super::super::tools;
use super::{Facts, Root, count, mask, one_cpu_per_socket};

const BLOCK_SIZES: [&str; 7] = ["1K", "4K", "1M", "16M", "128M", "1G", "2G"];
/// Seconds per run on one CPU.
const MAX_TIME: u64 = 5;
/// Seconds per run on all CPUs.
const ALL_CPU_TIME: u64 = 5;

/// Bytes in `block` (`4K`, `1G`).
pub fn block_bytes(block: &str) -> u64 {
    let digits: String = block.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    let unit = match block.chars().find(char::is_ascii_uppercase) {
        Some('K') => 1 << 10,
        Some('M') => 1 << 20,
        Some('G') => 1 << 30,
        _ => 1,
    };
    n * unit
}

fn mem_free(root: &Root) -> u64 {
    std::fs::read_to_string(root.path("/proc/meminfo"))
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemFree:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// The MiB/s before the decimal point in `sysbench`'s "transferred (N.NN MiB/sec)" line.
pub fn bandwidth(output: &str) -> Option<String> {
    let line = output.lines().find(|l| l.contains("transferred"))?;
    let squeezed = line.replace(' ', "");
    let right = squeezed.split('(').nth(1)?;
    Some(right.split('.').next()?.to_string())
}

fn sysbench(
    root: &Root,
    seconds: u64,
    block: &str,
    threads: u64,
    cpu: Option<u64>,
) -> Option<String> {
    let mut args: Vec<String> = Vec::new();
    let tool = match cpu {
        Some(c) => {
            args.push(mask(c));
            args.push("sysbench".into());
            "taskset"
        }
        None => "sysbench",
    };
    args.extend([
        format!("--max-time={seconds}"),
        "--max-requests=100000000".into(),
        format!("--num-threads={threads}"),
        "--test=memory".into(),
        format!("--memory-block-size={block}"),
        "run".into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tools::run(root, tool, &a, Duration::from_secs(seconds + 60))?;
    bandwidth(&out.stdout)
}

/// Runs the memory benchmark.
pub fn run(root: &Root, facts: &mut Facts) {
    let logical = count(facts, "logical").unwrap_or(1);
    if count(facts, "physical").is_none_or(|p| p == 0) {
        return;
    }
    let fits = |block: &str, cpus: u64| block_bytes(block) * cpus <= mem_free(root);
    for cpu in one_cpu_per_socket(root, logical) {
        for block in BLOCK_SIZES {
            if !fits(block, 1) {
                continue;
            }
            if let Some(bw) = sysbench(root, MAX_TIME, block, 1, Some(cpu)) {
                facts.push(
                    "cpu",
                    &format!("logical_{cpu}"),
                    &format!("bandwidth_{block}"),
                    bw,
                );
            }
        }
    }
    if logical <= 1 {
        return;
    }
    for block in BLOCK_SIZES {
        if fits(block, logical)
            && let Some(bw) = sysbench(root, ALL_CPU_TIME, block, logical, None)
        {
            facts.push("cpu", "logical", &format!("threaded_bandwidth_{block}"), bw);
        }
    }
    for block in BLOCK_SIZES {
        if !fits(block, logical) {
            continue;
        }
        let total: u64 = std::thread::scope(|s| {
            let runs: Vec<_> = (0..logical)
                .map(|_| s.spawn(|| sysbench(root, ALL_CPU_TIME, block, 1, None)))
                .collect();
            runs.into_iter()
                .filter_map(|r| r.join().ok().flatten())
                .filter_map(|bw| bw.parse::<u64>().ok())
                .sum()
        });
        facts.push(
            "cpu",
            "logical",
            &format!("forked_bandwidth_{block}"),
            total.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(block_bytes("4K"), 4096);
        assert_eq!(block_bytes("128M"), 128 << 20);
        assert_eq!(block_bytes("2G"), 2 << 30);
        let out = "Total operations: 100 \n102400.00 MiB transferred (10238.87 MiB/sec)\n";
        assert_eq!(bandwidth(out).as_deref(), Some("10238"));
        assert_eq!(bandwidth("nothing"), None);
    }
}
