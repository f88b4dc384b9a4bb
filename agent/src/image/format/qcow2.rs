//! qcow2 (qemu's docs/interop/qcow2.txt): a big-endian header at byte 0.
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `QFI\xfb` |
//! | 4 | version (2 or 3) |
//! | 8 | backing file name offset (u64, 0 = none) |
//! | 16 | backing file name length (u32) |
//! | 20 | cluster bits |
//! | 24 | virtual size (u64) |
//! | 32 | encryption method (0 none, 1 AES, 2 LUKS) |
//! | 72 | v3: incompatible features (bit 0 dirty, 1 corrupt, 2 external data file, 3 compression type, 4 extended L2) |
//! | 100 | v3: header length; header extensions follow it (v2: at 72) |
//!
//! Header extension 0x44415441 holds the external data file's name.

use super::source::{Reader, int, printable_name};
use super::{DetectedFormat, FormatError};

const NAME: &str = "qcow2";
const MAGIC: &[u8] = b"QFI\xfb";
const V3_HEADER_LEN: usize = 104;
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
const EXT_END: u32 = 0;
const EXT_DATA_FILE: u32 = 0x4441_5441;
/// qemu refuses backing file names longer than this.
const MAX_BACKING_NAME: u32 = 1023;
/// Upper bound on header extensions walked (the first cluster holds only a few).
const MAX_EXTENSIONS: usize = 64;

fn unsafe_(reason: String) -> FormatError {
    FormatError::Unsafe {
        format: NAME,
        reason,
    }
}

fn invalid(reason: String) -> FormatError {
    FormatError::Invalid {
        format: NAME,
        reason,
    }
}

/// Recognises a qcow2 header and refuses the unsafe ones.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    if !r.magic_at(0, MAGIC)? {
        return Ok(None);
    }
    let h = r.bytes(NAME, 0, 72)?;
    let version = int::be32(&h, 4);
    match version {
        1 => return Err(unsafe_("is in the obsolete qcow version 1 format".into())),
        2 | 3 => {}
        v => return Err(invalid(format!("unknown version {v}"))),
    }
    let cluster_bits = int::be32(&h, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(invalid(format!(
            "cluster bits {cluster_bits} out of range 9..21"
        )));
    }
    let cluster_size = 1u64 << cluster_bits;

    let backing_offset = int::be64(&h, 8);
    if backing_offset != 0 {
        let name = backing_name(r, backing_offset, int::be32(&h, 16), cluster_size);
        return Err(unsafe_(format!("has a backing file ({name})")));
    }
    match int::be32(&h, 32) {
        0 => {}
        1 => return Err(unsafe_("is encrypted (AES)".into())),
        2 => return Err(unsafe_("is encrypted (LUKS)".into())),
        m => return Err(invalid(format!("unknown encryption method {m}"))),
    }

    if version == 3 {
        let h3 = r.bytes(NAME, 0, V3_HEADER_LEN)?;
        let incompatible = int::be64(&h3, 72);
        let header_len = int::be32(&h3, 100);
        if (header_len as usize) < V3_HEADER_LEN || u64::from(header_len) > cluster_size {
            return Err(invalid(format!("header length {header_len}")));
        }
        if incompatible & INCOMPAT_DATA_FILE != 0 {
            let name = data_file_name(r, u64::from(header_len), cluster_size)
                .unwrap_or_else(|| "name not recorded".into());
            return Err(unsafe_(format!("uses an external data file ({name})")));
        }
        let unknown = incompatible & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(unsafe_(format!(
                "sets unknown incompatible feature bits {unknown:#x}"
            )));
        }
        if incompatible & INCOMPAT_CORRUPT != 0 {
            return Err(unsafe_(
                "is marked corrupt (repair it with `qemu-img check -r all`)".into(),
            ));
        }
    }
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size: Some(int::be64(&h, 24)),
    }))
}

/// The backing file's name for the error message, or where it would be.
fn backing_name(r: &Reader, offset: u64, len: u32, cluster_size: u64) -> String {
    let fallback = || format!("name at byte {offset}");
    if len == 0 || len > MAX_BACKING_NAME || offset.saturating_add(u64::from(len)) > cluster_size {
        return fallback();
    }
    match r.peek(offset, len as usize) {
        Ok(Some(raw)) => printable_name(&raw),
        _ => fallback(),
    }
}

/// Walks the header extensions for the external data file's name.
fn data_file_name(r: &Reader, start: u64, cluster_size: u64) -> Option<String> {
    let mut at = start;
    for _ in 0..MAX_EXTENSIONS {
        let hdr = r.peek(at, 8).ok()??;
        let (kind, len) = (int::be32(&hdr, 0), int::be32(&hdr, 4));
        let data_at = at + 8;
        if kind == EXT_END || data_at + u64::from(len) > cluster_size {
            return None;
        }
        if kind == EXT_DATA_FILE {
            let raw = r.peek(data_at, (len as usize).min(4096)).ok()??;
            return Some(printable_name(&raw));
        }
        at = data_at + u64::from(len).next_multiple_of(8);
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::source::HeadSource;
    use super::*;

    /// A synthetic qcow2 header: 64 KiB clusters, 1 GiB virtual size.
    pub fn header(version: u32) -> Vec<u8> {
        let mut h = vec![0u8; 64 * 1024];
        h[..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        if version == 3 {
            h[100..104].copy_from_slice(&112u32.to_be_bytes());
        }
        h
    }

    fn probe_bytes(h: &[u8]) -> Result<Option<DetectedFormat>, FormatError> {
        let src = HeadSource {
            head: h,
            total: Some(h.len() as u64),
        };
        probe(&Reader::new(&src))
    }

    fn unsafe_reason(h: &[u8]) -> String {
        match probe_bytes(h) {
            Err(FormatError::Unsafe { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn plain_v2_and_v3_headers_give_the_virtual_size() {
        for v in [2, 3] {
            let d = probe_bytes(&header(v)).ok().flatten();
            assert_eq!(
                d,
                Some(DetectedFormat {
                    name: "qcow2",
                    virtual_size: Some(1 << 30)
                })
            );
        }
        assert!(matches!(probe_bytes(&[0u8; 512]), Ok(None)));
    }

    #[test]
    fn backing_file_is_refused_with_its_name() {
        let mut h = header(3);
        h[8..16].copy_from_slice(&512u64.to_be_bytes());
        h[16..20].copy_from_slice(&9u32.to_be_bytes());
        h[512..521].copy_from_slice(b"/etc/shad");
        assert_eq!(unsafe_reason(&h), "has a backing file (/etc/shad)");
        // A name that does not fit still refuses the image.
        h[16..20].copy_from_slice(&5000u32.to_be_bytes());
        assert_eq!(unsafe_reason(&h), "has a backing file (name at byte 512)");
    }

    #[test]
    fn external_data_file_is_refused_with_its_name() {
        let mut h = header(3);
        h[72..80].copy_from_slice(&INCOMPAT_DATA_FILE.to_be_bytes());
        // An unrelated extension first, then the data file name.
        h[112..116].copy_from_slice(&0xe279_2acau32.to_be_bytes());
        h[116..120].copy_from_slice(&5u32.to_be_bytes());
        h[120..125].copy_from_slice(b"qcow2");
        h[128..132].copy_from_slice(&EXT_DATA_FILE.to_be_bytes());
        h[132..136].copy_from_slice(&8u32.to_be_bytes());
        h[136..144].copy_from_slice(b"data.raw");
        assert_eq!(unsafe_reason(&h), "uses an external data file (data.raw)");
    }

    #[test]
    fn unknown_incompatible_bits_corrupt_and_encryption_are_refused() {
        let mut h = header(3);
        h[72..80].copy_from_slice(&(1u64 << 5 | INCOMPAT_DIRTY).to_be_bytes());
        assert_eq!(
            unsafe_reason(&h),
            "sets unknown incompatible feature bits 0x20"
        );
        h[72..80].copy_from_slice(&INCOMPAT_CORRUPT.to_be_bytes());
        assert!(unsafe_reason(&h).contains("corrupt"));
        // Dirty, zstd and extended L2 are fine.
        h[72..80].copy_from_slice(
            &(INCOMPAT_DIRTY | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2).to_be_bytes(),
        );
        assert!(probe_bytes(&h).is_ok());
        let mut h = header(2);
        h[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(unsafe_reason(&h), "is encrypted (LUKS)");
    }

    #[test]
    fn bad_versions_and_cluster_sizes() {
        assert!(unsafe_reason(&header(1)).contains("version 1"));
        assert!(matches!(
            probe_bytes(&header(4)),
            Err(FormatError::Invalid { .. })
        ));
        let mut h = header(2);
        h[20..24].copy_from_slice(&30u32.to_be_bytes());
        assert!(matches!(probe_bytes(&h), Err(FormatError::Invalid { .. })));
    }
}
