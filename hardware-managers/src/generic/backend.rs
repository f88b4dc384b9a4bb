//! Steps the generic manager offers but the agent carries out.
//!
//! The image pipeline, partitioning and configuration-drive code live in the agent crate, yet
//! Ironic expects `write_image` and friends among the `GenericHardwareManager`'s steps (as IPA
//! reports them). The agent therefore hands the generic manager a [`StepBackend`]: the manager
//! lists the backend's steps as its own and forwards their execution.

use serde_json::{Map, Value};

use crate::error::HardwareResult;
use crate::manager::StepContext;
use crate::node::Node;
use crate::step::{Step, StepKind};

/// Steps implemented outside this crate and offered under the generic manager's name.
pub trait StepBackend: Send + Sync + std::fmt::Debug {
    /// The steps of `kind` the backend implements.
    fn steps(&self, kind: StepKind) -> Vec<Step>;

    /// Runs step `name`; `Incompatible` for names the backend does not implement.
    fn execute(
        &self,
        name: &str,
        ctx: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value>;

    /// The install device the backend insists on, e.g. the software-RAID root volume it
    /// created (IPA's `_raid_root_device_mapping`); `None` leaves the choice to the manager.
    fn install_device(&self, node: Option<&Node>) -> HardwareResult<Option<String>> {
        let _ = node;
        Ok(None)
    }
}
