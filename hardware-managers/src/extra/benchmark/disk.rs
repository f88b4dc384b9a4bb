//! The disk benchmark: `fio` sequential 1M and random 4k reads (never writes) on each disk,
//! then on all of them at once, as `standalone_*` / `simultaneous_*` `KBps` and `IOps`.

use std::time::Duration;

use serde_json::Value;

use super::super::fact::python_float;
use super::super::tools;
use super::{BenchmarkError, Facts, Root};

const RUNTIME: u64 = 10;
const RAMP_TIME: u64 = 5;

/// The disks the benchmark runs on: every `disk/<name>/size` fact.
pub fn disks(facts: &Facts) -> Vec<String> {
    facts
        .iter()
        .filter(|f| f.category() == "disk" && f.key() == "size" && !f.item().contains("I:"))
        .map(|f| f.item().to_string())
        .collect()
}

/// Adds the facts of one `fio --output-format=json` report.
pub fn parse_report(report: &Value, several: bool, mode: &str, bs: &str, facts: &mut Facts) {
    let prefix = if several {
        "simultaneous"
    } else {
        "standalone"
    };
    let label = format!("{prefix}_{mode}_{bs}");
    for job in report
        .get("jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = job.get("jobname").and_then(Value::as_str).unwrap_or("");
        let disk = name.replace("MYJOB-", "");
        for dir in ["read", "write"] {
            let Some(d) = job.get(dir) else { continue };
            if d.get("runtime").and_then(Value::as_f64).unwrap_or(0.0) > 0.0 {
                let bw = d.get("bw").map(text).unwrap_or_default();
                let iops = d.get("iops").map(text).unwrap_or_default();
                facts.push("disk", &disk, &format!("{label}_KBps"), bw);
                facts.push("disk", &disk, &format!("{label}_IOps"), iops);
            }
        }
    }
}

/// Python's `str()` of a JSON number.
fn text(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => python_float(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fio(
    root: &Root,
    disks: &[String],
    mode: &str,
    bs: &str,
    facts: &mut Facts,
) -> Result<(), BenchmarkError> {
    let mut args = vec![
        "--ioengine=libaio".to_string(),
        "--invalidate=1".into(),
        format!("--ramp_time={RAMP_TIME}"),
        "--iodepth=32".into(),
        format!("--runtime={RUNTIME}"),
        "--time_based".into(),
        "--direct=1".into(),
        "--output-format=json".into(),
        format!("--bs={bs}"),
        format!("--rw={mode}"),
        "--random_generator=tausworthe64".into(),
    ];
    for d in disks {
        let dev = format!("/dev/{d}");
        // Flush the disk's cache first (ignored where hdparm is missing or fails).
        let _ = tools::run(root, "hdparm", &["-f", &dev], tools::TOOL_TIMEOUT);
        args.push(format!("--name=MYJOB-{d}"));
        args.push(format!("--filename={dev}"));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let timeout = Duration::from_secs(RUNTIME + RAMP_TIME + 120);
    let out = if tools::available(root, "fio") {
        tools::run(root, "fio", &a, timeout)
    } else {
        None
    };
    let out =
        out.ok_or_else(|| BenchmarkError::Fio("fio is not installed or did not run".into()))?;
    if !out.success {
        return Err(BenchmarkError::Fio(out.stderr.trim().to_string()));
    }
    let report: Value = serde_json::from_str(&out.stdout)
        .map_err(|e| BenchmarkError::Fio(format!("unreadable report: {e}")))?;
    parse_report(&report, disks.len() > 1, mode, bs, facts);
    Ok(())
}

/// Runs the disk benchmark (read-only: IPA never asks for the destructive one).
///
/// # Errors
/// [`BenchmarkError::Fio`] when `fio` is missing or fails.
pub fn run(root: &Root, facts: &mut Facts) -> Result<(), BenchmarkError> {
    let disks = disks(facts);
    for d in &disks {
        fio(root, std::slice::from_ref(d), "read", "1M", facts)?;
        fio(root, std::slice::from_ref(d), "randread", "4k", facts)?;
    }
    if disks.len() > 1 {
        fio(root, &disks, "read", "1M", facts)?;
        fio(root, &disks, "randread", "4k", facts)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report() {
        let r = serde_json::json!({"jobs": [{
            "jobname": "MYJOB-sda",
            "read": {"runtime": 10000, "bw": 512000, "iops": 500.25},
            "write": {"runtime": 0, "bw": 0, "iops": 0.0}
        }]});
        let mut facts = Facts::default();
        parse_report(&r, false, "read", "1M", &mut facts);
        assert_eq!(
            facts
                .get_text("disk", "sda", "standalone_read_1M_KBps")
                .as_deref(),
            Some("512000")
        );
        assert_eq!(
            facts
                .get_text("disk", "sda", "standalone_read_1M_IOps")
                .as_deref(),
            Some("500.25")
        );
        assert_eq!(facts.0.len(), 2);
        let mut facts = Facts::default();
        let r = serde_json::json!({"jobs": [{"jobname": "MYJOB-sdb", "read": {"runtime": 1, "bw": 1, "iops": 2.0}}]});
        parse_report(&r, true, "randread", "4k", &mut facts);
        assert_eq!(
            facts
                .get_text("disk", "sdb", "simultaneous_randread_4k_IOps")
                .as_deref(),
            Some("2.0")
        );
    }

    #[test]
    fn without_fio_it_fails() {
        let mut facts = Facts::default();
        facts.push("disk", "sda", "size", "100");
        let err = run(&Root::at("/nonexistent"), &mut facts).expect_err("no fio in a fixture");
        assert!(err.to_string().contains("fio"), "{err}");
    }
}
