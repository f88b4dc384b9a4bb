//! The deploy and cleaning progress display: a self-drawn bar redrawn in place on a
//! terminal, or plain lines (on changes, at most every few seconds otherwise) when the output
//! is not a terminal.
//!
//! For deploys the bar and percentage measure the bytes downloaded against the image size
//! the agent knows (`total_bytes`, the `Content-Length`); the bytes written to disk are shown
//! next to them (they differ for compressed and qcow2 images). For clean steps reporting
//! progress, the bar measures `bytes_written` against `total_bytes`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::model::{CleanPhase, DeployPhase, DeployProgress, Step};
use crate::state::ProvisionState;
use crate::steps::step_id;

/// Width of the bar between the brackets.
pub const BAR_WIDTH: usize = 24;

/// How often an unchanged plain line is repeated when the bytes move.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(2);

/// The phase of the operation followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A deploy.
    Deploy(DeployPhase),
    /// Cleaning.
    Clean(CleanPhase),
}

impl From<DeployPhase> for Phase {
    fn from(p: DeployPhase) -> Phase {
        Phase::Deploy(p)
    }
}

impl From<CleanPhase> for Phase {
    fn from(p: CleanPhase) -> Phase {
        Phase::Clean(p)
    }
}

/// What is displayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Provision state.
    pub state: ProvisionState,
    /// Deploy or cleaning phase.
    pub phase: Option<Phase>,
    /// Current step (`deploy.write_image`, `deploy.erase_devices (1/2)`).
    pub step: Option<String>,
    /// The agent's progress of the running step.
    pub progress: Option<DeployProgress>,
}

impl Snapshot {
    /// What changes the plain output immediately: state, phase, step and stage.
    fn key(&self) -> String {
        format!(
            "{}|{:?}|{:?}|{:?}",
            self.state,
            self.phase,
            self.step,
            self.progress.as_ref().and_then(|p| p.stage.clone())
        )
    }
}

/// `interface.step`, with its place in the plan when known: `deploy.erase_devices (1/2)`.
pub fn step_text(step: &Step, index: Option<usize>, steps: Option<&[Step]>) -> String {
    match (index, steps) {
        (Some(i), Some(steps)) => format!("{} ({}/{})", step_id(step), i + 1, steps.len()),
        _ => step_id(step),
    }
}

/// `1023 B`, `1.5 KiB`, `860.0 MiB`, `2.00 GiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("TiB");
    if unit >= 2 {
        format!("{value:.2} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}

/// `350.1 MiB/s`.
pub fn format_rate(bytes_per_s: f64) -> String {
    if !bytes_per_s.is_finite() || bytes_per_s <= 0.0 {
        return "- B/s".to_string();
    }
    format!("{}/s", format_bytes(bytes_per_s as u64))
}

/// A bar of [`BAR_WIDTH`] cells, `fraction` (0..=1) filled.
pub fn bar(fraction: f64) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let mut cells = "=".repeat(filled);
    if filled < BAR_WIDTH {
        cells.push('>');
        cells.push_str(&" ".repeat(BAR_WIDTH - filled - 1));
    }
    format!("[{cells}]")
}

/// The bar, the percentage and `done / total` of `done` bytes out of `total` (above 0).
fn measured(done: u64, total: u64) -> [String; 3] {
    let fraction = done as f64 / total as f64;
    [
        bar(fraction),
        format!("{:>3.0}%", (fraction * 100.0).clamp(0.0, 100.0)),
        format!("{} / {}", format_bytes(done), format_bytes(total)),
    ]
}

fn phase_text(s: &Snapshot) -> String {
    use CleanPhase as C;
    use DeployPhase as D;
    let step = s.step.as_deref().unwrap_or("-");
    match s.phase {
        Some(Phase::Deploy(D::Requested) | Phase::Clean(C::Requested)) => {
            "waiting for the agent's heartbeat".to_string()
        }
        Some(Phase::Deploy(D::StepRunning) | Phase::Clean(C::StepRunning)) => {
            format!("starting {step}")
        }
        Some(Phase::Deploy(D::AgentStep) | Phase::Clean(C::AgentStep)) => {
            format!("{step} running on the agent")
        }
        Some(Phase::Deploy(D::InstallBootloader)) => "installing the bootloader".to_string(),
        Some(Phase::Deploy(D::PowerOff) | Phase::Clean(C::PowerOff)) => "powering off".to_string(),
        Some(Phase::Deploy(D::Done) | Phase::Clean(C::Done)) => "done".to_string(),
        Some(Phase::Deploy(D::Failed) | Phase::Clean(C::Failed)) => "failed".to_string(),
        None => "-".to_string(),
    }
}

/// The progress of a clean step: a bar when its size is known, the bytes written, the stage.
fn clean_progress(p: &DeployProgress) -> Vec<String> {
    let mut parts = Vec::new();
    match (p.bytes_written, p.total_bytes.filter(|t| *t > 0)) {
        (Some(written), Some(total)) => parts.extend(measured(written, total)),
        (Some(written), None) => parts.push(format!("written {}", format_bytes(written))),
        _ => {}
    }
    if let Some(stage) = &p.stage {
        parts.push(stage.clone());
    }
    parts
}

/// One line describing `s`.
pub fn render(s: &Snapshot) -> String {
    let head = format!("{}: {}", s.state, phase_text(s));
    let Some(p) = s.progress.as_ref() else {
        return head;
    };
    if let Some(Phase::Clean(_)) = s.phase {
        let parts = clean_progress(p);
        return if parts.is_empty() {
            head
        } else {
            format!("{head}  {}", parts.join("  "))
        };
    }
    let written = p.bytes_written.unwrap_or(0);
    let downloaded = p.bytes_downloaded.unwrap_or(written);
    let mut parts = Vec::new();
    match p.total_bytes.filter(|t| *t > 0) {
        Some(total) => parts.extend(measured(downloaded, total)),
        None => parts.push(format!("{} downloaded", format_bytes(downloaded))),
    }
    parts.push(format!("written {}", format_bytes(written)));
    if let Some(rate) = p.rate_bytes_per_s {
        parts.push(format_rate(rate));
    }
    if let Some(stage) = &p.stage {
        parts.push(stage.clone());
    }
    format!("{head}  {}", parts.join("  "))
}

/// Draws [`Snapshot`]s on a writer (stderr).
#[derive(Debug)]
pub struct ProgressBar<W: Write> {
    out: W,
    tty: bool,
    drawn: bool,
    last: Option<(String, String, Instant)>,
}

impl<W: Write> ProgressBar<W> {
    /// A display on `out`; `tty` selects in-place redrawing.
    pub fn new(out: W, tty: bool) -> ProgressBar<W> {
        ProgressBar {
            out,
            tty,
            drawn: false,
            last: None,
        }
    }

    /// Shows `s` (errors writing to the display are ignored).
    pub fn update(&mut self, s: &Snapshot) {
        let line = render(s);
        if self.tty {
            let _ = write!(self.out, "\r\x1b[K{line}");
            let _ = self.out.flush();
            self.drawn = true;
            return;
        }
        let key = s.key();
        let now = Instant::now();
        let due = match &self.last {
            None => true,
            Some((last_key, last_line, at)) => {
                *last_key != key
                    || (*last_line != line && now.duration_since(*at) >= PLAIN_INTERVAL)
            }
        };
        if due {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
            self.last = Some((key, line, now));
        }
    }

    /// Ends the in-place line.
    pub fn finish(&mut self) {
        if self.tty && self.drawn {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
            self.drawn = false;
        }
    }

    /// The writer (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writing(written: u64, total: Option<u64>) -> Snapshot {
        Snapshot {
            state: ProvisionState::DeployWait,
            phase: Some(DeployPhase::AgentStep.into()),
            step: Some("deploy.write_image".into()),
            progress: Some(DeployProgress {
                stage: Some("writing".into()),
                bytes_written: Some(written),
                bytes_downloaded: Some(written),
                total_bytes: total,
                rate_bytes_per_s: Some(350.0 * 1024.0 * 1024.0),
                elapsed_s: Some(1.0),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(860 * 1024 * 1024), "860.0 MiB");
        assert_eq!(format_bytes(2 << 30), "2.00 GiB");
        assert_eq!(format_rate(0.0), "- B/s");
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0.0), format!("[>{}]", " ".repeat(BAR_WIDTH - 1)));
        assert_eq!(bar(1.0), format!("[{}]", "=".repeat(BAR_WIDTH)));
        assert_eq!(bar(0.5).matches('=').count(), BAR_WIDTH / 2);
        assert_eq!(bar(f64::NAN), bar(0.0));
    }

    #[test]
    fn renders_progress() {
        let line = render(&writing(1 << 30, Some(2 << 30)));
        assert!(
            line.starts_with("wait call-back: deploy.write_image running on the agent  ["),
            "{line}"
        );
        assert!(
            line.contains(" 50%  1.00 GiB / 2.00 GiB  written 1.00 GiB  350.0 MiB/s  writing"),
            "{line}"
        );
        let line = render(&writing(1 << 20, None));
        assert!(
            line.contains("  1.0 MiB downloaded  written 1.0 MiB  "),
            "{line}"
        );
        let line = render(&Snapshot {
            state: ProvisionState::Deploying,
            phase: Some(DeployPhase::InstallBootloader.into()),
            step: Some("deploy.prepare_instance_boot".into()),
            progress: None,
        });
        assert_eq!(line, "deploying: installing the bootloader");
    }

    #[test]
    fn renders_cleaning() {
        let mut s = Snapshot {
            state: ProvisionState::CleanWait,
            phase: Some(CleanPhase::AgentStep.into()),
            step: Some("deploy.erase_devices (2/2)".into()),
            progress: None,
        };
        assert_eq!(
            render(&s),
            "clean wait: deploy.erase_devices (2/2) running on the agent"
        );
        s.progress = Some(DeployProgress {
            stage: Some("shredding".into()),
            bytes_written: Some(1 << 20),
            total_bytes: Some(4 << 20),
            ..Default::default()
        });
        assert_eq!(
            render(&s),
            format!(
                "clean wait: deploy.erase_devices (2/2) running on the agent  {}   25%  1.0 MiB / 4.0 MiB  shredding",
                bar(0.25)
            )
        );
        s.progress = Some(DeployProgress::default());
        s.phase = Some(CleanPhase::Requested.into());
        assert_eq!(render(&s), "clean wait: waiting for the agent's heartbeat");
    }

    #[test]
    fn plain_output_prints_changes_only() {
        let mut pb = ProgressBar::new(Vec::new(), false);
        pb.update(&writing(1, Some(10)));
        pb.update(&writing(2, Some(10))); // same stage, within the interval
        let mut other = writing(3, Some(10));
        other.progress.as_mut().unwrap().stage = Some("verifying".into());
        pb.update(&other);
        pb.finish();
        let text = String::from_utf8(pb.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\r'));
    }

    #[test]
    fn tty_output_redraws_in_place() {
        let mut pb = ProgressBar::new(Vec::new(), true);
        pb.update(&writing(1, Some(10)));
        pb.update(&writing(2, Some(10)));
        pb.finish();
        let text = String::from_utf8(pb.into_inner()).unwrap();
        assert_eq!(text.matches("\r\x1b[K").count(), 2);
        assert!(text.ends_with('\n'));
    }
}
