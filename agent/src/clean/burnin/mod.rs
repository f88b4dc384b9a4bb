//! Burn-in: `burnin_cpu`, `burnin_memory` (stress-ng) and `burnin_disk` (fio), as IPA's
//! generic manager offers them.
//!
//! All three are on the `deploy` interface with priority 0 (run only when asked for), are
//! abortable and need no reboot. They are clean steps; `burnin_cpu` and `burnin_memory` are
//! also service steps (IPA does not offer `burnin_disk` for servicing: it overwrites disks).
//!
//! Settings come from `node.driver_info` under IPA's keys; a step argument of the short name
//! (see each step's argsinfo) overrides the key. Each run is bounded: the tool's own time plus
//! a margin, after which its whole process group is killed. Tools are looked up on `PATH` and
//! in the sbin directories; a missing one fails the step naming the package to install.
//!
//! Differences from IPA, on purpose:
//! * settings are validated (IPA hands any value to the tool's command line);
//! * the result is a summary (stress-ng's metrics, fio's per-disk figures) instead of `null`;
//! * `burnin_disk` skips the disks in `properties.skip_block_devices` and every disk the disk
//!   guard protects (outside `--allow-device`, holding `/`, mounted, RAID/dm members,
//!   read-only), and fails when fio reports I/O or verify errors even if it exits 0.

mod disk;
mod report;
mod settings;
mod tool;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::time::Duration;

use hardware_managers::{HardwareError, HardwareResult, IpaClass, Step, StepContext, StepKind};
use serde_json::{Map, Value, json};
use tracing::{error, info};

use self::settings::{ArgDef, StressSettings, Stressor};
use self::tool::{STRESS_NG, Toolbox};
use crate::clean::deploy_step;
use crate::devices::Devices;
use crate::tools::ToolError;

/// The burn-in steps, with the kinds they are offered for and their arguments.
const STEPS: &[(&str, &[StepKind], &[ArgDef])] = &[
    (
        "burnin_cpu",
        &[StepKind::Clean, StepKind::Service],
        settings::CPU_ARGS,
    ),
    ("burnin_disk", &[StepKind::Clean], settings::DISK_ARGS),
    (
        "burnin_memory",
        &[StepKind::Clean, StepKind::Service],
        settings::VM_ARGS,
    ),
];

/// The burn-in steps of `kind` (none for deploy).
pub fn steps(kind: StepKind) -> Vec<Step> {
    STEPS
        .iter()
        .filter(|(_, kinds, _)| kinds.contains(&kind))
        .map(|(name, _, args)| {
            let mut s = deploy_step(name, 0, true);
            s.argsinfo = Some(settings::argsinfo(args));
            s
        })
        .collect()
}

/// Runs burn-in step `name`; `Incompatible` for other names.
pub fn execute(
    devices: &Devices,
    name: &str,
    step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    let tools = Toolbox::system();
    match name {
        "burnin_cpu" => {
            let s = settings::stress(name, Stressor::Cpu, &step_ctx.node, args)?;
            run_stress(&tools, &s)
        }
        "burnin_memory" => {
            let s = settings::stress(name, Stressor::Vm, &step_ctx.node, args)?;
            run_stress(&tools, &s)
        }
        "burnin_disk" => {
            let s = settings::fio(name, &step_ctx.node, args)?;
            let plan = disk::plan(devices, &step_ctx.node)?;
            disk::run(&tools, &s, &plan, &disk::SmartPolling::default())
        }
        other => Err(HardwareError::incompatible(other)),
    }
}

/// Time allowed beyond a tool's own run time before it is killed.
fn margin(run: Duration) -> Duration {
    Duration::from_secs(120).max(run / 10)
}

/// IPA's exception class for a tool that failed.
fn command_failed(message: String) -> HardwareError {
    error!("{message}");
    HardwareError::ipa(IpaClass::CommandExecutionError, message)
}

/// The stress-ng command line of `s` (as IPA builds it).
fn stress_args(s: &StressSettings) -> Vec<OsString> {
    let kind = s.stressor.as_str();
    let mut args: Vec<OsString> = vec![
        format!("--{kind}").into(),
        s.workers.to_string().into(),
        "--timeout".into(),
        s.timeout_s.to_string().into(),
    ];
    if let Some(bytes) = &s.vm_bytes {
        args.extend(["--vm-bytes".into(), bytes.into()]);
    }
    args.push("--metrics-brief".into());
    if let Some(file) = &s.log_file {
        args.extend(["--log-file".into(), file.into()]);
    }
    args
}

/// Runs stress-ng for `s` and returns its metrics.
fn run_stress(tools: &Toolbox, s: &StressSettings) -> HardwareResult<Value> {
    let program = tools.find(STRESS_NG)?;
    let args = stress_args(s);
    let run_time = Duration::from_secs(s.timeout_s);
    let kind = s.stressor.as_str();
    info!(command = ?args, "burn-in: running stress-ng ({kind})");
    let fail = |why: String| command_failed(format!("stress-ng ({kind}) failed with error: {why}"));
    let out =
        tool::run(&program, &args, None, run_time + margin(run_time)).map_err(|e| match e {
            ToolError::TimedOut { .. } => {
                fail(format!("{e} (the run was to take {}s)", run_time.as_secs()))
            }
            other => fail(other.to_string()),
        })?;
    // stress-ng reports on stderr; both streams are looked at in case that changes.
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(fail(format!(
            "{}; stderr: {}",
            out.status,
            tool::tail_text(&out.stderr, tool::STDERR_IN_ERRORS)
        )));
    }
    let report = report::stress_report(&log);
    info!(
        elapsed_s = out.elapsed.as_secs_f64(),
        metrics = ?report.metrics,
        "burn-in: stress-ng ({kind}) finished: {}",
        report.summary.as_deref().unwrap_or("no summary")
    );
    Ok(json!({
        "tool": "stress-ng",
        "stressor": kind,
        "workers": s.workers,
        "timeout": s.timeout_s,
        "vm_bytes": s.vm_bytes,
        "elapsed_s": out.elapsed.as_secs_f64(),
        "metrics": report.metrics,
        "summary": report.summary,
    }))
}
