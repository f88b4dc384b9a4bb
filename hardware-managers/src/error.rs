//! Errors of the hardware layer, with IPA's exception class names for the wire.

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
    /// A manager reported a failure of its own; `kind` is the error class name it gave.
    #[error("{message}")]
    Failed {
        /// The error class name (IPA's exception class), e.g. `BlockDeviceEraseError`.
        kind: String,
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

    /// IPA's exception class name, used as `command_error.type` on the wire.
    pub fn ipa_type(&self) -> &str {
        match self {
            HardwareError::Incompatible(_) => "IncompatibleHardwareMethodError",
            HardwareError::MethodNotFound(_) => "HardwareManagerMethodNotFound",
            HardwareError::Configuration(_) => "HardwareManagerConfigurationError",
            HardwareError::DeviceNotFound(_) => "DeviceNotFound",
            HardwareError::NoManager => "HardwareManagerNotFound",
            HardwareError::InvalidArgs(_) => "InvalidCommandParamsError",
            HardwareError::Plugin { .. } => "HardwareManagerError",
            HardwareError::Failed { kind, .. } => kind,
            HardwareError::Io { .. } => "OSError",
        }
    }

    /// The HTTP-ish status code IPA attaches to the error class.
    pub fn code(&self) -> u16 {
        match self {
            HardwareError::InvalidArgs(_) => 400,
            HardwareError::MethodNotFound(_) | HardwareError::DeviceNotFound(_) => 404,
            _ => 500,
        }
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
        assert_eq!(e.code(), 404);
        let e = HardwareError::Failed {
            kind: "BlockDeviceEraseError".into(),
            message: "x".into(),
        };
        assert_eq!(e.ipa_type(), "BlockDeviceEraseError");
        assert!(!e.is_incompatible());
    }
}
