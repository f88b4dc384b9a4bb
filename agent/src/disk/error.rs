//! The error type shared by the disk modules.

use std::io;
use std::path::{Path, PathBuf};

use crate::tools::ToolError;

/// What went wrong while inspecting or changing a disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// An I/O call on a device or file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`"opening"`, `"writing"`, …).
        action: &'static str,
        /// The device or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An external tool is missing, could not be started, timed out or exited with an error.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A partition table is malformed, or cannot hold the requested change.
    #[error("partition table of {}: {message}", path.display())]
    Table {
        /// The disk.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The requested partition layout is impossible (sizes, count, room on the disk).
    #[error("invalid partition layout: {0}")]
    Layout(String),
    /// Partition device nodes did not appear after the table was re-read.
    #[error("partitions of {} did not appear as block devices: {missing}", disk.display())]
    PartitionsMissing {
        /// The disk.
        disk: PathBuf,
        /// The missing nodes, comma-separated.
        missing: String,
    },
    /// The image is larger than the root partition (an invalid-parameters error for Ironic).
    #[error("image of {image_mib} MiB does not fit in the root partition of {root_mib} MiB")]
    RootTooSmall {
        /// The image's virtual size, MiB rounded up.
        image_mib: u64,
        /// `root_mb`.
        root_mib: u64,
    },
    /// The config drive value is not valid (not base64, not gzip, not an image).
    #[error("invalid config drive: {0}")]
    ConfigDriveInvalid(String),
    /// The config drive could not be downloaded.
    #[error("downloading the config drive from {url}: {message}")]
    ConfigDriveDownload {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The config drive is larger than allowed.
    #[error("config drive of {size} bytes exceeds the maximum of {max} bytes")]
    ConfigDriveTooLarge {
        /// Its size (or the size reached when reading stopped).
        size: u64,
        /// The limit.
        max: u64,
    },
}

impl DiskError {
    /// True when the caller's parameters are at fault (Ironic's `InvalidCommandParamsError`,
    /// HTTP 400) rather than the machine.
    pub fn is_invalid_params(&self) -> bool {
        matches!(
            self,
            DiskError::RootTooSmall { .. } | DiskError::ConfigDriveInvalid(_)
        )
    }

    /// Builds an `Io` error mapper for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DiskError {
        let path = path.to_path_buf();
        move |source| DiskError::Io {
            action,
            path,
            source,
        }
    }

    /// A `Table` error for `path`.
    pub(crate) fn table(path: &Path, message: impl Into<String>) -> DiskError {
        DiskError::Table {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
