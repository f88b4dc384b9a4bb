//! Labelled media the agent reads its configuration from: virtual media (`ir-vfd-dev`), the
//! virtual-media ISO or a config drive (`config-2`, `vmedia_boot_iso`).
//!
//! [`label`] reads a filesystem label from a device's first bytes (no mounting), [`find`]
//! scans sysfs for devices by label and applies IPA's "is this virtual media" test, [`mount`]
//! mounts one read-only for as long as a guard lives. This module sits below `config` and
//! depends on nothing of the agent's.

pub mod find;
pub mod label;
pub mod mount;

use std::path::PathBuf;

pub use find::{
    BlockRoots, find_by_labels, find_vmedia_by_labels, is_vmedia, virtual_media_model_device,
};
pub use label::{FsKind, Label, read_label};
pub use mount::ReadOnlyMount;

/// Errors of the media functions.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A device or file could not be read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No filesystem the agent can mount was recognised on the device.
    #[error("{0}: no iso9660, vfat or ext2/3/4 filesystem found")]
    UnknownFilesystem(PathBuf),
    /// `mount(2)` failed for every filesystem type tried.
    #[error("mounting {device} read-only failed: {message}")]
    Mount {
        /// The device.
        device: PathBuf,
        /// The errors, one per type tried.
        message: String,
    },
}

impl MediaError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| MediaError::Io { what, path, source }
    }
}

/// Where the media functions report what they decided (IPA's `_early_log` lines): the agent
/// collects them before its logger exists and logs them once it does.
pub trait Notes {
    /// One line at `level`.
    fn note(&mut self, level: tracing::Level, message: String);
}

/// [`Notes`] logged at once through `tracing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingNotes;

impl Notes for TracingNotes {
    fn note(&mut self, level: tracing::Level, message: String) {
        match level {
            tracing::Level::ERROR => tracing::error!("{message}"),
            tracing::Level::WARN => tracing::warn!("{message}"),
            tracing::Level::INFO => tracing::info!("{message}"),
            tracing::Level::DEBUG => tracing::debug!("{message}"),
            tracing::Level::TRACE => tracing::trace!("{message}"),
        }
    }
}

impl Notes for Vec<(tracing::Level, String)> {
    fn note(&mut self, level: tracing::Level, message: String) {
        self.push((level, message));
    }
}
