//! The check of an image's first bytes, run by the pipeline before anything is written: its
//! real format, refused when not permitted or not what `disk_format` declares.

use std::sync::Arc;

use super::error::ImageError;
use super::format::{self, DetectedFormat};

/// The first decompressed bytes of an image, as the pipeline hands them to a [`HeadCheck`].
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The first `min(block_size, image size)` bytes (2 MiB by default, never less than
    /// 64 KiB unless the image is smaller).
    pub bytes: &'a [u8],
    /// True when `bytes` is the whole image (it ended within the first block).
    pub whole_image: bool,
}

impl Head<'_> {
    /// The image's size, when the head is all of it.
    pub fn image_len(&self) -> Option<u64> {
        self.whole_image.then_some(self.bytes.len() as u64)
    }
}

/// A check of the first bytes of the decompressed image, run before anything is written
/// (e.g. refusing a qcow2 header on the raw path).
pub type HeadCheck = Arc<dyn Fn(&Head<'_>) -> Result<(), ImageError> + Send + Sync>;

/// The real format of an image from its first bytes (`total_len`: the image's size when
/// known), refused when not in `permitted` or not what `declared` (`disk_format`) says.
pub fn inspect_allowed(
    head: &[u8],
    total_len: Option<u64>,
    declared: Option<&str>,
    permitted: &[String],
) -> Result<DetectedFormat, ImageError> {
    let invalid = |e: format::FormatError| ImageError::InvalidImage(e.to_string());
    let detected = format::inspect(head, total_len).map_err(invalid)?;
    format::check_allowed(&detected, declared, permitted).map_err(invalid)?;
    Ok(detected)
}

/// The check of the streaming path: the bytes must be the disk itself (raw, with or without a
/// GPT, or an ISO) and a permitted format matching `declared`.
pub fn raw_head_check(declared: Option<String>, permitted: Vec<String>) -> HeadCheck {
    Arc::new(move |head: &Head<'_>| {
        let detected = inspect_allowed(
            head.bytes,
            head.image_len(),
            declared.as_deref(),
            &permitted,
        )?;
        if !detected.is_raw_bytes() {
            return Err(ImageError::InvalidImage(format!(
                "the image is {}, which cannot be written to the disk as it is (disk_format raw)",
                detected.name
            )));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], whole_image: bool) -> Result<(), ImageError> {
        raw_head_check(Some("raw".into()), vec!["raw".into()])(&Head { bytes, whole_image })
    }

    #[test]
    fn a_whole_image_smaller_than_a_mib_is_raw() {
        for len in [512usize, 4096, 100 << 10, (1 << 20) - 1] {
            let bytes = vec![0x5a; len];
            assert!(check(&bytes, true).is_ok(), "{len} bytes");
            let d = inspect_allowed(&bytes, Some(len as u64), Some("raw"), &["raw".into()]);
            assert_eq!(d.ok().and_then(|d| d.virtual_size), Some(len as u64));
        }
    }

    #[test]
    fn a_short_head_of_a_longer_image_is_not_guessed_at() {
        let e = check(&[0x5a; 4096], false).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("could not be checked"), "{e}");
        for jargon in ["spool", "inspect", "first bytes alone"] {
            assert!(!e.contains(jargon), "{e}");
        }
    }

    #[test]
    fn a_qcow2_head_is_refused_on_the_raw_path() {
        let mut q = b"QFI\xfb\x00\x00\x00\x03".to_vec();
        q.resize(4096, 0);
        let e = check(&q, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("qcow2"), "{e}");
    }
}
