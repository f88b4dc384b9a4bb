//! CPU summary from `/proc/cpuinfo` and `/sys/devices/system/cpu`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::sysfs::{list_dir, read_i64, read_u64};
use crate::error::{HardwareError, HardwareResult};
use crate::inventory::Cpu;

/// One `key : value` section of /proc/cpuinfo.
type Section = Vec<(String, String)>;

/// Reads the CPU summary under `root`.
pub(crate) fn get_cpus(root: &Path) -> HardwareResult<Cpu> {
    let path = root.join("proc/cpuinfo");
    let text = fs::read_to_string(&path)
        .map_err(|e| HardwareError::io(format!("reading {}", path.display()), e))?;
    let sections = parse_sections(&text);
    let processors: Vec<&Section> = sections
        .iter()
        .filter(|s| value(s, "processor").is_some())
        .collect();
    let first = processors.first().copied().or(sections.first());
    let sys_cpu = root.join("sys/devices/system/cpu");
    let count = cpu_list_count(&sys_cpu.join("present"))
        .or(match processors.len() {
            0 => None,
            n => Some(n as u64),
        })
        .or_else(|| cpu_list_count(&sys_cpu.join("online")))
        .unwrap_or(1);
    Ok(Cpu {
        model_name: first.map(model_name).unwrap_or_default(),
        frequency: max_frequency(&sys_cpu),
        count,
        architecture: architecture(root),
        flags: first.map(flags).unwrap_or_default(),
        socket_count: socket_count(&sys_cpu, &sections),
    })
}

/// lscpu's `Architecture`: the kernel's machine name (`uname -m`: `x86_64`, `aarch64`,
/// `ppc64le`, `armv7l`); under a fake root (tests), and if uname fails, the build target's.
fn architecture(root: &Path) -> String {
    if root == Path::new("/")
        && let Some(machine) = uname_machine()
    {
        return machine;
    }
    std::env::consts::ARCH.to_string()
}

/// `uname(2)`'s `machine`.
fn uname_machine() -> Option<String> {
    // SAFETY: utsname is arrays of C chars: all-zero is a valid value.
    let mut name: nix::libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the utsname we own and pass by pointer.
    if unsafe { nix::libc::uname(&raw mut name) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = name
        .machine
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    let machine = String::from_utf8(bytes).ok()?;
    (!machine.is_empty()).then_some(machine)
}

/// Splits cpuinfo into blank-line separated sections of `key : value` pairs.
fn parse_sections(text: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut current = Section::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                sections.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        sections.push(current);
    }
    sections
}

/// The value of `key` (case-insensitive) in a section, if present and non-empty.
fn value<'a>(section: &'a Section, key: &str) -> Option<&'a str> {
    section
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// `model name` (x86, armv7, LoongArch `Model Name`), ppc64 `cpu`, riscv `uarch`, else a name
/// built from the Arm implementer and part numbers.
fn model_name(section: &Section) -> String {
    ["model name", "cpu model", "cpu", "uarch"]
        .iter()
        .find_map(|k| value(section, k))
        .map(str::to_string)
        .or_else(|| arm_model_name(section))
        .unwrap_or_default()
}

/// A name for an aarch64 core from `CPU implementer` / `CPU part`, like lscpu's.
fn arm_model_name(section: &Section) -> Option<String> {
    let implementer = parse_hex(value(section, "CPU implementer")?)?;
    let part = value(section, "CPU part").and_then(parse_hex);
    let vendor = match implementer {
        0x41 => "ARM",
        0x42 => "Broadcom",
        0x43 => "Cavium",
        0x46 => "Fujitsu",
        0x48 => "HiSilicon",
        0x4e => "NVIDIA",
        0x50 => "APM",
        0x51 => "Qualcomm",
        0x61 => "Apple",
        0x6d => "Microsoft",
        0xc0 => "Ampere",
        _ => "",
    };
    let core = match (implementer, part) {
        (0x41, Some(0xd03)) => Some("Cortex-A53"),
        (0x41, Some(0xd04)) => Some("Cortex-A35"),
        (0x41, Some(0xd05)) => Some("Cortex-A55"),
        (0x41, Some(0xd07)) => Some("Cortex-A57"),
        (0x41, Some(0xd08)) => Some("Cortex-A72"),
        (0x41, Some(0xd09)) => Some("Cortex-A73"),
        (0x41, Some(0xd0a)) => Some("Cortex-A75"),
        (0x41, Some(0xd0b)) => Some("Cortex-A76"),
        (0x41, Some(0xd0c)) => Some("Neoverse-N1"),
        (0x41, Some(0xd0d)) => Some("Cortex-A77"),
        (0x41, Some(0xd40)) => Some("Neoverse-V1"),
        (0x41, Some(0xd41)) => Some("Cortex-A78"),
        (0x41, Some(0xd49)) => Some("Neoverse-N2"),
        (0x41, Some(0xd4f)) => Some("Neoverse-V2"),
        (0x48, Some(0xd01)) => Some("Kunpeng-920"),
        (0x50, Some(0x000)) => Some("X-Gene"),
        (0xc0, Some(0xac3)) => Some("Ampere-1"),
        _ => None,
    };
    Some(match (core, part) {
        (Some(core), _) => core.to_string(),
        (None, Some(part)) if vendor.is_empty() => {
            format!("CPU implementer {implementer:#04x} part {part:#05x}")
        }
        (None, Some(part)) => format!("{vendor} CPU part {part:#05x}"),
        (None, None) if vendor.is_empty() => format!("CPU implementer {implementer:#04x}"),
        (None, None) => format!("{vendor} CPU"),
    })
}

/// Parses `0x41`-style numbers.
fn parse_hex(s: &str) -> Option<u32> {
    u32::from_str_radix(
        s.trim().trim_start_matches("0x").trim_start_matches("0X"),
        16,
    )
    .ok()
}

/// x86 `flags`, or `Features` on Arm and LoongArch.
fn flags(section: &Section) -> Vec<String> {
    value(section, "flags")
        .or_else(|| value(section, "features"))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// lscpu's `CPU max MHz`: the highest cpufreq `cpuinfo_max_freq` (kHz) of all CPUs, formatted
/// as lscpu does (`3700.0000`); empty without cpufreq. The util-linux of every ramdisk IPA 13
/// runs on (2.37 and later) prints no `CPU MHz` line any more, so IPA has no other source:
/// cpuinfo's current `cpu MHz` is not used.
fn max_frequency(sys_cpu: &Path) -> String {
    list_dir(sys_cpu)
        .iter()
        .filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|r| r.parse::<u32>().is_ok())
        })
        .filter_map(|n| read_u64(&sys_cpu.join(n).join("cpufreq/cpuinfo_max_freq")))
        .filter(|khz| *khz > 0)
        .max()
        .map(|khz| format!("{:.4}", khz as f64 / 1000.0))
        .unwrap_or_default()
}

/// Distinct `physical_package_id`s under `cpu*/topology`, else distinct `physical id`s in
/// cpuinfo; `None` when neither is known.
fn socket_count(sys_cpu: &Path, sections: &[Section]) -> Option<u64> {
    let packages: BTreeSet<i64> = list_dir(sys_cpu)
        .iter()
        .filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|r| r.parse::<u32>().is_ok())
        })
        .filter_map(|n| read_i64(&sys_cpu.join(n).join("topology/physical_package_id")))
        .filter(|id| *id >= 0)
        .collect();
    if !packages.is_empty() {
        return Some(packages.len() as u64);
    }
    let ids: BTreeSet<&str> = sections
        .iter()
        .filter_map(|s| value(s, "physical id"))
        .collect();
    (!ids.is_empty()).then_some(ids.len() as u64)
}

/// Number of CPUs in a sysfs CPU list such as `/sys/devices/system/cpu/present` (`0-3,8`).
/// lscpu's `CPU(s)` (IPA's `count`) is the number of present CPUs, offline ones included.
fn cpu_list_count(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let mut count = 0u64;
    for range in text.trim().split(',').filter(|r| !r.is_empty()) {
        count += match range.split_once('-') {
            Some((a, b)) => b.parse::<u64>().ok()?.checked_sub(a.parse::<u64>().ok()?)? + 1,
            None => {
                range.parse::<u64>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_names() {
        let s: Section = vec![
            ("CPU implementer".into(), "0x41".into()),
            ("CPU part".into(), "0xd07".into()),
        ];
        assert_eq!(model_name(&s), "Cortex-A57");
        let s: Section = vec![
            ("CPU implementer".into(), "0x51".into()),
            ("CPU part".into(), "0x801".into()),
        ];
        assert_eq!(model_name(&s), "Qualcomm CPU part 0x801");
        let s: Section = vec![("CPU implementer".into(), "0x99".into())];
        assert_eq!(model_name(&s), "CPU implementer 0x99");
    }

    #[test]
    fn architecture_is_the_kernels() {
        let machine = uname_machine().unwrap();
        assert_eq!(architecture(Path::new("/")), machine);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(machine, "x86_64");
        }
        assert_eq!(
            architecture(Path::new("/nonexistent")),
            std::env::consts::ARCH
        );
    }

    #[test]
    fn parses_sections_and_flags() {
        let s = parse_sections("processor\t: 0\nflags\t\t: fpu vme\n\nprocessor\t: 1\n");
        assert_eq!(s.len(), 2);
        assert_eq!(flags(&s[0]), vec!["fpu", "vme"]);
        assert!(flags(&s[1]).is_empty());
    }
}
