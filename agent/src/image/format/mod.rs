//! Detecting an image's real format from its bytes, and Ironic's rules on which formats may be
//! written.
//!
//! `disk_format` in `image_info` is a claim, not a fact: an image is inspected before anything
//! interprets it. Each format has its own small parser that recognises the format
//! by its magic, reads the virtual size, and refuses the features that would make `qemu-img`
//! open other files or otherwise misbehave:
//!
//! | name | recognised by | refused when |
//! |---|---|---|
//! | `qcow2` | `QFI\xfb` + version 2/3 | backing file, external data file, unknown incompatible features, corrupt bit, encryption, version 1 |
//! | `vmdk` | `KDMV` sparse header + embedded descriptor; text descriptor | createType other than monolithicSparse/streamOptimized, extents in other files, parent hint, `COWD` |
//! | `vhd` | `conectix` footer at 0 (dynamic) or at the end (fixed) | differencing disks, parent locators |
//! | `vhdx` | `vhdxfile` | parent locator / has-parent flag |
//! | `vdi` | signature `0xbeda107f` at 0x40 | differencing / undo images |
//! | `iso` | `CD001` primary volume descriptor at 32 KiB | — |
//! | `luks` | `LUKS\xba\xbe` | — (whether it is permitted is the caller's rule) |
//! | `gpt` | protective MBR (`0xEE`) + `EFI PART` at LBA 1 (512 or 4096-byte sectors) | — |
//! | `raw` | anything else | — |
//!
//! Two formats matching the same bytes (for example a qcow2 header with an ISO volume
//! descriptor behind it) is refused, as oslo's inspector does; the one exception is an ISO
//! that also carries a GPT or MBR (isohybrid), which is an `iso`.
//!
//! # Where the bytes come from
//!
//! [`inspect`] works on the head of the image (at least [`MIN_HEAD_BYTES`]; [`HEAD_BYTES`] is
//! enough for every layout `qemu-img` and Hyper-V produce). It cannot see structures at the
//! end of the file: a *fixed* VHD (its only footer is the last 512 bytes) looks `raw` from its
//! head. [`inspect_region`] reads any byte it needs from a file or from the spool region of a
//! disk, and [`inspect_file`] wraps it for a path: prefer them once the image is spooled.

mod gpt;
mod iso;
mod luks;
mod qcow2;
mod source;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::Path;

use source::{ByteSource, HeadSource, Reader, RegionSource};

/// The smallest head [`inspect`] accepts (unless the image is smaller): every magic number and
/// every fixed header of the recognised formats lies within it.
pub const MIN_HEAD_BYTES: usize = 1 << 20;

/// A head of this size lets [`inspect`] parse every structure of the layouts `qemu-img` and
/// Hyper-V produce (the VHDX metadata region sits at 2–3 MiB); with less, a VHDX may yield
/// [`FormatError::Incomplete`].
pub const HEAD_BYTES: usize = 4 << 20;

/// Formats Ironic knows by name (the values `disk_format` and `permitted_image_formats` use).
pub const KNOWN_FORMATS: &[&str] = &[
    "raw", "gpt", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "luks",
];

/// What an image really is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedFormat {
    /// Ironic's name of the format: one of [`KNOWN_FORMATS`].
    pub name: &'static str,
    /// Size of the disk the image describes, in bytes, when the format (or the known total
    /// size of a raw image) tells it.
    pub virtual_size: Option<u64>,
}

impl DetectedFormat {
    /// True when the bytes are the disk itself (`raw`, `gpt`, `iso`): they can be streamed
    /// to the disk as they are, no `qemu-img` needed.
    pub fn is_raw_bytes(&self) -> bool {
        matches!(self.name, "raw" | "gpt" | "iso")
    }

    /// The `qemu-img` driver that reads this format (`vhd` is `vpc`), or `None` for formats
    /// the agent does not convert (`luks` needs a key).
    pub fn qemu_driver(&self) -> Option<&'static str> {
        qemu_driver_for(self.name)
    }
}

/// The `qemu-img` driver for an Ironic format name (or a qemu driver name).
pub fn qemu_driver_for(name: &str) -> Option<&'static str> {
    Some(match name {
        "raw" | "gpt" | "iso" => "raw",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vhd" | "vpc" => "vpc",
        "vhdx" => "vhdx",
        "vdi" => "vdi",
        _ => return None,
    })
}

/// Why an image was refused or could not be inspected. Every variant except [`FormatError::Io`]
/// is IPA's `InvalidImage`.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading the image failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The header of a recognised format is inconsistent or truncated.
    #[error("{format} image is invalid: {reason}")]
    Invalid {
        /// The format whose header is broken.
        format: &'static str,
        /// What is wrong, for a person.
        reason: String,
    },
    /// A structure the format needs lies beyond the head handed to [`inspect`] (callers
    /// holding the whole image use [`inspect_region`]).
    #[error("{}", incomplete_message(format, *needed))]
    Incomplete {
        /// The format being parsed (`image` before any format matched).
        format: &'static str,
        /// How many bytes from the start would do, when known.
        needed: Option<u64>,
    },
    /// The image uses a feature that makes it unsafe to write (it would make `qemu-img` read
    /// other files, or cannot be converted faithfully).
    #[error("{format} image {reason}: refused")]
    Unsafe {
        /// The detected format.
        format: &'static str,
        /// The feature, phrased to follow "<format> image", e.g. "has a backing file (base)".
        reason: String,
    },
    /// The bytes match several formats (a header hidden behind another).
    #[error("image matches more than one format ({0}): refused")]
    Ambiguous(String),
    /// The detected format is not in `permitted_image_formats`.
    #[error("image format {detected} is not permitted (permitted_image_formats: {permitted})")]
    NotPermitted {
        /// The detected format.
        detected: &'static str,
        /// The permitted list, comma-separated.
        permitted: String,
    },
    /// `disk_format` names a different format than the bytes hold.
    #[error("image claims {declared} but its bytes are {detected}")]
    Mismatch {
        /// The declared `disk_format`.
        declared: String,
        /// The detected format.
        detected: &'static str,
    },
}

/// The text of [`FormatError::Incomplete`], for the operator: what could not be checked.
fn incomplete_message(format: &str, needed: Option<u64>) -> String {
    let subject = if format == "image" {
        "the image".to_string()
    } else {
        format!("{format} image")
    };
    match needed {
        Some(n) => format!(
            "{subject} could not be checked before writing (the check needs its first {n} bytes)"
        ),
        None => format!("{subject} could not be checked before writing (its size is unknown)"),
    }
}

/// Detects the format of an image from its first bytes.
///
/// `head` must hold at least [`MIN_HEAD_BYTES`] (or the whole image when it is smaller);
/// `total_len` is the image's size when known (raw images take it as their virtual size).
/// See the module docs for what a head cannot show (fixed VHD footers).
pub fn inspect(head: &[u8], total_len: Option<u64>) -> Result<DetectedFormat, FormatError> {
    let want = total_len.map_or(MIN_HEAD_BYTES as u64, |t| t.min(MIN_HEAD_BYTES as u64));
    if (head.len() as u64) < want {
        return Err(FormatError::Incomplete {
            format: "image",
            needed: Some(want),
        });
    }
    let src = HeadSource {
        head,
        total: total_len,
    };
    inspect_source(&src)
}

/// Detects the format of the `len`-byte image stored at byte `offset` of `file` (a regular file
/// or the spool region of a block device), reading whatever structures it needs.
pub fn inspect_region(file: &File, offset: u64, len: u64) -> Result<DetectedFormat, FormatError> {
    let src = RegionSource {
        file,
        base: offset,
        len,
    };
    inspect_source(&src)
}

/// Detects the format of the image file at `path`.
pub fn inspect_file(path: &Path) -> Result<DetectedFormat, FormatError> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| FormatError::Io { what, source }
    };
    let file = File::open(path).map_err(io("opening"))?;
    let len = file.metadata().map_err(io("reading the size of"))?.len();
    inspect_region(&file, 0, len)
}

fn inspect_source(src: &dyn ByteSource) -> Result<DetectedFormat, FormatError> {
    let r = Reader::new(src);
    // Formats whose header sits at a fixed place of their own; at most one should match.
    let mut found: Vec<DetectedFormat> = Vec::new();
    for probe in [
        qcow2::probe,
        vmdk::probe,
        vhdx::probe,
        vhd::probe,
        vdi::probe,
        luks::probe,
    ] {
        if let Some(d) = probe(&r)? {
            found.push(d);
        }
    }
    let iso = iso::probe(&r)?;
    if let Some(iso) = iso {
        found.push(iso);
    }
    let detected = match found.as_slice() {
        [] => {
            let name = if gpt::probe(&r)? { "gpt" } else { "raw" };
            DetectedFormat {
                name,
                virtual_size: r.total_len(),
            }
        }
        [one] => *one,
        many => {
            let names: Vec<&str> = many.iter().map(|d| d.name).collect();
            return Err(FormatError::Ambiguous(names.join(", ")));
        }
    };
    tracing::debug!(format = detected.name, virtual_size = ?detected.virtual_size, "image format detected");
    Ok(detected)
}

/// Applies Ironic's rules to a detected format:
///
/// * it must be in `permitted` (`permitted_image_formats`); a raw image with a GPT (`gpt`)
///   is also allowed when `raw` is permitted;
/// * the declared `disk_format`, when it names a known format, must match: `raw` accepts a
///   raw image with or without a GPT, `aki`/`ari` (kernels and ramdisks) accept anything,
///   `vpc` is `vhd`; an empty or unknown `disk_format` is not checked.
///
/// So a raw image claiming qcow2 is refused ("image claims qcow2 but its bytes are raw").
/// Safety refusals (backing files, data files, …) already happened in [`inspect`].
pub fn check_allowed(
    detected: &DetectedFormat,
    declared_disk_format: Option<&str>,
    permitted: &[String],
) -> Result<(), FormatError> {
    let permitted_norm: Vec<String> = permitted
        .iter()
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let is_permitted = |name: &str| permitted_norm.iter().any(|p| p == name);
    let allowed = is_permitted(detected.name) || (detected.name == "gpt" && is_permitted("raw"));
    if !allowed {
        return Err(FormatError::NotPermitted {
            detected: detected.name,
            permitted: permitted_norm.join(","),
        });
    }
    let Some(declared) = declared_disk_format.map(|d| d.trim().to_ascii_lowercase()) else {
        return Ok(());
    };
    let declared = if declared == "vpc" {
        "vhd".to_string()
    } else {
        declared
    };
    let matches = match declared.as_str() {
        "" | "aki" | "ari" => true,
        "raw" => matches!(detected.name, "raw" | "gpt"),
        d if KNOWN_FORMATS.contains(&d) => d == detected.name,
        other => {
            tracing::warn!(
                disk_format = other,
                detected = detected.name,
                "unknown disk_format: not compared"
            );
            true
        }
    };
    if matches {
        Ok(())
    } else {
        Err(FormatError::Mismatch {
            declared,
            detected: detected.name,
        })
    }
}
