//! Deploying: `prepare_image` orchestration, the deploy steps the agent implements, and what a
//! deploy leaves behind for `get_partition_uuids`.

pub mod configdrive;
pub mod inject;
pub mod node_info;
pub mod prepare;
pub mod steps;

pub use prepare::{DeployError, DeployState, prepare_image};
