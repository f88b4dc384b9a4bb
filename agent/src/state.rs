//! State the agent keeps between commands and shares between the API, the commands and the
//! steps: what the last deploy produced, the software RAID it built, the running command's
//! progress and what lookup taught it. Each piece is its own handle (held in an `Arc` by the
//! agent context and by whoever needs it), so a step is handed exactly the state it touches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use hardware_managers::Node;

use crate::config::lookup::LookupConfig;
use crate::disk::uuids::PartitionUuids;
use crate::image::Progress;
use crate::shutdown::Shutdown;

/// Every shared state handle, made once at start-up: the agent context holds them, and each
/// step or command is handed (a clone of) the ones it uses.
#[derive(Debug, Clone, Default)]
pub struct AgentState {
    /// The node cached from lookup or the latest command.
    pub node: Arc<Shared<Node>>,
    /// The `config` part of the lookup response, once looked up.
    pub lookup: Arc<Shared<LookupConfig>>,
    /// The running command's progress.
    pub progress: Arc<ProgressSlot>,
    /// What the last deploy left (partition UUIDs).
    pub deploy: Arc<DeployState>,
    /// The software RAID this agent created (its root volume).
    pub raid: Arc<RaidState>,
    /// SIGTERM/SIGINT: what long operations watch to fail cleanly at once.
    pub shutdown: Shutdown,
}

/// A value learned while the agent runs (e.g. from lookup), unset until then.
#[derive(Debug)]
pub struct Shared<T>(RwLock<Option<T>>);

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(RwLock::new(None))
    }
}

impl<T: Clone> Shared<T> {
    /// The current value, if any.
    pub fn get(&self) -> Option<T> {
        self.0.read().map(|v| v.clone()).unwrap_or(None)
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        if let Ok(mut v) = self.0.write() {
            *v = Some(value);
        }
    }
}

/// The progress of the running command, when it reports any (one command runs at a time).
#[derive(Debug, Default)]
pub struct ProgressSlot(RwLock<Option<Arc<Progress>>>);

impl ProgressSlot {
    /// Starts progress reporting for the running command.
    pub fn start(&self) -> Arc<Progress> {
        let p = Arc::new(Progress::new());
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(p.clone());
        }
        p
    }

    /// Ends progress reporting.
    pub fn clear(&self) {
        if let Ok(mut slot) = self.0.write() {
            *slot = None;
        }
    }

    /// The running command's progress, if it reports any.
    pub fn get(&self) -> Option<Arc<Progress>> {
        self.0.read().map(|p| p.clone()).unwrap_or(None)
    }
}

/// What the last successful `prepare_image` produced.
#[derive(Debug, Default)]
pub struct DeployState {
    uuids: Mutex<Option<PartitionUuids>>,
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

    pub(crate) fn record(&self, uuids: PartitionUuids) {
        if let Ok(mut u) = self.uuids.lock() {
            *u = Some(uuids);
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
