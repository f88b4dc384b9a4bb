//! VHD (Connectix/Microsoft Virtual PC; qemu's `vpc`): a 512-byte big-endian footer.
//!
//! Dynamic and differencing disks carry a copy of the footer at byte 0 and a dynamic header
//! (`cxsparse`) at the footer's data offset; a fixed disk is raw data followed by the footer,
//! so only the last 512 bytes show it.
//!
//! | footer offset | field |
//! |---|---|
//! | 0 | cookie `conectix` |
//! | 16 | data offset (u64, the dynamic header; all ones for fixed disks) |
//! | 48 | current size in bytes (u64) — the virtual size |
//! | 60 | disk type (2 fixed, 3 dynamic, 4 differencing) |
//!
//! | dynamic header offset | field |
//! |---|---|
//! | 0 | cookie `cxsparse` |
//! | 64 | parent name (512 bytes of UTF-16BE) |
//! | 576 | eight parent locator entries of 24 bytes (platform code u32 first; 0 = unused) |

use super::source::{Reader, int};
use super::{DetectedFormat, FormatError};

const NAME: &str = "vhd";
const FOOTER_COOKIE: &[u8] = b"conectix";
const DYNAMIC_COOKIE: &[u8] = b"cxsparse";
const FOOTER_LEN: u64 = 512;
const DYNAMIC_HEADER_LEN: usize = 1024;
const TYPE_FIXED: u32 = 2;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;

fn unsafe_(reason: String) -> FormatError {
    FormatError::Unsafe {
        format: NAME,
        reason,
    }
}

fn invalid(reason: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        format: NAME,
        reason: reason.into(),
    }
}

/// Recognises a VHD by its footer (at the start, else at the end) and refuses differencing
/// disks.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    let footer = if r.magic_at(0, FOOTER_COOKIE)? {
        r.bytes(NAME, 0, FOOTER_LEN as usize)?
    } else {
        let Some(end) = r.total_len().and_then(|t| t.checked_sub(FOOTER_LEN)) else {
            return Ok(None);
        };
        if end == 0 || !r.magic_at(end, FOOTER_COOKIE)? {
            return Ok(None);
        }
        let footer = r.bytes(NAME, end, FOOTER_LEN as usize)?;
        if int::be32(&footer, 60) != TYPE_FIXED {
            return Err(invalid(
                "footer at the end of the image but not of a fixed disk",
            ));
        }
        footer
    };
    let virtual_size = int::be64(&footer, 48);
    match int::be32(&footer, 60) {
        TYPE_FIXED => {}
        kind @ (TYPE_DYNAMIC | TYPE_DIFFERENCING) => {
            let at = int::be64(&footer, 16);
            let dynamic = r.bytes(NAME, at, DYNAMIC_HEADER_LEN)?;
            if &dynamic[..8] != DYNAMIC_COOKIE {
                return Err(invalid(format!("no dynamic disk header at byte {at}")));
            }
            if kind == TYPE_DIFFERENCING {
                return Err(unsafe_(format!(
                    "is a differencing disk (parent \"{}\")",
                    parent_name(&dynamic[64..576])
                )));
            }
            let locators = (0..8)
                .filter(|i| int::be32(&dynamic, 576 + 24 * i) != 0)
                .count();
            if locators > 0 {
                return Err(unsafe_(format!("has {locators} parent locator(s)")));
            }
        }
        other => return Err(invalid(format!("unknown disk type {other}"))),
    }
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size: Some(virtual_size),
    }))
}

/// Decodes the UTF-16BE parent name (NUL-terminated), escaped for a message.
fn parent_name(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::source::HeadSource;
    use super::*;

    fn footer(kind: u32, size: u64) -> [u8; 512] {
        let mut f = [0u8; 512];
        f[..8].copy_from_slice(FOOTER_COOKIE);
        f[16..24].copy_from_slice(&(if kind == TYPE_FIXED { u64::MAX } else { 512 }).to_be_bytes());
        f[48..56].copy_from_slice(&size.to_be_bytes());
        f[60..64].copy_from_slice(&kind.to_be_bytes());
        f
    }

    fn dynamic(kind: u32) -> Vec<u8> {
        let mut img = vec![0u8; 4096];
        img[..512].copy_from_slice(&footer(kind, 1 << 30));
        img[512..520].copy_from_slice(DYNAMIC_COOKIE);
        img
    }

    fn run(img: &[u8], total: Option<u64>) -> Result<Option<DetectedFormat>, FormatError> {
        let src = HeadSource { head: img, total };
        probe(&Reader::new(&src))
    }

    #[test]
    fn dynamic_and_fixed_disks() {
        let d = run(&dynamic(TYPE_DYNAMIC), Some(4096)).ok().flatten();
        assert_eq!(
            d,
            Some(DetectedFormat {
                name: "vhd",
                virtual_size: Some(1 << 30)
            })
        );
        let mut fixed = vec![7u8; 8192];
        fixed.extend_from_slice(&footer(TYPE_FIXED, 8192));
        let d = run(&fixed, Some(fixed.len() as u64)).ok().flatten();
        assert_eq!(d.and_then(|d| d.virtual_size), Some(8192));
        // From a head that does not reach the end, a fixed disk is not visible.
        assert!(matches!(
            run(&fixed[..4096], Some(fixed.len() as u64)),
            Ok(None)
        ));
    }

    #[test]
    fn differencing_disks_and_parent_locators_are_refused() {
        let mut img = dynamic(TYPE_DIFFERENCING);
        for (i, c) in "base.vhd".encode_utf16().enumerate() {
            img[512 + 64 + 2 * i..512 + 66 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        match run(&img, Some(4096)) {
            Err(FormatError::Unsafe { reason, .. }) => {
                assert_eq!(reason, "is a differencing disk (parent \"base.vhd\")")
            }
            other => panic!("{other:?}"),
        }
        let mut img = dynamic(TYPE_DYNAMIC);
        img[512 + 576..512 + 580].copy_from_slice(b"W2ku");
        assert!(matches!(
            run(&img, Some(4096)),
            Err(FormatError::Unsafe { .. })
        ));
        let mut img = dynamic(TYPE_DYNAMIC);
        img[512..520].copy_from_slice(b"notspars");
        assert!(matches!(
            run(&img, Some(4096)),
            Err(FormatError::Invalid { .. })
        ));
    }
}
