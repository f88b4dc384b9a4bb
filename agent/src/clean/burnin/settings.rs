//! Burn-in settings: IPA's `node.driver_info` keys, overridable by step arguments, parsed into
//! typed structs.
//!
//! Ironic stores `driver_info` values as the operator typed them, so numbers often arrive as
//! strings (`openstack baremetal node set --driver-info agent_burnin_cpu_timeout=3600`): a
//! number may be a JSON integer or a string of digits. Anything else (booleans, lists, text
//! that is not a number) is refused with `InvalidCommandParamsError` naming the key, where it
//! came from and what was given. A `null` value counts as absent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hardware_managers::{ArgInfo, HardwareError, Node};
use serde_json::{Map, Value};

/// IPA's default stress-ng run: 24 hours.
pub(crate) const DEFAULT_STRESS_TIMEOUT: u64 = 86_400;
/// IPA's default share of memory for the vm stressor.
pub(crate) const DEFAULT_VM_BYTES: &str = "98%";
/// IPA's default number of fio passes (badblocks' default).
pub(crate) const DEFAULT_FIO_LOOPS: u64 = 4;

/// One accepted argument: its step-argument name, the `driver_info` key it overrides, its
/// description and its default (for argsinfo).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArgDef {
    /// Name in the step's `args`.
    pub arg: &'static str,
    /// The `node.driver_info` key IPA reads.
    pub driver_info: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The default, as shown in argsinfo.
    pub default: &'static str,
}

/// The arguments of a stress-ng step for stressor `$s` (`cpu`, `vm`), under IPA's
/// `agent_burnin_<stressor>_<arg>` keys: the worker count `$s`, then `$extra`, then `timeout`
/// (`$what` is what is stressed) and `outputfile`.
macro_rules! stress_args {
    ($s:literal, $workers:literal, $what:literal, [$($extra:expr),* $(,)?]) => {
        &[
            ArgDef {
                arg: $s,
                driver_info: concat!("agent_burnin_", $s, "_", $s),
                description: concat!(
                    "Number of stress-ng ", $workers, " workers (`stress-ng --", $s,
                    " N`); 0 starts one per online CPU"
                ),
                default: "0",
            },
            $($extra,)*
            ArgDef {
                arg: "timeout",
                driver_info: concat!("agent_burnin_", $s, "_timeout"),
                description: concat!(
                    "How long to stress ", $what, ", in seconds (or with an s/m/h/d suffix)"
                ),
                default: "86400",
            },
            ArgDef {
                arg: "outputfile",
                driver_info: concat!("agent_burnin_", $s, "_outputfile"),
                description: "Also write stress-ng's log to this file in the ramdisk (`--log-file`)",
                default: "none",
            },
        ]
    };
}

/// `burnin_cpu`'s arguments.
pub(crate) const CPU_ARGS: &[ArgDef] = stress_args!("cpu", "CPU", "the CPUs", []);

/// `burnin_memory`'s arguments.
pub(crate) const VM_ARGS: &[ArgDef] = stress_args!(
    "vm",
    "vm",
    "the memory",
    [ArgDef {
        arg: "vm_bytes",
        driver_info: "agent_burnin_vm_vm-bytes",
        description: "Memory per vm worker (`--vm-bytes`): bytes with an optional b/k/m/g/t \
                      suffix, or a percentage of the available memory such as 98%",
        default: DEFAULT_VM_BYTES,
    }]
);

/// `burnin_disk`'s arguments.
pub(crate) const DISK_ARGS: &[ArgDef] = &[
    ArgDef {
        arg: "loops",
        driver_info: "agent_burnin_fio_disk_loops",
        description: "Number of fio read/write/verify passes over every disk (`--loops`)",
        default: "4",
    },
    ArgDef {
        arg: "runtime",
        driver_info: "agent_burnin_fio_disk_runtime",
        description: "Run for this many seconds instead of a number of passes (`--runtime`, \
                      time based); 0 runs the passes to completion",
        default: "0",
    },
    ArgDef {
        arg: "outputfile",
        driver_info: "agent_burnin_fio_disk_outputfile",
        description: "Also write fio's JSON report to this file in the ramdisk (`--output`)",
        default: "none",
    },
    ArgDef {
        arg: "smart_test",
        driver_info: "agent_burnin_fio_disk_smart_test",
        description: "After fio, run a long SMART self-test on every disk (smartctl -t long) \
                      and fail if one does not complete without error",
        default: "false",
    },
];

/// The argsinfo of a step: every argument optional, its driver_info key and default named.
pub(crate) fn argsinfo(defs: &[ArgDef]) -> BTreeMap<String, ArgInfo> {
    defs.iter()
        .map(|d| {
            (
                d.arg.to_string(),
                ArgInfo {
                    description: format!(
                        "{}. Overrides node driver_info `{}`; default {}.",
                        d.description, d.driver_info, d.default
                    ),
                    required: false,
                },
            )
        })
        .collect()
}

/// The stress-ng stressor of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stressor {
    /// `--cpu` (burnin_cpu).
    Cpu,
    /// `--vm` (burnin_memory).
    Vm,
}

impl Stressor {
    /// The stressor's name (`cpu`, `vm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stressor::Cpu => "cpu",
            Stressor::Vm => "vm",
        }
    }
}

/// A stress-ng run (burnin_cpu, burnin_memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StressSettings {
    /// Which stressor.
    pub stressor: Stressor,
    /// Number of workers; 0 = one per online CPU.
    pub workers: u64,
    /// Run time in seconds (at least 1).
    pub timeout_s: u64,
    /// `--vm-bytes` (vm only).
    pub vm_bytes: Option<String>,
    /// `--log-file`.
    pub log_file: Option<PathBuf>,
}

/// A fio disk run (burnin_disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FioSettings {
    /// Passes over each disk (at least 1).
    pub loops: u64,
    /// Seconds of time-based running; 0 = run the passes.
    pub runtime_s: u64,
    /// `--output` for the JSON report.
    pub output_file: Option<PathBuf>,
    /// Run a long SMART self-test afterwards.
    pub smart_test: bool,
}

/// Looks values up in the step arguments, then in `driver_info`, collecting every problem.
struct Lookup<'a> {
    step: &'a str,
    args: &'a Map<String, Value>,
    driver_info: &'a Map<String, Value>,
    problems: Vec<String>,
}

impl<'a> Lookup<'a> {
    fn new(step: &'a str, args: &'a Map<String, Value>, node: &'a Node) -> Self {
        Lookup {
            step,
            args,
            driver_info: &node.driver_info,
            problems: Vec::new(),
        }
    }

    /// The value for `def` (step argument first) with a description of where it came from.
    fn raw(&self, def: &ArgDef) -> Option<(&'a Value, String)> {
        if let Some(v) = self.args.get(def.arg).filter(|v| !v.is_null()) {
            return Some((v, format!("step argument `{}`", def.arg)));
        }
        self.driver_info
            .get(def.driver_info)
            .filter(|v| !v.is_null())
            .map(|v| (v, format!("driver_info `{}`", def.driver_info)))
    }

    /// Parses the value for `def` with `parse` (which says what it expected on failure).
    fn get<T>(&mut self, def: &ArgDef, parse: impl Fn(&Value) -> Result<T, String>) -> Option<T> {
        let (value, from) = self.raw(def)?;
        match parse(value) {
            Ok(v) => Some(v),
            Err(expected) => {
                self.problems
                    .push(format!("{from} must be {expected}, got {value}"));
                None
            }
        }
    }

    fn finish<T>(self, value: T) -> Result<T, HardwareError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(HardwareError::InvalidArgs(format!(
                "{}: invalid burn-in settings: {}",
                self.step,
                self.problems.join("; ")
            )))
        }
    }
}

/// A non-negative integer: a JSON integer or a string of digits.
fn integer(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

fn count(v: &Value) -> Result<u64, String> {
    integer(v)
        .filter(|n| *n <= 1 << 20)
        .ok_or_else(|| "a non-negative integer".to_string())
}

fn positive_count(v: &Value) -> Result<u64, String> {
    integer(v)
        .filter(|n| (1..=1 << 20).contains(n))
        .ok_or_else(|| "a positive integer".to_string())
}

/// Seconds: an integer, or a string of digits with an optional s, m, h or d suffix (the
/// suffixes stress-ng understands).
fn seconds(v: &Value) -> Option<u64> {
    if let Some(n) = integer(v) {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    integer(&Value::String(digits.to_string()))?.checked_mul(factor)
}

/// At most a year: beyond that a value is a typo, and deadlines must not overflow.
const MAX_SECONDS: u64 = 366 * 86_400;

fn positive_seconds(v: &Value) -> Result<u64, String> {
    seconds(v)
        .filter(|n| (1..=MAX_SECONDS).contains(n))
        .ok_or_else(|| {
            "a positive number of seconds (an integer, or digits with an s/m/h/d suffix)".into()
        })
}

fn any_seconds(v: &Value) -> Result<u64, String> {
    seconds(v).filter(|n| *n <= MAX_SECONDS).ok_or_else(|| {
        "a non-negative number of seconds (an integer, or digits with an s/m/h/d suffix)".into()
    })
}

/// `--vm-bytes`: bytes with an optional b/k/m/g/t suffix, or 1–100 %.
fn vm_bytes(v: &Value) -> Result<String, String> {
    let expected = || "a size such as 1073741824, 512m, 4g or 98%".to_string();
    if let Some(n) = integer(v).filter(|n| *n > 0) {
        return Ok(n.to_string());
    }
    let s = v.as_str().map(str::trim).ok_or_else(expected)?;
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digits_end);
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let ok = match suffix.to_ascii_lowercase().as_str() {
        "%" => (1..=100).contains(&n),
        "" | "b" | "k" | "m" | "g" | "t" => n > 0,
        _ => false,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(expected())
    }
}

fn path(v: &Value) -> Result<PathBuf, String> {
    match v.as_str().map(str::trim) {
        Some(s) if !s.is_empty() && !s.contains('\0') => Ok(PathBuf::from(s)),
        _ => Err("a file path (a non-empty string)".into()),
    }
}

/// A boolean, or one of the strings oslo's `bool_from_string` accepts.
fn flag(v: &Value) -> Result<bool, String> {
    let expected = || "a boolean (true/false)".to_string();
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
            _ => Err(expected()),
        },
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        _ => Err(expected()),
    }
}

/// The settings of `burnin_cpu` or `burnin_memory`.
pub(crate) fn stress(
    step: &str,
    stressor: Stressor,
    node: &Node,
    args: &Map<String, Value>,
) -> Result<StressSettings, HardwareError> {
    let defs = match stressor {
        Stressor::Cpu => CPU_ARGS,
        Stressor::Vm => VM_ARGS,
    };
    let mut l = Lookup::new(step, args, node);
    let mut s = StressSettings {
        stressor,
        workers: 0,
        timeout_s: DEFAULT_STRESS_TIMEOUT,
        vm_bytes: (stressor == Stressor::Vm).then(|| DEFAULT_VM_BYTES.to_string()),
        log_file: None,
    };
    for def in defs {
        match def.arg {
            "cpu" | "vm" => s.workers = l.get(def, count).unwrap_or(s.workers),
            "timeout" => s.timeout_s = l.get(def, positive_seconds).unwrap_or(s.timeout_s),
            "vm_bytes" => s.vm_bytes = l.get(def, vm_bytes).or(s.vm_bytes),
            "outputfile" => s.log_file = l.get(def, path),
            _ => {}
        }
    }
    l.finish(s)
}

/// The settings of `burnin_disk`.
pub(crate) fn fio(
    step: &str,
    node: &Node,
    args: &Map<String, Value>,
) -> Result<FioSettings, HardwareError> {
    let mut l = Lookup::new(step, args, node);
    let mut s = FioSettings {
        loops: DEFAULT_FIO_LOOPS,
        runtime_s: 0,
        output_file: None,
        smart_test: false,
    };
    for def in DISK_ARGS {
        match def.arg {
            "loops" => s.loops = l.get(def, positive_count).unwrap_or(s.loops),
            "runtime" => s.runtime_s = l.get(def, any_seconds).unwrap_or(s.runtime_s),
            "outputfile" => s.output_file = l.get(def, path),
            "smart_test" => s.smart_test = l.get(def, flag).unwrap_or(false),
            _ => {}
        }
    }
    l.finish(s)
}
