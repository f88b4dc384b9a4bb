//! Deploying: `prepare_image` orchestration, the deploy steps the agent implements, and what a
//! deploy leaves behind for `get_partition_uuids`.

pub mod configdrive;
pub mod inject;
pub mod prepare;
pub mod settings;
pub mod steps;

pub use prepare::{DeployError, Deployer};
pub use settings::DeploySettings;
