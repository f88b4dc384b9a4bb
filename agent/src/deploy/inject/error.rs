//! The errors of the step's parts. The step's edge ([`super::inject_files`]) turns them into
//! IPA error classes (`InvalidArgs`, `CommandExecutionError`, `DeploymentError`) with the same
//! texts.

use std::io;

/// What went wrong in validation, templating, downloading, mounting or in the image.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// A field of an item is invalid (reported, with the others, as `InvalidArgs`).
    #[error("{0}")]
    Invalid(String),
    /// A content URL template cannot be formatted into an http(s) URL.
    #[error("{0}")]
    Template(String),
    /// A path in the image cannot be used: not a regular file, a link loop, a NUL byte, ...
    #[error("{0}")]
    Path(String),
    /// A system call on the image failed while doing `context`.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (`opening /etc/x`).
        context: String,
        /// The error of the system call.
        #[source]
        source: io::Error,
    },
    /// Mounting a filesystem failed.
    #[error("{0}")]
    Mount(String),
}

impl InjectError {
    /// For `map_err`: an [`InjectError::Io`] while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> InjectError {
        let context = context.into();
        move |source| InjectError::Io { context, source }
    }
}
