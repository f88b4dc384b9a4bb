//! `burnin_disk`: fio over every disk the agent may write, then optionally a SMART self-test.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hardware_managers::guard::DiskGuard;
use hardware_managers::hints::{HintTarget, SkipList};
use hardware_managers::{BlockDevice, HardwareError, HardwareResult, IpaClass, Node};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::report::{self, DiskResult, SmartInfo};
use super::settings::FioSettings;
use super::tool::{self, FIO, SMARTCTL, Toolbox};
use super::{command_failed, margin};
use crate::devices::Devices;

/// The longest a pass-count (not time-based) fio run may take before it is killed.
const FIO_CEILING: Duration = Duration::from_secs(7 * 86_400);
/// Largest `--output` report read back.
const REPORT_MAX: u64 = 16 << 20;

/// The disks to burn in and those left alone (with why).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DiskPlan {
    /// Devices fio writes, in listing order.
    pub targets: Vec<PathBuf>,
    /// Device → reason it is not written.
    pub skipped: BTreeMap<String, String>,
}

/// The node's disks (from the hardware managers) minus `skip_block_devices` and the disks the
/// guard protects.
pub(crate) fn plan(devices: &Devices, node: &Node) -> HardwareResult<DiskPlan> {
    let disks = devices.list(false)?;
    let skip = SkipList::from_node(node)?;
    let guard = devices.guard();
    Ok(plan_with(disks, &skip, &guard))
}

/// [`plan`] over a given disk list.
pub(crate) fn plan_with(disks: Vec<BlockDevice>, skip: &SkipList, guard: &DiskGuard) -> DiskPlan {
    let mut plan = DiskPlan::default();
    for disk in disks {
        if skip.matching_entry(&HintTarget::from(&disk)).is_some() {
            info!(disk = %disk.name, "burn-in: skipped by skip_block_devices");
            plan.skipped
                .insert(disk.name, "listed in skip_block_devices".into());
            continue;
        }
        let path = PathBuf::from(&disk.name);
        if let Err(e) = guard.check_writable(&path) {
            warn!(disk = %disk.name, reason = %e, "burn-in: not writing a protected disk");
            plan.skipped.insert(disk.name, e.to_string());
            continue;
        }
        plan.targets.push(path);
    }
    plan
}

/// The fio command line (IPA's options, one job per disk). `--runtime`/`--time_based` only
/// with a run time (fio ignores `--time_based` without one, with a warning).
pub(crate) fn fio_args(s: &FioSettings, targets: &[PathBuf]) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--rw",
        "readwrite",
        "--bs",
        "4k",
        "--direct",
        "1",
        "--ioengine",
        "libaio",
        "--iodepth",
        "32",
        "--verify",
        "crc32c",
        "--verify_dump",
        "1",
        "--continue_on_error",
        "verify",
        "--loops",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(s.loops.to_string().into());
    if s.runtime_s > 0 {
        args.extend([
            "--runtime".into(),
            s.runtime_s.to_string().into(),
            "--time_based".into(),
        ]);
    }
    args.extend(["--output-format".into(), "json".into()]);
    if let Some(file) = &s.output_file {
        args.extend(["--output".into(), file.into()]);
    }
    for t in targets {
        args.extend(["--name".into(), t.into(), "--filename".into(), t.into()]);
    }
    args
}

/// How the SMART self-test is waited for.
#[derive(Debug, Clone)]
pub(crate) struct SmartPolling {
    /// Pause between status checks (IPA: 30 s).
    pub interval: Duration,
    /// Longest wait for all tests to finish.
    pub ceiling: Duration,
}

impl Default for SmartPolling {
    fn default() -> Self {
        SmartPolling {
            interval: Duration::from_secs(30),
            ceiling: Duration::from_secs(48 * 3600),
        }
    }
}

/// Runs fio on `plan.targets` (and the SMART test when asked) and returns the per-disk figures.
pub(crate) fn run(
    tools: &Toolbox,
    s: &FioSettings,
    plan: &DiskPlan,
    smart: &SmartPolling,
) -> HardwareResult<Value> {
    if plan.targets.is_empty() {
        let skipped: Vec<String> = plan
            .skipped
            .iter()
            .map(|(d, why)| format!("{d} ({why})"))
            .collect();
        return Err(command_failed(format!(
            "fio (disk) failed with error: no disk to burn in{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped: {}", skipped.join(", "))
            }
        )));
    }
    let fio = tools.find(FIO)?;
    let deadline = if s.runtime_s > 0 {
        let run = Duration::from_secs(s.runtime_s);
        run + margin(run).max(Duration::from_secs(600))
    } else {
        FIO_CEILING
    };
    let args = fio_args(s, &plan.targets);
    info!(command = ?args, "burn-in: running fio (disk)");
    let fail = |why: String| command_failed(format!("fio (disk) failed with error: {why}"));
    let out = tool::run(&fio, &args, Some(&std::env::temp_dir()), deadline)
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}; stderr: {}",
            out.status,
            tool::tail_text(&out.stderr, tool::STDERR_IN_ERRORS)
        )));
    }
    let text = match &s.output_file {
        Some(file) => read_report(file).map_err(&fail)?,
        None => String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    let report = report::fio_report(&text).map_err(&fail)?;
    let problems: Vec<String> = report.jobs.iter().filter_map(|j| j.problem()).collect();
    if !problems.is_empty() {
        return Err(fail(format!(
            "I/O or verify errors: {}; stderr: {}",
            problems.join("; "),
            tool::tail_text(&out.stderr, tool::STDERR_IN_ERRORS)
        )));
    }
    let disks: Vec<DiskResult> = report.jobs.iter().map(|j| j.result()).collect();
    info!(elapsed_s = out.elapsed.as_secs_f64(), disks = ?disks, "burn-in: fio (disk) finished");
    let smart_results = if s.smart_test {
        Some(run_smart_test(tools, &plan.targets, smart)?)
    } else {
        None
    };
    Ok(json!({
        "tool": "fio",
        "loops": s.loops,
        "runtime": s.runtime_s,
        "elapsed_s": out.elapsed.as_secs_f64(),
        "disks": disks,
        "skipped": plan.skipped,
        "smart_test": smart_results,
    }))
}

/// The JSON report fio wrote to `--output`.
fn read_report(file: &Path) -> Result<String, String> {
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(REPORT_MAX).read_to_string(&mut text))
        .map_err(|e| format!("cannot read fio's report {}: {e}", file.display()))?;
    Ok(text)
}

fn cleaning_error(message: String) -> HardwareError {
    tracing::error!("{message}");
    HardwareError::ipa(IpaClass::CleaningError, message)
}

/// IPA's SMART check: start a long self-test on every disk, then poll each until it reports
/// completion. A disk that reports no self-test status is left out (as IPA does); one whose
/// test ends otherwise than "completed without error" fails the step.
pub(crate) fn run_smart_test(
    tools: &Toolbox,
    devices: &[PathBuf],
    polling: &SmartPolling,
) -> HardwareResult<BTreeMap<String, String>> {
    let smartctl = tools.find(SMARTCTL)?;
    let quick = Duration::from_secs(120);
    let mut not_started = Vec::new();
    for dev in devices {
        let args: Vec<OsString> = vec!["-t".into(), "long".into(), dev.into()];
        info!(device = %dev.display(), "burn-in: starting a long SMART self-test");
        match tool::run(&smartctl, &args, None, quick) {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                warn!(device = %dev.display(), status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr), "smartctl -t long failed");
                not_started.push(dev.display().to_string());
            }
            Err(e) => {
                warn!(device = %dev.display(), error = %e, "smartctl -t long failed");
                not_started.push(dev.display().to_string());
            }
        }
    }
    if !not_started.is_empty() {
        return Err(cleaning_error(format!(
            "fio (disk) failed to start SMART self test on {}",
            not_started.join(", ")
        )));
    }

    let started = Instant::now();
    let mut pending: Vec<&PathBuf> = devices.iter().collect();
    let mut results = BTreeMap::new();
    let mut failed = Vec::new();
    loop {
        pending.retain(|dev| {
            let name = dev.display().to_string();
            match smart_status(&smartctl, dev) {
                None => {
                    results.insert(name, "no self-test status reported".into());
                    false
                }
                Some(status) if status.contains("in progress") => true,
                Some(status) => {
                    if status.contains("completed without error") {
                        info!(device = %name, "passed the SMART self-test");
                    } else {
                        warn!(device = %name, status = %status, "failed the SMART self-test");
                        failed.push(format!("{name} ({status})"));
                    }
                    results.insert(name, status);
                    false
                }
            }
        });
        if pending.is_empty() {
            break;
        }
        if started.elapsed() >= polling.ceiling {
            let names: Vec<String> = pending.iter().map(|d| d.display().to_string()).collect();
            return Err(cleaning_error(format!(
                "fio (disk) SMART test still running after {}s on {}",
                polling.ceiling.as_secs(),
                names.join(", ")
            )));
        }
        info!(pending = pending.len(), "SMART tests still running");
        std::thread::sleep(polling.interval);
    }
    if !failed.is_empty() {
        return Err(cleaning_error(format!(
            "fio (disk) SMART test failed for {}",
            failed.join(" ")
        )));
    }
    Ok(results)
}

/// The self-test status `smartctl -ja` reports (its exit status is a bit mask that is often
/// non-zero on healthy disks, so the JSON is read whenever there is some).
fn smart_status(smartctl: &Path, dev: &Path) -> Option<String> {
    let args: Vec<OsString> = vec!["-ja".into(), dev.into()];
    match tool::run(smartctl, &args, None, Duration::from_secs(120)) {
        Ok(out) => serde_json::from_slice::<SmartInfo>(&out.stdout)
            .ok()
            .and_then(SmartInfo::self_test_status),
        Err(e) => {
            warn!(device = %dev.display(), error = %e, "smartctl -ja failed");
            None
        }
    }
}
