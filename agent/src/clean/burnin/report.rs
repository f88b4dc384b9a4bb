//! What the burn-in tools report, read into the step results: stress-ng's `--metrics-brief`
//! lines and fio's JSON report.

use serde::{Deserialize, Serialize};

/// One stressor's line of `stress-ng --metrics-brief`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StressMetrics {
    /// Stressor name (`cpu`, `vm`).
    pub stressor: String,
    /// Bogo operations done.
    pub bogo_ops: f64,
    /// Wall-clock seconds.
    pub real_time_s: f64,
    /// User CPU seconds.
    pub usr_time_s: f64,
    /// System CPU seconds.
    pub sys_time_s: f64,
    /// Bogo operations per wall-clock second.
    pub bogo_ops_per_s_real: f64,
    /// Bogo operations per CPU second.
    pub bogo_ops_per_s_cpu: f64,
}

/// What stress-ng printed (on stderr): the metrics and its closing line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct StressReport {
    /// One entry per stressor.
    pub metrics: Vec<StressMetrics>,
    /// The closing line, e.g. `successful run completed in 60.00s`.
    pub summary: Option<String>,
}

/// Reads stress-ng's log lines (`stress-ng: metrc: [pid] cpu 1584 1.00 0.99 0.00 1583.83
/// 1606.46`). Header lines and anything unparsable are skipped.
pub(crate) fn stress_report(log: &str) -> StressReport {
    let mut report = StressReport::default();
    for line in log.lines() {
        let Some((kind, rest)) = line
            .strip_prefix("stress-ng:")
            .and_then(|l| l.trim_start().split_once(':'))
        else {
            continue;
        };
        // Drop the "[pid]" that follows the level.
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((_, after)) => after.trim(),
            None => rest.trim(),
        };
        match kind.trim() {
            "metrc" => {
                if let Some(m) = metrics_line(rest) {
                    report.metrics.push(m);
                }
            }
            "info" if rest.contains("run completed") => report.summary = Some(rest.to_string()),
            _ => {}
        }
    }
    report
}

fn metrics_line(text: &str) -> Option<StressMetrics> {
    let mut fields = text.split_whitespace();
    let stressor = fields.next()?;
    if stressor == "stressor" {
        return None;
    }
    let n: Vec<f64> = fields.map_while(|f| f.parse().ok()).take(6).collect();
    let [bogo_ops, real, usr, sys, per_real, per_cpu] = n[..] else {
        return None;
    };
    Some(StressMetrics {
        stressor: stressor.to_string(),
        bogo_ops,
        real_time_s: real,
        usr_time_s: usr,
        sys_time_s: sys,
        bogo_ops_per_s_real: per_real,
        bogo_ops_per_s_cpu: per_cpu,
    })
}

/// fio's `--output-format json` report (the parts we read).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FioReport {
    /// One entry per job (per disk).
    #[serde(default)]
    pub jobs: Vec<FioJob>,
}

/// One fio job.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FioJob {
    /// The job name: the device path.
    pub jobname: String,
    /// errno of the job's first fatal error, 0 if none.
    #[serde(default)]
    pub error: i64,
    /// Errors fio continued past (`--continue_on_error verify`).
    #[serde(default)]
    pub total_err: u64,
    /// errno of the first of those.
    #[serde(default)]
    pub first_error: i64,
    /// Reads.
    #[serde(default)]
    pub read: FioIo,
    /// Writes.
    #[serde(default)]
    pub write: FioIo,
}

/// One direction of a job.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct FioIo {
    /// Bytes transferred.
    #[serde(default)]
    pub io_bytes: u64,
    /// Bandwidth in bytes per second.
    #[serde(default)]
    pub bw_bytes: u64,
    /// I/O operations per second.
    #[serde(default)]
    pub iops: f64,
}

/// One disk's line of the burnin_disk result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DiskResult {
    /// Device path.
    pub device: String,
    /// Bytes read and verified.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read bandwidth, bytes per second.
    pub read_bw_bytes: u64,
    /// Write bandwidth, bytes per second.
    pub write_bw_bytes: u64,
    /// Read IOPS.
    pub read_iops: f64,
    /// Write IOPS.
    pub write_iops: f64,
    /// Errors (fatal and continued past).
    pub errors: u64,
}

impl FioJob {
    /// The result line of this job.
    pub fn result(&self) -> DiskResult {
        DiskResult {
            device: self.jobname.clone(),
            read_bytes: self.read.io_bytes,
            write_bytes: self.write.io_bytes,
            read_bw_bytes: self.read.bw_bytes,
            write_bw_bytes: self.write.bw_bytes,
            read_iops: self.read.iops,
            write_iops: self.write.iops,
            errors: self.total_err + u64::from(self.error != 0),
        }
    }

    /// What went wrong on this job, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.error == 0 && self.total_err == 0 {
            return None;
        }
        let errno = if self.error != 0 {
            self.error
        } else {
            self.first_error
        };
        let what = i32::try_from(errno)
            .map(|e| std::io::Error::from_raw_os_error(e).to_string())
            .unwrap_or_else(|_| format!("error {errno}"));
        Some(format!(
            "{}: {} error(s), first: {what}",
            self.jobname,
            self.total_err.max(1)
        ))
    }
}

/// Parses fio's JSON report; text fio printed before it (notes, warnings) is skipped.
pub(crate) fn fio_report(text: &str) -> Result<FioReport, String> {
    let start = text
        .find("\n{")
        .map(|i| i + 1)
        .or_else(|| text.starts_with('{').then_some(0))
        .ok_or_else(|| "fio printed no JSON report".to_string())?;
    serde_json::from_str(&text[start..]).map_err(|e| format!("fio's JSON report is invalid: {e}"))
}

/// `smartctl -j` output: the self-test status, when the drive reports one.
#[derive(Debug, Deserialize)]
pub(crate) struct SmartInfo {
    #[serde(default)]
    ata_smart_data: Option<SmartData>,
}

#[derive(Debug, Deserialize)]
struct SmartData {
    #[serde(default)]
    self_test: Option<SelfTest>,
}

#[derive(Debug, Deserialize)]
struct SelfTest {
    #[serde(default)]
    status: Option<SelfTestStatus>,
}

#[derive(Debug, Deserialize)]
struct SelfTestStatus {
    #[serde(default)]
    string: Option<String>,
}

impl SmartInfo {
    /// `ata_smart_data.self_test.status.string`, as IPA reads it.
    pub fn self_test_status(self) -> Option<String> {
        self.ata_smart_data?.self_test?.status?.string
    }
}
