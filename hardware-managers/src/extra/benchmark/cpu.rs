//! The cpu benchmark: per socket its bogomips, cache size and `sysbench` loops per second
//! on one pinned thread, then all CPUs together.

use std::time::Duration;

use super::super::tools;
use super::{Facts, Root, count, mask, one_cpu_per_socket};

/// Seconds each `sysbench` run lasts.
const MAX_TIME: u64 = 10;

/// The value of the first `item` line after processor `n`'s line in `/proc/cpuinfo`, spaces
/// removed.
pub fn search_cpuinfo(text: &str, n: u64, item: &str) -> Option<String> {
    let mut found = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split(':');
        let key = parts.next().unwrap_or("");
        let value = parts.next().unwrap_or("");
        if key.contains("processor") && value.trim().parse::<u64>().ok() == Some(n) {
            found = true;
        }
        if found && key.contains(item) {
            return Some(value.replace(' ', ""));
        }
    }
    None
}

/// Loops per second from `sysbench --test=cpu` output.
pub fn loops_per_sec(output: &str, max_time: u64) -> Option<String> {
    let line = output
        .lines()
        .find(|l| l.contains("total number of events"))?;
    let events: u64 = line
        .replace(' ', "")
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((events / max_time.max(1)).to_string())
}

fn sysbench(root: &Root, threads: u64, cpu: Option<u64>) -> Option<String> {
    let args = [
        format!("--max-time={MAX_TIME}"),
        "--max-requests=10000000".to_string(),
        format!("--num-threads={threads}"),
        "--test=cpu".to_string(),
        "--cpu-max-prime=15000".to_string(),
        "run".to_string(),
    ];
    let timeout = Duration::from_secs(MAX_TIME + 60);
    let out = match cpu {
        Some(c) => {
            let mut a = vec![mask(c), "sysbench".to_string()];
            a.extend(args);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            tools::run(root, "taskset", &a, timeout)
        }
        None => {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            tools::run(root, "sysbench", &a, timeout)
        }
    }?;
    loops_per_sec(&out.stdout, MAX_TIME)
}

/// Runs the cpu benchmark.
pub fn run(root: &Root, facts: &mut Facts) {
    let logical = count(facts, "logical").unwrap_or(1);
    let cpuinfo = std::fs::read_to_string(root.path("/proc/cpuinfo")).unwrap_or_default();
    if count(facts, "physical").is_some() {
        for n in one_cpu_per_socket(root, logical) {
            let item = format!("logical_{n}");
            if let Some(b) = search_cpuinfo(&cpuinfo, n, "bogomips") {
                facts.push("cpu", &item, "bogomips", b);
            }
            if let Some(c) = search_cpuinfo(&cpuinfo, n, "cache size") {
                facts.push("cpu", &item, "cache_size", c);
            }
            if let Some(l) = sysbench(root, 1, Some(n)) {
                facts.push("cpu", &item, "loops_per_sec", l);
            }
        }
    }
    if let Some(l) = sysbench(root, logical, None) {
        facts.push("cpu", "logical", "loops_per_sec", l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_and_sysbench() {
        let info = "processor\t: 0\ncache size\t: 512 KB\nbogomips\t: 5192.29\n\n\
            processor\t: 1\ncache size\t: 1024 KB\nbogomips\t: 5000.00\n";
        assert_eq!(
            search_cpuinfo(info, 1, "bogomips").as_deref(),
            Some("5000.00")
        );
        assert_eq!(
            search_cpuinfo(info, 0, "cache size").as_deref(),
            Some("512KB")
        );
        assert_eq!(search_cpuinfo(info, 7, "bogomips"), None);
        let out = "General statistics:\n    total time:                          10.0002s\n    total number of events:              123456\n";
        assert_eq!(loops_per_sec(out, 10).as_deref(), Some("12345"));
    }
}
