//! The node as `--json` prints it: the stored node (token masked) plus its port MACs.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::model::Node;
use crate::store::Store;
use crate::token;

/// A node as printed by `--json`: the stored node (token masked) plus its port MACs.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// The node.
    #[serde(flatten)]
    pub node: Node,
    /// MAC addresses of its ports.
    pub ports: Vec<String>,
}

impl NodeView {
    /// Loads the ports of `node` and masks its token.
    pub fn load(store: &Store, mut node: Node) -> Result<NodeView> {
        let ports = store
            .ports(node.uuid)
            .with_context(|| format!("reading ports of node {}", node.uuid))?
            .into_iter()
            .map(|p| p.address)
            .collect();
        if node.driver_internal_info.agent_secret_token.is_some() {
            node.driver_internal_info.agent_secret_token = Some(token::MASKED.to_string());
        }
        Ok(NodeView { node, ports })
    }
}
