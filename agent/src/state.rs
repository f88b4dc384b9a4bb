//! State the agent keeps between commands and shares between the API, the commands and the
//! steps: what the last deploy produced, the software RAID it built, the running command's
//! progress and what lookup taught it. Each piece is its own handle (held in an `Arc` by the
//! agent context and by whoever needs it), so a step is handed exactly the state it touches.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::disk::uuids::PartitionUuids;

/// What the last successful `prepare_image` produced.
#[derive(Debug, Default)]
pub struct DeployState {
    uuids: Mutex<Option<PartitionUuids>>,
    image_id: Mutex<Option<String>>,
}

impl DeployState {
    /// `get_partition_uuids`: `{}` before any deploy.
    pub fn partition_uuids(&self) -> PartitionUuids {
        self.uuids
            .lock()
            .ok()
            .and_then(|u| u.clone())
            .unwrap_or_default()
    }

    pub(crate) fn record(&self, id: &str, uuids: PartitionUuids) {
        if let Ok(mut u) = self.uuids.lock() {
            *u = Some(uuids);
        }
        if let Ok(mut i) = self.image_id.lock() {
            *i = Some(id.to_string());
        }
    }
}

/// What the agent remembers of the software RAID it created: the root volume (the logical
/// disk marked `is_root_volume`, else the first one), which becomes the install device.
#[derive(Debug, Default)]
pub struct RaidState {
    root: Mutex<Option<PathBuf>>,
}

impl RaidState {
    pub(crate) fn set_root(&self, root: Option<PathBuf>) {
        *self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = root;
    }

    /// The root volume, while its array exists.
    pub fn root(&self) -> Option<PathBuf> {
        let root = self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let name = root.file_name()?;
        Path::new("/sys/block")
            .join(name)
            .join("md")
            .is_dir()
            .then_some(root)
    }
}
