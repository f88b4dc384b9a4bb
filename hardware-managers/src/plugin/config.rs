//! Limits for the calls to a plug-in manager.

use std::time::Duration;

/// Limits for plug-in calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginConfig {
    /// Limit for every call except steps (`support`, `version`, inventory queries, ...).
    pub query_timeout: Duration,
    /// Limit for step calls (firmware updates and burn-in can take hours).
    pub step_timeout: Duration,
    /// Largest response read from stdout; a larger one is an error.
    pub max_response_bytes: usize,
}

impl Default for PluginConfig {
    /// 30 s for queries, 6 h for steps, 64 MiB responses.
    fn default() -> Self {
        PluginConfig {
            query_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(6 * 3600),
            max_response_bytes: 64 << 20,
        }
    }
}
