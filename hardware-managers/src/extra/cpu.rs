//! `cpu` and `numa` facts, computed as `lscpu` computes what `hardware-detect` reads from it
//! (sockets, cores, threads, caches, MHz, flags from `/proc/cpuinfo` and
//! `/sys/devices/system/cpu`), plus SMT control, boost, governors and the `coretemp`
//! temperatures.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::tools::first_line;
use super::{Facts, Root, cpu_arm};
use crate::generic::sysfs::{list_dir, read_trimmed};

/// The `/proc/cpuinfo` fields of the first processor.
pub fn cpuinfo_first(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() && !out.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    out
}

/// Expands a CPU list (`0-3,8,10-11`).
pub fn parse_cpulist(list: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.trim().parse::<u32>().ok()),
        }
    }
    out
}

/// `lscpu`'s size text: `64 KiB`, `1.5 MiB` (one decimal, dropped when zero).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut exp = 0u32;
    while exp < 60 && bytes >= 1u64 << (exp + 10) {
        exp += 10;
    }
    let unit = UNITS[(exp / 10) as usize];
    let mut dec = bytes >> exp;
    let frac = bytes - (dec << exp);
    let mut tenth = 0;
    if frac > 0 && exp > 0 {
        let thousandths = (u128::from(frac) * 1000 / (1u128 << exp)) as u64;
        tenth = (thousandths + 50) / 100;
        if tenth == 10 {
            dec += 1;
            tenth = 0;
        }
    }
    if tenth > 0 {
        format!("{dec}.{tenth} {unit}")
    } else {
        format!("{dec} {unit}")
    }
}

/// A cache size attribute (`32K`, `1024K`, `8M`) in bytes.
fn cache_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// What `lscpu` would print that `hardware-detect` uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// `CPU(s)`.
    pub cpus: usize,
    /// `Socket(s)`.
    pub sockets: usize,
    /// `Core(s) per socket`.
    pub cores_per_socket: usize,
    /// `Thread(s) per core`.
    pub threads_per_core: usize,
    /// `L1d cache` ... `L3 cache` → text.
    pub caches: Vec<(String, String)>,
    /// `CPU min MHz`, `CPU max MHz`.
    pub min_mhz: Option<f64>,
    /// See `min_mhz`.
    pub max_mhz: Option<f64>,
}

/// Reads the topology from `/sys/devices/system/cpu`.
pub fn topology(root: &Root) -> Topology {
    let base = root.path("/sys/devices/system/cpu");
    let present = read_trimmed(&base.join("present"))
        .map(|l| parse_cpulist(&l))
        .unwrap_or_default();
    let online = read_trimmed(&base.join("online"))
        .map(|l| parse_cpulist(&l))
        .unwrap_or_else(|| present.clone());
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut caches: BTreeMap<String, (BTreeSet<String>, u64)> = BTreeMap::new();
    let (mut min_khz, mut max_khz): (Option<u64>, Option<u64>) = (None, None);
    for cpu in &online {
        let dir = base.join(format!("cpu{cpu}"));
        let pkg = read_trimmed(&dir.join("topology/physical_package_id")).unwrap_or_default();
        let core = read_trimmed(&dir.join("topology/core_id")).unwrap_or_else(|| cpu.to_string());
        packages.insert(pkg.clone());
        cores.insert((pkg, core));
        for index in list_dir(&dir.join("cache")) {
            let idx = dir.join("cache").join(&index);
            let (Some(level), Some(kind), Some(size), Some(map)) = (
                read_trimmed(&idx.join("level")),
                read_trimmed(&idx.join("type")),
                read_trimmed(&idx.join("size")).and_then(|s| cache_bytes(&s)),
                read_trimmed(&idx.join("shared_cpu_map")),
            ) else {
                continue;
            };
            let suffix = match kind.as_str() {
                "Data" => "d",
                "Instruction" => "i",
                _ => "",
            };
            let entry = caches.entry(format!("L{level}{suffix}")).or_default();
            if entry.0.insert(map) {
                entry.1 += size;
            }
        }
        let freq =
            |f: &str| read_trimmed(&dir.join("cpufreq").join(f)).and_then(|v| v.parse().ok());
        if let Some(f) = freq("cpuinfo_min_freq") {
            min_khz = Some(min_khz.map_or(f, |m: u64| m.min(f)));
        }
        if let Some(f) = freq("cpuinfo_max_freq") {
            max_khz = Some(max_khz.map_or(f, |m: u64| m.max(f)));
        }
    }
    let sockets = packages.len().max(1);
    let ncores = cores.len().max(1);
    Topology {
        cpus: present.len().max(online.len()),
        sockets,
        cores_per_socket: ncores / sockets,
        threads_per_core: (online.len() / ncores).max(1),
        caches: caches
            .into_iter()
            .map(|(name, (maps, total))| {
                let n = maps.len();
                let plural = if n == 1 { "instance" } else { "instances" };
                (name, format!("{} ({n} {plural})", human_size(total)))
            })
            .collect(),
        min_mhz: min_khz.map(|k| k as f64 / 1000.0),
        max_mhz: max_khz.map(|k| k as f64 / 1000.0),
    }
}

/// `int(value)` with `0x` hex support, else the text (`hardware-detect`'s `_maybe_int`).
fn maybe_int(v: &str) -> Value {
    let parsed = match v.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok(),
        None => v.parse::<i64>().ok(),
    };
    parsed.map_or_else(|| Value::from(v), Value::from)
}

/// Adds the `cpu` and `numa` facts.
pub fn detect(root: &Root, facts: &mut Facts) {
    let topo = topology(root);
    let info = std::fs::read_to_string(root.path("/proc/cpuinfo"))
        .map(|t| cpuinfo_first(&t))
        .unwrap_or_default();
    let base = root.path("/sys/devices/system/cpu");
    // x86 names its CPU in cpuinfo; Arm only has numeric ids, which `lscpu` names.
    let arm = cpu_arm::identity(&info);
    let vendor = info
        .get("vendor_id")
        .cloned()
        .or_else(|| arm.as_ref().map(|a| a.vendor.clone()));
    let product = info
        .get("model name")
        .cloned()
        .or_else(|| arm.as_ref().and_then(|a| a.model_name.clone()));
    let model = info
        .get("model")
        .cloned()
        .or_else(|| arm.as_ref().map(|a| a.model.clone()));
    let stepping = info
        .get("stepping")
        .cloned()
        .or_else(|| arm.as_ref().map(|a| a.stepping.clone()));
    facts.push("cpu", "physical", "number", topo.sockets);
    if let Some(smt) = first_line(&base.join("smt/control")) {
        facts.push("cpu", "physical", "smt", smt);
    }
    for socket in 0..topo.sockets {
        let tag = format!("physical_{socket}");
        let mut push = |k: &str, v: Value| facts.push("cpu", &tag, k, v);
        if let Some(b) = first_line(&base.join("cpufreq/boost")) {
            push(
                "boost",
                (if b == "1" { "enabled" } else { "disabled" }).into(),
            );
        }
        if let Some(v) = vendor.clone() {
            push("vendor", v.into());
        }
        if let Some(v) = product.clone() {
            push("product", v.into());
        }
        push("cores", topo.cores_per_socket.into());
        push(
            "threads",
            (topo.cores_per_socket * topo.threads_per_core).into(),
        );
        if let Some(v) = info.get("cpu family").and_then(|v| v.parse::<i64>().ok()) {
            push("family", v.into());
        }
        if let Some(v) = model.as_deref() {
            push("model", maybe_int(v));
        }
        if let Some(v) = stepping.as_deref() {
            push("stepping", maybe_int(v));
        }
        push("architecture", std::env::consts::ARCH.into());
        for (name, text) in &topo.caches {
            push(
                &format!("{} cache", name.to_lowercase()),
                text.as_str().into(),
            );
        }
        if let Some(m) = topo.min_mhz {
            push("min_Mhz", m.into());
        }
        if let Some(m) = topo.max_mhz {
            push("max_Mhz", m.into());
        }
        if let Some(v) = info.get("flags").or_else(|| info.get("Features")) {
            push("flags", v.as_str().into());
        }
        push("threads_per_core", topo.threads_per_core.into());
    }
    facts.push("cpu", "logical", "number", topo.cpus);
    for cpu in 0..topo.cpus {
        let governor = first_line(&base.join(format!("cpufreq/policy{cpu}/scaling_governor")))
            .or_else(|| first_line(&base.join(format!("cpu{cpu}/cpufreq/scaling_governor"))));
        if let Some(g) = governor {
            facts.push("cpu", &format!("logical_{cpu}"), "governor", g);
        }
    }
    numa(root, facts);
}

/// `numa` facts: the node count, then per node its CPU count and mask.
fn numa(root: &Root, facts: &mut Facts) {
    let dir = root.path("/sys/devices/system/node");
    let mut nodes: Vec<u32> = list_dir(&dir)
        .iter()
        .filter_map(|n| n.strip_prefix("node")?.parse().ok())
        .collect();
    if nodes.is_empty() {
        return;
    }
    nodes.sort_unstable();
    facts.push("numa", "nodes", "count", nodes.len());
    for n in nodes {
        let node = dir.join(format!("node{n}"));
        let cpus = read_trimmed(&node.join("cpulist"))
            .map(|l| parse_cpulist(&l).len())
            .unwrap_or(0);
        let mask = read_trimmed(&node.join("cpumap")).unwrap_or_default();
        let mask = mask.replace(',', "");
        let mask = mask.trim_start_matches('0');
        let mask = if mask.is_empty() { "0" } else { mask };
        let tag = format!("node_{n}");
        facts.push("numa", &tag, "cpu_count", cpus);
        facts.push("numa", &tag, "cpu_mask", mask);
    }
}

/// `cpu/physical_N/<label>/{temperature,max,critical,critical_alarm}` from the `coretemp`
/// platform devices.
pub fn detect_temperatures(root: &Root, facts: &mut Facts) {
    let platform = root.path("/sys/devices/platform");
    for entry in list_dir(&platform) {
        let Some(n) = entry
            .strip_prefix("coretemp.")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = platform.join(&entry);
        for label in list_dir(&dir) {
            let Some(sensor) = label
                .strip_suffix("_label")
                .filter(|s| s.starts_with("temp"))
            else {
                continue;
            };
            let Some(name) = first_line(&dir.join(&label)) else {
                continue;
            };
            let name = name.trim().replace(' ', "_");
            for (suffix, key) in [
                ("input", "temperature"),
                ("max", "max"),
                ("crit", "critical"),
                ("crit_alarm", "critical_alarm"),
            ] {
                if let Some(v) = read_trimmed(&dir.join(format!("{sensor}_{suffix}"))) {
                    facts.push("cpu", &format!("physical_{n}"), &format!("{name}/{key}"), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_lscpu() {
        assert_eq!(human_size(64 * 1024), "64 KiB");
        assert_eq!(human_size(2 * 1024 * 1024), "2 MiB");
        assert_eq!(human_size(1536 * 1024), "1.5 MiB");
        assert_eq!(human_size(35 * 1024 * 1024 + 768 * 1024), "35.8 MiB");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(cache_bytes("32768K"), Some(32 << 20));
    }

    #[test]
    fn cpulists() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert!(parse_cpulist("").is_empty());
        assert_eq!(maybe_int("0x1a"), Value::from(26));
        assert_eq!(maybe_int("17"), Value::from(17));
        assert_eq!(maybe_int("r0p1"), Value::from("r0p1"));
    }

    #[test]
    fn fixture_two_sockets() {
        let dir = tempfile::tempdir().expect("tmp");
        let cpu = dir.path().join("sys/devices/system/cpu");
        for (n, pkg, core) in [(0, 0, 0), (1, 0, 0), (2, 1, 0), (3, 1, 0)] {
            let t = cpu.join(format!("cpu{n}/topology"));
            std::fs::create_dir_all(&t).expect("mk");
            std::fs::write(t.join("physical_package_id"), format!("{pkg}\n")).expect("w");
            std::fs::write(t.join("core_id"), format!("{core}\n")).expect("w");
            let c = cpu.join(format!("cpu{n}/cache/index0"));
            std::fs::create_dir_all(&c).expect("mk");
            for (a, v) in [("level", "2"), ("type", "Unified"), ("size", "1024K")] {
                std::fs::write(c.join(a), v).expect("w");
            }
            std::fs::write(c.join("shared_cpu_map"), if pkg == 0 { "3" } else { "c" }).expect("w");
        }
        std::fs::write(cpu.join("present"), "0-3\n").expect("w");
        std::fs::create_dir_all(dir.path().join("proc")).expect("mk");
        std::fs::write(
            dir.path().join("proc/cpuinfo"),
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
             model name\t: Intel(R) Xeon(R) Gold 6130\nstepping\t: 4\nflags\t\t: fpu vme\n\n\
             processor\t: 1\nvendor_id\t: Other\n",
        )
        .expect("w");
        let mut facts = Facts::default();
        detect(&Root::at(dir.path()), &mut facts);
        assert_eq!(
            facts.get("cpu", "physical", "number"),
            Some(&Value::from(2))
        );
        assert_eq!(facts.get("cpu", "logical", "number"), Some(&Value::from(4)));
        for s in ["physical_0", "physical_1"] {
            assert_eq!(facts.get("cpu", s, "cores"), Some(&Value::from(1)));
            assert_eq!(facts.get("cpu", s, "threads"), Some(&Value::from(2)));
            assert_eq!(
                facts.get("cpu", s, "threads_per_core"),
                Some(&Value::from(2))
            );
            assert_eq!(facts.get("cpu", s, "model"), Some(&Value::from(85)));
            assert_eq!(
                facts.get_text("cpu", s, "vendor").as_deref(),
                Some("GenuineIntel")
            );
            assert_eq!(
                facts.get_text("cpu", s, "l2 cache").as_deref(),
                Some("2 MiB (2 instances)")
            );
        }
    }
}
