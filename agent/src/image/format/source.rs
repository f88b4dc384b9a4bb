//! Where the inspected bytes come from: a head buffer, or a region of a file or block device.
//!
//! Parsers ask for bytes at absolute offsets inside the image. A request can end in three
//! ways: the bytes are there; the request lies past the known end of the image (the image is
//! truncated or its header lies); or the bytes exist but were not handed to us (a head buffer
//! shorter than the structure we need). The last case becomes [`FormatError::Incomplete`] so a
//! caller holding only the head learns to call [`super::inspect_region`] instead of guessing.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::FormatError;

/// Outcome of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fetch {
    /// The buffer was filled.
    Filled,
    /// The request ends past the end of the image.
    PastEnd,
    /// The bytes exist (or may exist) but are not available to the inspector.
    Unavailable,
}

/// Random access to the image's bytes.
pub(super) trait ByteSource {
    /// Size of the whole image in bytes, when known.
    fn total_len(&self) -> Option<u64>;
    /// Fills `buf` with the bytes at `offset`.
    fn fetch(&self, offset: u64, buf: &mut [u8]) -> Result<Fetch, FormatError>;
}

/// The first bytes of the image, and optionally its total size.
pub(super) struct HeadSource<'a> {
    pub head: &'a [u8],
    pub total: Option<u64>,
}

impl ByteSource for HeadSource<'_> {
    fn total_len(&self) -> Option<u64> {
        self.total
    }

    fn fetch(&self, offset: u64, buf: &mut [u8]) -> Result<Fetch, FormatError> {
        let Some(end) = offset.checked_add(buf.len() as u64) else {
            return Ok(Fetch::PastEnd);
        };
        if self.total.is_some_and(|t| end > t) {
            return Ok(Fetch::PastEnd);
        }
        if end > self.head.len() as u64 {
            // A head shorter than the total means "more exists"; without a total we cannot
            // tell a short image from a short head, so we say unavailable (the safe answer).
            return Ok(Fetch::Unavailable);
        }
        // Both bounds fit in the head, so they fit in usize.
        let (start, end) = (offset as usize, end as usize);
        buf.copy_from_slice(&self.head[start..end]);
        Ok(Fetch::Filled)
    }
}

/// `len` bytes of a file or block device starting at `base` (the spool region on a disk).
pub(super) struct RegionSource<'a> {
    pub file: &'a File,
    pub base: u64,
    pub len: u64,
}

impl ByteSource for RegionSource<'_> {
    fn total_len(&self) -> Option<u64> {
        Some(self.len)
    }

    fn fetch(&self, offset: u64, buf: &mut [u8]) -> Result<Fetch, FormatError> {
        let Some(end) = offset.checked_add(buf.len() as u64) else {
            return Ok(Fetch::PastEnd);
        };
        if end > self.len {
            return Ok(Fetch::PastEnd);
        }
        let at = self.base.checked_add(offset).ok_or(FormatError::Io {
            what: "reading the image".into(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        match self.file.read_exact_at(buf, at) {
            Ok(()) => Ok(Fetch::Filled),
            // The region claimed more bytes than the file holds.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Fetch::PastEnd),
            Err(source) => Err(FormatError::Io {
                what: format!("reading the image at byte {at}"),
                source,
            }),
        }
    }
}

/// Typed reads on top of a [`ByteSource`], with errors that name the format being parsed.
pub(super) struct Reader<'a> {
    src: &'a dyn ByteSource,
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a dyn ByteSource) -> Self {
        Reader { src }
    }

    /// Size of the whole image, when known.
    pub fn total_len(&self) -> Option<u64> {
        self.src.total_len()
    }

    /// Bytes a matched format needs: a missing range is an error.
    pub fn bytes(
        &self,
        format: &'static str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, FormatError> {
        let mut buf = vec![0u8; len];
        match self.src.fetch(offset, &mut buf)? {
            Fetch::Filled => Ok(buf),
            Fetch::PastEnd => Err(FormatError::Invalid {
                format,
                reason: format!(
                    "image ends before byte {} that its header points to",
                    offset.saturating_add(len as u64)
                ),
            }),
            Fetch::Unavailable => Err(FormatError::Incomplete {
                format,
                needed: Some(offset.saturating_add(len as u64)),
            }),
        }
    }

    /// Bytes a probe would like to look at: `None` when they are not there.
    pub fn peek(&self, offset: u64, len: usize) -> Result<Option<Vec<u8>>, FormatError> {
        let mut buf = vec![0u8; len];
        Ok(match self.src.fetch(offset, &mut buf)? {
            Fetch::Filled => Some(buf),
            Fetch::PastEnd | Fetch::Unavailable => None,
        })
    }

    /// Whether the bytes at `offset` equal `magic`.
    pub fn magic_at(&self, offset: u64, magic: &[u8]) -> Result<bool, FormatError> {
        Ok(self.peek(offset, magic.len())?.is_some_and(|b| b == magic))
    }
}

/// Big- and little-endian integer reads from a header buffer (bounds are the caller's: every
/// header buffer is read with a fixed length that covers the fields).
pub(super) mod int {
    fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = b.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }

    /// Big-endian u16 at `at` (zero when out of bounds).
    pub fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(array(b, at))
    }
    /// Big-endian u32 at `at` (zero when out of bounds).
    pub fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(array(b, at))
    }
    /// Big-endian u64 at `at` (zero when out of bounds).
    pub fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(array(b, at))
    }
    /// Little-endian u16 at `at` (zero when out of bounds).
    pub fn le16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(array(b, at))
    }
    /// Little-endian u32 at `at` (zero when out of bounds).
    pub fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(array(b, at))
    }
    /// Little-endian u64 at `at` (zero when out of bounds).
    pub fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(array(b, at))
    }
}

/// Renders a name found inside an image for an error message: lossy UTF-8, control characters
/// escaped, at most 200 characters.
pub(super) fn printable_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out: String = s.chars().take(200).flat_map(char::escape_debug).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_source_distinguishes_past_end_from_unavailable() {
        let head = [1u8, 2, 3, 4];
        let known = HeadSource {
            head: &head,
            total: Some(6),
        };
        let mut two = [0u8; 2];
        assert_eq!(known.fetch(2, &mut two).ok(), Some(Fetch::Filled));
        assert_eq!(two, [3, 4]);
        assert_eq!(known.fetch(4, &mut two).ok(), Some(Fetch::Unavailable));
        assert_eq!(known.fetch(5, &mut two).ok(), Some(Fetch::PastEnd));
        let unknown = HeadSource {
            head: &head,
            total: None,
        };
        assert_eq!(unknown.fetch(u64::MAX, &mut two).ok(), Some(Fetch::PastEnd));
        assert_eq!(unknown.fetch(3, &mut two).ok(), Some(Fetch::Unavailable));
    }

    #[test]
    fn reader_errors_name_the_format() {
        let head = [0u8; 16];
        let src = HeadSource {
            head: &head,
            total: Some(32),
        };
        let r = Reader::new(&src);
        assert!(matches!(
            r.bytes("qcow2", 8, 16),
            Err(FormatError::Incomplete {
                format: "qcow2",
                needed: Some(24)
            })
        ));
        assert!(matches!(
            r.bytes("qcow2", 24, 16),
            Err(FormatError::Invalid {
                format: "qcow2",
                ..
            })
        ));
        assert_eq!(r.peek(24, 16).ok(), Some(None));
    }

    #[test]
    fn names_are_escaped_and_bounded() {
        assert_eq!(printable_name(b"base\n.qcow2"), "base\\n.qcow2");
        assert_eq!(printable_name(&[b'a'; 300]).chars().count(), 201);
    }
}
