//! IPA's error vocabulary: every `RESTError` class of ironic-python-agent 13's `errors.py`,
//! with its wire name, HTTP-ish code and class message, and the error value that carries one.
//!
//! Ironic reads `command_error.type` and `code`, so these must be IPA's exactly. The class is a
//! Rust enum variant spelled like the Python class: a misspelled class does not compile. The
//! conversion to the wire shape (`{"type", "code", "message", "details"}`) is the agent's
//! `commands::CommandError::from(IpaError)`, and nowhere else.
//!
//! Two kinds of name are not IPA classes and are kept apart:
//! - [`PluginClass`]: an unknown class name an executable plug-in reported over JSON (IPA's
//!   vendor managers may define their own `RESTError` subclasses); only the plug-in protocol
//!   can make one.
//! - [`PyException`]: a non-REST Python exception (`OSError`, `ProcessExecutionError`). IPA
//!   never puts such a name into `type`: a command wraps it into `CommandExecutionError`, a
//!   step into `CleaningError`/`DeploymentError`/`ServicingError` with the name in the details.

use std::fmt;

/// What IPA's `message` is for a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// The class attribute.
    Fixed(&'static str),
    /// The instance sets `self.message = details` (`ProtectedDeviceError`, ...).
    Details,
}

macro_rules! ipa_classes {
    ($($(#[$doc:meta])* $class:ident = $code:literal, $message:expr;)*) => {
        /// An exception class of IPA's `errors.py` (13.0.0); the variant is the class name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum IpaClass {
            $($(#[$doc])* $class,)*
        }

        impl IpaClass {
            /// Every class, in `errors.py` order.
            pub const ALL: &'static [IpaClass] = &[$(IpaClass::$class,)*];

            /// The Python class name: `command_error.type` on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $(IpaClass::$class => stringify!($class),)*
                }
            }

            /// The class's `status_code`: `command_error.code` on the wire.
            pub fn code(self) -> u16 {
                match self {
                    $(IpaClass::$class => $code,)*
                }
            }

            fn message_kind(self) -> Message {
                match self {
                    $(IpaClass::$class => $message,)*
                }
            }
        }
    };
}

use Message::{Details, Fixed};

ipa_classes! {
    /// The base class, raised as such in a few places.
    RESTError = 500, Fixed("An error occurred");
    /// A request body that cannot be parsed or validated.
    InvalidContentError = 400, Fixed("Invalid request body");
    /// A non-existent API endpoint.
    NotFound = 404, Fixed("Not found");
    /// A command failed without a class of its own (any non-REST exception of a command).
    CommandExecutionError = 500, Fixed("Command execution failed");
    /// An unknown command.
    InvalidCommandError = 400, Fixed("Invalid command");
    /// Invalid command parameters.
    InvalidCommandParamsError = 400, Fixed("Invalid command parameters");
    /// An object (extension, command) that does not exist.
    RequestedObjectNotFoundError = 404, Fixed("Not found");
    /// Another command is still running.
    AgentIsBusy = 409, Fixed("Agent is busy");
    /// A container image outside the allowed list.
    ContainerNotPermittedError = 500, Fixed("Container image not permitted");
    /// A call to the Ironic API failed.
    IronicAPIError = 500, Fixed("Error in call to ironic-api");
    /// A heartbeat failed.
    HeartbeatError = 500, Fixed("Error heartbeating to agent API");
    /// A heartbeat got a conflict.
    HeartbeatConflictError = 500, Fixed("ConflictError heartbeating to agent API");
    /// The lookup failed.
    LookupNodeError = 500, Fixed("Error getting configuration from Ironic");
    /// The agent's IP could not be found.
    LookupAgentIPError = 500, Fixed("Error finding IP for Ironic Agent");
    /// The image could not be downloaded.
    ImageDownloadError = 500, Fixed("Error downloading image");
    /// `image_download_max_duration` elapsed.
    ImageDownloadTimeoutError = 408, Fixed("Image download timeout");
    /// Out of space while downloading (a subclass of `ImageDownloadError`).
    ImageDownloadOutofSpaceError = 500, Fixed("Error downloading image");
    /// A download error retrying cannot fix (a subclass of `ImageDownloadError`).
    ImageDownloadFatalError = 500, Fixed("Error downloading image");
    /// The image does not match its checksum.
    ImageChecksumError = 500, Fixed("Error verifying image checksum");
    /// The image could not be written.
    ImageWriteError = 500, Fixed("Error writing image to device");
    /// The reboot failed.
    SystemRebootError = 500, Fixed("Error rebooting system");
    /// Erasing a block device failed.
    BlockDeviceEraseError = 500, Fixed("Error erasing block device");
    /// A block device caused an unknown error.
    BlockDeviceError = 500, Fixed("Block device caused unknown error");
    /// Software RAID failed.
    SoftwareRAIDError = 500, Fixed("Software RAID caused unknown error");
    /// Configuration from virtual media failed.
    VirtualMediaBootError = 500, Fixed("Configuring agent from virtual media failed");
    /// An extension failed (no message of its own).
    ExtensionError = 500, Fixed("An error occurred");
    /// The agent is not associated with a node.
    UnknownNodeError = 500, Fixed("Agent is not associated with an Ironic node");
    /// No manager supports this machine.
    HardwareManagerNotFound = 500, Fixed("No valid HardwareManager found");
    /// No manager implements the method.
    HardwareManagerMethodNotFound = 500, Fixed("No HardwareManager found to handle method");
    /// A manager is misconfigured.
    HardwareManagerConfigurationError = 500, Fixed("Hardware manager configuration error");
    /// "Not mine": the chain moves on to the next manager.
    IncompatibleHardwareMethodError = 500,
        Fixed("HardwareManager method is not compatible with hardware");
    /// The hardware managers changed since Ironic cached their versions.
    VersionMismatch = 409,
        Fixed("Hardware managers version mismatch, reload agent with correct version");
    /// A clean step failed.
    CleaningError = 500, Fixed("Clean step failed");
    /// A deploy step failed.
    DeploymentError = 500, Fixed("Deploy step failed");
    /// A service step failed.
    ServicingError = 500, Fixed("Service step failed");
    /// Unexpected NUMA node data.
    IncompatibleNumaFormatError = 500, Fixed("Error in NUMA node data format");
    /// No device to deploy onto.
    DeviceNotFound = 404,
        Fixed("Error finding the disk or partition device to deploy the image onto");
    /// Syncing the clock failed.
    ClockSyncError = 500, Fixed("Error syncing system clock");
    /// A transitory failure contacting the API.
    HeartbeatConnectionError = 500, Fixed("Error attempting to heartbeat - Possible transitory \
        network failure or blocking port may be present.");
    /// A protected device stopped the step; IPA's message is the details.
    ProtectedDeviceError = 500, Details;
    /// The image is not valid for use.
    InvalidImage = 500, Fixed("The provided image is not valid for use");
    /// A file system that cannot be created; IPA's message is the details.
    FileSystemNotSupported = 500, Details;
    /// An invalid metrics option.
    InvalidMetricConfig = 500, Fixed("Invalid value for metrics config option.");
    /// Metrics are not supported.
    MetricsNotSupported = 500, Fixed("Metrics action is not supported. You may need to adjust \
        the [metrics] section in ironic.conf.");
    /// An mDNS lookup failed; IPA's message is the details.
    ServiceLookupFailure = 500, Details;
}

impl IpaClass {
    /// The class for an IPA class name, if `errors.py` defines it.
    pub fn from_name(name: &str) -> Option<IpaClass> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// IPA's default `details` when an instance gives none.
    fn default_details(self) -> &'static str {
        if self.code() == 404 {
            "The requested URL was not found."
        } else {
            "An unexpected error occurred. Please try back later."
        }
    }

    /// The class `message` (for the classes whose message is the details, IPA's class
    /// attribute is not what it serialises: see [`IpaError::message`]).
    pub fn message(self) -> Option<&'static str> {
        match self.message_kind() {
            Fixed(m) => Some(m),
            Details => None,
        }
    }
}

impl fmt::Display for IpaClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A class name an executable plug-in reported that `errors.py` does not define (a vendor's
/// own `RESTError` subclass). Only the plug-in protocol constructs one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginClass(String);

impl PluginClass {
    /// Only for names [`IpaClass::from_name`] does not know.
    pub(crate) fn new(name: String) -> Self {
        PluginClass(name)
    }

    /// The name as the plug-in gave it.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The class of an [`IpaError`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// One of IPA's classes.
    Ipa(IpaClass),
    /// A plug-in's own class: code 500 and `RESTError`'s message, as a vendor subclass without
    /// attributes of its own would have.
    Plugin(PluginClass),
}

impl ErrorClass {
    /// The wire name.
    pub fn name(&self) -> &str {
        match self {
            ErrorClass::Ipa(c) => c.name(),
            ErrorClass::Plugin(p) => p.name(),
        }
    }

    fn ipa(&self) -> IpaClass {
        match self {
            ErrorClass::Ipa(c) => *c,
            ErrorClass::Plugin(_) => IpaClass::RESTError,
        }
    }
}

/// An IPA error instance: a class and the instance details.
///
/// `Display` is IPA's `str(e)`: `"<message>: <details>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.message(), self.details())]
pub struct IpaError {
    class: ErrorClass,
    details: String,
}

impl IpaError {
    /// An error of IPA class `class` with the instance `details`.
    pub fn new(class: IpaClass, details: impl Into<String>) -> Self {
        IpaError {
            class: ErrorClass::Ipa(class),
            details: details.into(),
        }
    }

    /// An error a plug-in reported with class name `name`: IPA's class when `errors.py` has
    /// it, else the plug-in's own name.
    pub(crate) fn from_name(name: String, details: impl Into<String>) -> Self {
        let class = match IpaClass::from_name(&name) {
            Some(c) => ErrorClass::Ipa(c),
            None => ErrorClass::Plugin(PluginClass::new(name)),
        };
        IpaError {
            class,
            details: details.into(),
        }
    }

    /// The class.
    pub fn class(&self) -> &ErrorClass {
        &self.class
    }

    /// The IPA class, `None` for a plug-in's own.
    pub fn ipa_class(&self) -> Option<IpaClass> {
        match self.class {
            ErrorClass::Ipa(c) => Some(c),
            ErrorClass::Plugin(_) => None,
        }
    }

    /// Whether this is an error of class `class`.
    pub fn is(&self, class: IpaClass) -> bool {
        self.class == ErrorClass::Ipa(class)
    }

    /// The wire `type`.
    pub fn name(&self) -> &str {
        self.class.name()
    }

    /// The wire `code`.
    pub fn code(&self) -> u16 {
        self.class.ipa().code()
    }

    /// The wire `message`: the class message, or the details for the classes whose instances
    /// carry their own (`ProtectedDeviceError`, ...).
    pub fn message(&self) -> &str {
        match self.class.ipa().message() {
            Some(m) => m,
            None => self.details(),
        }
    }

    /// The wire `details` (IPA's class default when empty).
    pub fn details(&self) -> &str {
        if self.details.is_empty() {
            self.class.ipa().default_details()
        } else {
            &self.details
        }
    }
}

/// A non-REST Python exception IPA may meet inside a command or step. Its name only ever appears
/// inside the details of the REST error wrapping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::enum_variant_names)]
pub enum PyException {
    /// A system call failed.
    OSError,
    /// An external program failed (`oslo_concurrency.processutils`).
    ProcessExecutionError,
}

impl PyException {
    /// The Python class name.
    pub fn name(self) -> &'static str {
        match self {
            PyException::OSError => "OSError",
            PyException::ProcessExecutionError => "ProcessExecutionError",
        }
    }
}

impl fmt::Display for PyException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(class, code, message)` as IPA 13.0.0's `errors.py` defines them (`None`: the
    /// instance's message is its details).
    const IPA_13: &[(&str, u16, Option<&str>)] = &[
        ("RESTError", 500, Some("An error occurred")),
        ("InvalidContentError", 400, Some("Invalid request body")),
        ("NotFound", 404, Some("Not found")),
        (
            "CommandExecutionError",
            500,
            Some("Command execution failed"),
        ),
        ("InvalidCommandError", 400, Some("Invalid command")),
        (
            "InvalidCommandParamsError",
            400,
            Some("Invalid command parameters"),
        ),
        ("RequestedObjectNotFoundError", 404, Some("Not found")),
        ("AgentIsBusy", 409, Some("Agent is busy")),
        (
            "ContainerNotPermittedError",
            500,
            Some("Container image not permitted"),
        ),
        ("IronicAPIError", 500, Some("Error in call to ironic-api")),
        (
            "HeartbeatError",
            500,
            Some("Error heartbeating to agent API"),
        ),
        (
            "HeartbeatConflictError",
            500,
            Some("ConflictError heartbeating to agent API"),
        ),
        (
            "LookupNodeError",
            500,
            Some("Error getting configuration from Ironic"),
        ),
        (
            "LookupAgentIPError",
            500,
            Some("Error finding IP for Ironic Agent"),
        ),
        ("ImageDownloadError", 500, Some("Error downloading image")),
        (
            "ImageDownloadTimeoutError",
            408,
            Some("Image download timeout"),
        ),
        (
            "ImageDownloadOutofSpaceError",
            500,
            Some("Error downloading image"),
        ),
        (
            "ImageDownloadFatalError",
            500,
            Some("Error downloading image"),
        ),
        (
            "ImageChecksumError",
            500,
            Some("Error verifying image checksum"),
        ),
        (
            "ImageWriteError",
            500,
            Some("Error writing image to device"),
        ),
        ("SystemRebootError", 500, Some("Error rebooting system")),
        (
            "BlockDeviceEraseError",
            500,
            Some("Error erasing block device"),
        ),
        (
            "BlockDeviceError",
            500,
            Some("Block device caused unknown error"),
        ),
        (
            "SoftwareRAIDError",
            500,
            Some("Software RAID caused unknown error"),
        ),
        (
            "VirtualMediaBootError",
            500,
            Some("Configuring agent from virtual media failed"),
        ),
        ("ExtensionError", 500, Some("An error occurred")),
        (
            "UnknownNodeError",
            500,
            Some("Agent is not associated with an Ironic node"),
        ),
        (
            "HardwareManagerNotFound",
            500,
            Some("No valid HardwareManager found"),
        ),
        (
            "HardwareManagerMethodNotFound",
            500,
            Some("No HardwareManager found to handle method"),
        ),
        (
            "HardwareManagerConfigurationError",
            500,
            Some("Hardware manager configuration error"),
        ),
        (
            "IncompatibleHardwareMethodError",
            500,
            Some("HardwareManager method is not compatible with hardware"),
        ),
        (
            "VersionMismatch",
            409,
            Some("Hardware managers version mismatch, reload agent with correct version"),
        ),
        ("CleaningError", 500, Some("Clean step failed")),
        ("DeploymentError", 500, Some("Deploy step failed")),
        ("ServicingError", 500, Some("Service step failed")),
        (
            "IncompatibleNumaFormatError",
            500,
            Some("Error in NUMA node data format"),
        ),
        (
            "DeviceNotFound",
            404,
            Some("Error finding the disk or partition device to deploy the image onto"),
        ),
        ("ClockSyncError", 500, Some("Error syncing system clock")),
        (
            "HeartbeatConnectionError",
            500,
            Some(
                "Error attempting to heartbeat - Possible transitory network failure or \
                 blocking port may be present.",
            ),
        ),
        ("ProtectedDeviceError", 500, None),
        (
            "InvalidImage",
            500,
            Some("The provided image is not valid for use"),
        ),
        ("FileSystemNotSupported", 500, None),
        (
            "InvalidMetricConfig",
            500,
            Some("Invalid value for metrics config option."),
        ),
        (
            "MetricsNotSupported",
            500,
            Some(
                "Metrics action is not supported. You may need to adjust the [metrics] \
                 section in ironic.conf.",
            ),
        ),
        ("ServiceLookupFailure", 500, None),
    ];

    #[test]
    fn every_class_has_ipas_name_code_and_message() {
        assert_eq!(IpaClass::ALL.len(), IPA_13.len());
        for (class, (name, code, message)) in IpaClass::ALL.iter().zip(IPA_13) {
            assert_eq!(class.name(), *name);
            assert_eq!(class.code(), *code, "{name}");
            assert_eq!(class.message(), *message, "{name}");
            assert_eq!(IpaClass::from_name(name), Some(*class));
            assert_eq!(class.to_string(), *name);
        }
        assert_eq!(IpaClass::from_name("ImageDownloadTimeoutErr"), None);
    }

    #[test]
    fn instances_serialise_like_ipa() {
        let e = IpaError::new(IpaClass::ImageDownloadTimeoutError, "took too long");
        assert_eq!(
            (e.name(), e.code(), e.message(), e.details()),
            (
                "ImageDownloadTimeoutError",
                408,
                "Image download timeout",
                "took too long"
            )
        );
        assert_eq!(e.to_string(), "Image download timeout: took too long");
        assert!(e.is(IpaClass::ImageDownloadTimeoutError));

        let p = IpaError::new(IpaClass::ProtectedDeviceError, "Protected raid located");
        assert_eq!(p.message(), "Protected raid located");
        let u = IpaError::new(IpaClass::UnknownNodeError, "");
        assert_eq!(
            u.details(),
            "An unexpected error occurred. Please try back later."
        );
        let n = IpaError::new(IpaClass::NotFound, "");
        assert_eq!(n.details(), "The requested URL was not found.");
    }

    #[test]
    fn plugin_names_keep_known_classes_typed() {
        let known = IpaError::from_name("BlockDeviceEraseError".into(), "x");
        assert_eq!(known.ipa_class(), Some(IpaClass::BlockDeviceEraseError));
        assert_eq!(known.message(), "Error erasing block device");
        let own = IpaError::from_name("VendorFirmwareError".into(), "y");
        assert_eq!(own.ipa_class(), None);
        assert_eq!(
            (own.name(), own.code(), own.message()),
            ("VendorFirmwareError", 500, "An error occurred")
        );
    }
}
