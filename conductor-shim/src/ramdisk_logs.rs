//! Ramdisk log collection as Ironic's `[agent]deploy_logs_*` options: when a deploy, cleaning
//! or service step fails (and, with `always`, when the operation ends) the conductor asks the
//! agent for `log.collect_system_logs` and stores the bundle as
//! `<node uuid>[_<name>][_<instance uuid>][_<label>]_<YYYY-mm-dd-HH-MM-SS>.tar.gz` in a local
//! directory (Ironic's `local` storage backend).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::agent_client::{AgentClient, AgentClientError};
use crate::model::Node;

/// Ironic's `[agent]deploy_logs_collect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CollectLogs {
    /// After every deploy, cleaning and service, successful or not.
    Always,
    /// Only when a step failed (Ironic's default).
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// Where and when ramdisk logs are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RamdiskLogs {
    /// When to collect.
    pub collect: CollectLogs,
    /// Directory of the bundles (Ironic's `deploy_logs_local_path`); `None` disables storing.
    pub dir: Option<PathBuf>,
}

/// Errors while collecting or storing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum RamdiskLogsError {
    /// The agent could not be asked.
    #[error("asking the agent for its logs: {0}")]
    Agent(#[from] AgentClientError),
    /// The agent answered with an error.
    #[error("the agent could not collect its logs: {0}")]
    Failed(String),
    /// The answer is not a base64 bundle.
    #[error("the agent's log bundle is unusable: {0}")]
    Malformed(String),
    /// Writing the file failed.
    #[error("storing the log bundle in {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `log.collect_system_logs` on the agent and returns the decoded tar.gz.
pub async fn fetch_bundle(client: &AgentClient) -> Result<Vec<u8>, RamdiskLogsError> {
    let result = client
        .execute("log.collect_system_logs", &serde_json::json!({}), true)
        .await?;
    if let Some(e) = &result.command_error {
        return Err(RamdiskLogsError::Failed(e.describe()));
    }
    let b64 = result
        .command_result
        .as_ref()
        .and_then(|r| r.get("system_logs"))
        .and_then(Value::as_str)
        .ok_or_else(|| RamdiskLogsError::Malformed("no system_logs in the result".into()))?;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| RamdiskLogsError::Malformed(format!("system_logs is not base64: {e}")))
}

/// Ironic's file name for a bundle of `node` taken at `now`.
pub fn file_name(node: &Node, label: Option<&str>, now: time::OffsetDateTime) -> String {
    let mut fields = vec![node.uuid.to_string()];
    fields.extend(node.name.clone());
    fields.extend(
        node.instance_info
            .get("instance_uuid")
            .and_then(Value::as_str)
            .map(str::to_string),
    );
    fields.extend(label.map(str::to_string));
    let now = now.to_offset(time::UtcOffset::UTC);
    fields.push(format!(
        "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    ));
    // Names come from operators: keep the file inside the directory whatever they contain.
    let name: String = fields
        .join("_")
        .chars()
        .map(|c| if c == '/' || c == '\0' { '-' } else { c })
        .collect();
    format!("{name}.tar.gz")
}

/// The stored bundles of `node` in `dir`, oldest first.
pub fn stored_bundles(dir: &Path, node: &Node) -> Vec<PathBuf> {
    let prefix = node.uuid.to_string();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".tar.gz"))
        })
        .collect();
    found.sort_by_key(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    });
    found
}

impl RamdiskLogs {
    /// Whether a failure (`failed`) or an ending operation wants a bundle.
    pub fn wanted(&self, failed: bool) -> bool {
        self.dir.is_some()
            && match self.collect {
                CollectLogs::Always => true,
                CollectLogs::OnFailure => failed,
                CollectLogs::Never => false,
            }
    }

    /// Fetches the bundle from `node`'s agent and stores it; returns the file written.
    pub async fn collect(
        &self,
        client: &AgentClient,
        node: &Node,
        label: Option<&str>,
    ) -> Result<Option<PathBuf>, RamdiskLogsError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let bundle = fetch_bundle(client).await?;
        let path = dir.join(file_name(node, label, crate::timefmt::now()));
        let write = |path: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            std::fs::write(path, &bundle)
        };
        write(&path).map_err(|source| RamdiskLogsError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(Some(path))
    }

    /// [`Self::collect`] when wanted, logging the outcome; never fails the caller (as Ironic,
    /// a log collection problem does not change the node's fate).
    pub async fn collect_logged(
        &self,
        node: &Node,
        agent: &crate::agent_client::AgentClientOptions,
        label: Option<&str>,
        failed: bool,
    ) {
        if !self.wanted(failed) {
            return;
        }
        let client = match AgentClient::for_node(node, agent) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(node = %node.uuid, error = %e, "cannot collect the ramdisk logs");
                return;
            }
        };
        match self.collect(&client, node, label).await {
            Ok(Some(path)) => {
                tracing::info!(node = %node.uuid, path = %path.display(), "ramdisk logs stored")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(node = %node.uuid, error = %e, "cannot collect the ramdisk logs")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut store = crate::store::Store::open_in_memory().expect("a store");
        store
            .create_node(crate::model::NewNode {
                uuid: Some(uuid::Uuid::nil()),
                ..Default::default()
            })
            .expect("a node")
    }

    #[test]
    fn file_names_follow_ironic() {
        let mut node = node();
        let t = crate::timefmt::parse("2026-11-22T10:11:12Z").expect("a time");
        assert_eq!(
            file_name(&node, None, t),
            "00000000-0000-0000-0000-000000000000_2026-11-22-10-11-12.tar.gz"
        );
        node.name = Some("rack/1".into());
        assert_eq!(
            file_name(&node, Some("cleaning"), t),
            "00000000-0000-0000-0000-000000000000_rack-1_cleaning_2026-11-22-10-11-12.tar.gz"
        );
    }

    #[test]
    fn when_to_collect() {
        let mut logs = RamdiskLogs {
            collect: CollectLogs::OnFailure,
            dir: Some("/nonexistent".into()),
        };
        assert!(logs.wanted(true));
        assert!(!logs.wanted(false));
        logs.collect = CollectLogs::Always;
        assert!(logs.wanted(false));
        logs.collect = CollectLogs::Never;
        assert!(!logs.wanted(true));
        logs.collect = CollectLogs::Always;
        logs.dir = None;
        assert!(!logs.wanted(true));
    }
}
