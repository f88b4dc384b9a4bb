//! Errors of the hardware layer, each with its IPA class (see [`crate::ipa_error`]).

use crate::ipa_error::{IpaClass, IpaError, PyException};

/// Result alias for hardware-manager calls.
pub type HardwareResult<T> = Result<T, HardwareError>;

/// An error raised by a hardware manager or by the dispatch chain.
#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    /// This manager does not handle the method on this hardware; the chain moves on.
    #[error("{0}")]
    Incompatible(String),
    /// No manager in the chain handled the method.
    #[error("Could not find method: {0}")]
    MethodNotFound(String),
    /// A manager is misconfigured; dispatch stops here rather than falling through.
    #[error("Hardware manager configuration error: {0}")]
    Configuration(String),
    /// No device matched (e.g. no install disk).
    #[error("Error finding the disk or partition device to deploy the image onto: {0}")]
    DeviceNotFound(String),
    /// The chain ended up empty: no manager supports this machine.
    #[error("No valid HardwareManager found")]
    NoManager,
    /// Step arguments or manager input were invalid (a 400-class error).
    #[error("{0}")]
    InvalidArgs(String),
    /// An executable plug-in manager misbehaved (could not run, timed out, bad JSON).
    #[error("hardware manager {manager}: {message}")]
    Plugin {
        /// The plug-in's name.
        manager: String,
        /// What went wrong, with the tool's stderr where there is one.
        message: String,
    },
    /// A manager raised one of IPA's error classes (`BlockDeviceEraseError`,
    /// `ImageDownloadTimeoutError`, ...) or a plug-in's own: class, code and message reach the
    /// wire unchanged, also from a step (IPA re-raises `RESTError`s).
    /// Displays the details only (the text a manager gave).
    #[error("{}", .0.details())]
    Ipa(IpaError),
    /// A failure IPA would meet as a non-REST Python exception (a program that failed):
    /// `CommandExecutionError` from a command, `CleaningError`/... from a step.
    #[error("{message}")]
    Unexpected {
        /// The Python exception IPA would have raised.
        exception: PyException,
        /// Human-readable text.
        message: String,
    },
    /// Reading the system failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl HardwareError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HardwareError::Io {
            context: context.into(),
            source,
        }
    }

    /// The "not mine" error a manager returns for a method it does not support.
    pub fn incompatible(method: &str) -> Self {
        HardwareError::Incompatible(format!(
            "This HardwareManager does not support the method {method}"
        ))
    }

    /// Whether the chain should move on to the next manager.
    pub fn is_incompatible(&self) -> bool {
        matches!(self, HardwareError::Incompatible(_))
    }

    /// An [`HardwareError::Ipa`] of class `class` with `details`.
    pub fn ipa(class: IpaClass, details: impl Into<String>) -> Self {
        HardwareError::Ipa(IpaError::new(class, details))
    }

    /// The IPA error this is when raised from a command (not a step): its own class for the
    /// variants IPA has a `RESTError` for, `CommandExecutionError(str(e))` for the others (as
    /// IPA's `AsyncCommandResult.run` and `ExecuteCommandMixin` do).
    pub fn to_ipa_error(&self) -> IpaError {
        let class = match self {
            HardwareError::Ipa(e) => return e.clone(),
            HardwareError::Incompatible(_) => IpaClass::IncompatibleHardwareMethodError,
            HardwareError::MethodNotFound(_) => IpaClass::HardwareManagerMethodNotFound,
            HardwareError::Configuration(_) => IpaClass::HardwareManagerConfigurationError,
            HardwareError::DeviceNotFound(_) => IpaClass::DeviceNotFound,
            HardwareError::NoManager => IpaClass::HardwareManagerNotFound,
            HardwareError::InvalidArgs(_) => IpaClass::InvalidCommandParamsError,
            HardwareError::Plugin { .. }
            | HardwareError::Unexpected { .. }
            | HardwareError::Io { .. } => IpaClass::CommandExecutionError,
        };
        // IPA's details: the instance text without the class message in front.
        let details = match self {
            HardwareError::NoManager => String::new(),
            HardwareError::Incompatible(d)
            | HardwareError::Configuration(d)
            | HardwareError::DeviceNotFound(d)
            | HardwareError::InvalidArgs(d) => d.clone(),
            other => other.to_string(),
        };
        IpaError::new(class, details)
    }

    /// The Python exception IPA would raise for a failure that is not a `RESTError`; `None`
    /// when IPA has a REST class for it.
    pub fn py_exception(&self) -> Option<PyException> {
        match self {
            HardwareError::Unexpected { exception, .. } => Some(*exception),
            HardwareError::Io { .. } => Some(PyException::OSError),
            HardwareError::Plugin { .. } => Some(PyException::ProcessExecutionError),
            _ => None,
        }
    }

    /// The IPA class of [`HardwareError::to_ipa_error`], `None` for a plug-in's own class.
    pub fn ipa_class(&self) -> Option<IpaClass> {
        self.to_ipa_error().ipa_class()
    }

    /// Whether this is an error of IPA class `class` (as a command would report it).
    pub fn is(&self, class: IpaClass) -> bool {
        self.ipa_class() == Some(class)
    }

    /// The wire `type` of [`HardwareError::to_ipa_error`].
    pub fn ipa_type(&self) -> &str {
        match self {
            HardwareError::Ipa(e) => e.name(),
            other => other.ipa_class().map_or("", IpaClass::name),
        }
    }

    /// The wire `code` of [`HardwareError::to_ipa_error`].
    pub fn code(&self) -> u16 {
        self.to_ipa_error().code()
    }
}

impl From<IpaError> for HardwareError {
    fn from(e: IpaError) -> Self {
        HardwareError::Ipa(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_and_codes() {
        let e = HardwareError::incompatible("get_cpus");
        assert!(e.is_incompatible());
        assert_eq!(e.ipa_type(), "IncompatibleHardwareMethodError");
        let e = HardwareError::MethodNotFound("erase_devices".into());
        assert_eq!(e.to_string(), "Could not find method: erase_devices");
        // IPA's HardwareManagerMethodNotFound is a plain RESTError: 500.
        assert_eq!(e.code(), 500);
        let e = HardwareError::ipa(IpaClass::BlockDeviceEraseError, "x");
        assert_eq!(e.ipa_type(), "BlockDeviceEraseError");
        assert!(!e.is_incompatible());
        let d = HardwareError::DeviceNotFound("no disk".into());
        assert_eq!((d.ipa_type(), d.code()), ("DeviceNotFound", 404));
        let n = HardwareError::NoManager.to_ipa_error();
        assert_eq!(
            (n.name(), n.message()),
            ("HardwareManagerNotFound", "No valid HardwareManager found")
        );
        let io = HardwareError::io("reading /sys", std::io::Error::other("gone"));
        assert_eq!(io.py_exception(), Some(PyException::OSError));
        let ce = io.to_ipa_error();
        assert_eq!(
            (ce.name(), ce.details()),
            ("CommandExecutionError", "reading /sys: gone")
        );
    }
}
