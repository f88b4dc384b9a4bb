//! What configuration loading reports before the logger exists (IPA's "early log"): kept, then
//! logged once tracing is set up, or printed with the error when loading fails.

use tracing::Level;

use crate::media::Notes;

/// Lines reported while the configuration was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlyLog {
    lines: Vec<(Level, String)>,
}

impl EarlyLog {
    /// The lines, in order.
    pub fn lines(&self) -> &[(Level, String)] {
        &self.lines
    }

    /// Logs every line through `tracing` (call right after the subscriber is installed).
    pub fn emit(&self) {
        for (level, line) in &self.lines {
            match *level {
                Level::ERROR => tracing::error!("early log: {line}"),
                Level::WARN => tracing::warn!("early log: {line}"),
                Level::INFO => tracing::info!("early log: {line}"),
                Level::DEBUG => tracing::debug!("early log: {line}"),
                Level::TRACE => tracing::trace!("early log: {line}"),
            }
        }
    }

    /// Prints the lines of level INFO and above to stderr (when the agent stops before its
    /// logger exists).
    pub fn print_stderr(&self) {
        for (level, line) in &self.lines {
            if *level <= Level::INFO {
                eprintln!("ironic-agent: {level}: {line}");
            }
        }
    }
}

impl Notes for EarlyLog {
    fn note(&mut self, level: Level, message: String) {
        self.lines.push((level, message));
    }
}
