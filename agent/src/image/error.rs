//! Errors of the image pipeline, each mapped to the IPA exception class Ironic expects.

use hardware_managers::{IpaClass, IpaError};

/// Everything that can go wrong while fetching, verifying and writing an image.
///
/// The `Display` text is `"<class message>: <details>"`, like a serialised IPA error; the details
/// always say what to look at (which URL, which status, how many bytes, expected vs got).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A transport failure (connection, timeout between chunks, 5xx, truncated body) that
    /// remained after IPA's retries on every URL.
    #[error("{}: {}", self.message(), self.details())]
    Download {
        /// The URL (or URLs) tried.
        url: String,
        /// What happened.
        reason: String,
        /// Bytes of the image received before giving up.
        bytes: u64,
    },
    /// Every URL was refused (4xx, not `http(s)://`, a redirect elsewhere, a certificate
    /// that does not verify): retrying cannot help.
    #[error("{}: {}", self.message(), self.details())]
    DownloadFatal {
        /// `url: status` for each URL.
        reason: String,
    },
    /// `image_download_max_duration` elapsed.
    #[error("{}: {}", self.message(), self.details())]
    Timeout {
        /// The URL being downloaded.
        url: String,
        /// The configured limit, milliseconds.
        limit_ms: u64,
        /// Bytes received when the limit hit.
        bytes: u64,
    },
    /// The downloaded bytes do not hash to the expected value.
    #[error("{}: {}", self.message(), self.details())]
    Checksum {
        /// Algorithm name (`sha256`, …).
        algo: String,
        /// Expected hex digest.
        expected: String,
        /// Computed hex digest.
        actual: String,
        /// Where the image came from.
        url: String,
    },
    /// The checksum parameters or the checksum file could not give a usable digest.
    #[error("{}: {}", self.message(), self.details())]
    ChecksumSpec(String),
    /// Writing to the target failed.
    #[error("{}: {}", self.message(), self.details())]
    Write {
        /// The target path.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The image does not fit in the target.
    #[error("{}: {}", self.message(), self.details())]
    TooLarge {
        /// Image size (or bytes it already reached), bytes.
        size: u64,
        /// Room in the target, bytes.
        capacity: u64,
        /// The target path.
        target: String,
    },
    /// The filesystem or device ran out of space (ENOSPC).
    #[error("{}: {}", self.message(), self.details())]
    OutOfSpace {
        /// The target path.
        target: String,
        /// Bytes accepted before the failure.
        written: u64,
    },
    /// The image content is not acceptable (format check of the first bytes, corrupt stream).
    #[error("{}: {}", self.message(), self.details())]
    InvalidImage(String),
    /// Bad parameters discovered while preparing the download (e.g. undecodable auth).
    #[error("{}: {}", self.message(), self.details())]
    InvalidParams(String),
    /// A bug: a pipeline thread panicked.
    #[error("{}: {}", self.message(), self.details())]
    Internal(String),
    /// The agent is shutting down (SIGTERM): the download stopped, the write failed.
    #[error("{}: {}", self.message(), self.details())]
    Stopped,
}

impl ImageError {
    /// IPA's exception class.
    pub fn class(&self) -> IpaClass {
        match self {
            ImageError::Download { .. } | ImageError::ChecksumSpec(_) => {
                IpaClass::ImageDownloadError
            }
            ImageError::DownloadFatal { .. } => IpaClass::ImageDownloadFatalError,
            ImageError::Timeout { .. } => IpaClass::ImageDownloadTimeoutError,
            ImageError::Checksum { .. } => IpaClass::ImageChecksumError,
            ImageError::Write { .. } | ImageError::TooLarge { .. } => IpaClass::ImageWriteError,
            ImageError::OutOfSpace { .. } => IpaClass::ImageDownloadOutofSpaceError,
            ImageError::InvalidImage(_) => IpaClass::InvalidImage,
            ImageError::InvalidParams(_) => IpaClass::InvalidCommandParamsError,
            ImageError::Internal(_) | ImageError::Stopped => IpaClass::CommandExecutionError,
        }
    }

    /// IPA's exception class name.
    pub fn ipa_type(&self) -> &'static str {
        self.class().name()
    }

    /// IPA's HTTP-ish status code of the class.
    pub fn code(&self) -> u16 {
        self.class().code()
    }

    /// The class message (IPA's `message`).
    pub fn message(&self) -> &'static str {
        self.class().message().unwrap_or_default()
    }

    /// The instance details (IPA's `details`).
    pub fn details(&self) -> String {
        match self {
            ImageError::Download { url, reason, bytes } => {
                format!("download of {url} failed after {bytes} bytes: {reason}")
            }
            ImageError::DownloadFatal { reason } => {
                format!("every image URL was refused: {reason}")
            }
            ImageError::Timeout {
                url,
                limit_ms,
                bytes,
            } => format!(
                "download of {url} exceeded image_download_max_duration ({} s) \
                 after {bytes} bytes",
                *limit_ms as f64 / 1000.0
            ),
            ImageError::Checksum {
                algo,
                expected,
                actual,
                url,
            } => format!(
                "image from {url} failed to verify: expected {algo} {expected}, got {actual}"
            ),
            ImageError::ChecksumSpec(s)
            | ImageError::InvalidImage(s)
            | ImageError::InvalidParams(s)
            | ImageError::Internal(s) => s.clone(),
            ImageError::Write { target, reason } => format!("writing to {target}: {reason}"),
            ImageError::TooLarge {
                size,
                capacity,
                target,
            } => format!("image larger than target: {size} > {capacity} ({target})"),
            ImageError::OutOfSpace { target, written } => {
                format!("no space left on {target} after {written} bytes")
            }
            ImageError::Stopped => "the agent is shutting down; the image download was \
                                    stopped and the write abandoned"
                .into(),
        }
    }

    /// The IPA error this is.
    pub fn to_ipa_error(&self) -> IpaError {
        IpaError::new(self.class(), self.details())
    }

    /// Wraps this error into an `io::Error` so it can cross a `Read` boundary intact.
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// Recovers an error wrapped by [`ImageError::into_io`], or builds one with `fallback`.
    pub(crate) fn from_io(
        e: std::io::Error,
        fallback: impl FnOnce(std::io::Error) -> Self,
    ) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
            if let Some(inner) = e.into_inner()
                && let Ok(img) = inner.downcast::<ImageError>()
            {
                return *img;
            }
            return ImageError::Internal("lost an error crossing a reader".into());
        }
        fallback(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_codes_and_text() {
        let e = ImageError::Timeout {
            url: "http://x/img".into(),
            limit_ms: 5000,
            bytes: 10,
        };
        assert_eq!(e.ipa_type(), "ImageDownloadTimeoutError");
        assert_eq!(e.code(), 408);
        let c = ImageError::Checksum {
            algo: "sha256".into(),
            expected: "aa".into(),
            actual: "bb".into(),
            url: "http://x/img".into(),
        };
        assert_eq!(c.ipa_type(), "ImageChecksumError");
        assert!(
            c.to_string()
                .starts_with("Error verifying image checksum: ")
        );
        assert!(c.details().contains("expected sha256 aa, got bb"));
        let ce = crate::commands::CommandError::from(c.to_ipa_error());
        assert_eq!(ce.kind, "ImageChecksumError");
        assert_eq!(ce.code, 500);
        assert_eq!(ce.message, "Error verifying image checksum");
        let t = ImageError::TooLarge {
            size: 3,
            capacity: 2,
            target: "/dev/x".into(),
        };
        assert!(t.to_string().contains("image larger than target: 3 > 2"));
        assert_eq!(ImageError::Stopped.ipa_type(), "CommandExecutionError");
    }

    #[test]
    fn survives_io_round_trip() {
        let e = ImageError::DownloadFatal {
            reason: "http://x: HTTP 404".into(),
        };
        let io = e.clone().into_io();
        let back = ImageError::from_io(io, |_| ImageError::Internal("no".into()));
        assert_eq!(back, e);
        let plain = std::io::Error::other("boom");
        let mapped = ImageError::from_io(plain, |e| ImageError::Internal(e.to_string()));
        assert_eq!(mapped, ImageError::Internal("boom".into()));
    }
}
