//! VDI (VirtualBox): a little-endian header after a 64-byte text banner.
//!
//! | offset | field |
//! |---|---|
//! | 0x40 | signature `0xbeda107f` |
//! | 0x44 | version (0x00010001 = 1.1, the only one qemu reads) |
//! | 0x4c | image type (1 dynamic, 2 fixed, 3 undo, 4 differencing) |
//! | 0x170 | disk size in bytes (u64) |

use super::source::{Reader, int};
use super::{DetectedFormat, FormatError};

const NAME: &str = "vdi";
const SIGNATURE: u32 = 0xbeda_107f;
const VERSION_1_1: u32 = 0x0001_0001;

/// Recognises a VDI and refuses undo and differencing images.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    match r.peek(0x40, 4)? {
        Some(sig) if int::le32(&sig, 0) == SIGNATURE => {}
        _ => return Ok(None),
    }
    let h = r.bytes(NAME, 0, 0x178)?;
    let version = int::le32(&h, 0x44);
    if version != VERSION_1_1 {
        let reason = format!("unsupported version {}.{}", version >> 16, version & 0xffff);
        return Err(FormatError::Invalid {
            format: NAME,
            reason,
        });
    }
    match int::le32(&h, 0x4c) {
        1 | 2 => {}
        3 | 4 => {
            let reason = "is a differencing (or undo) image that needs its parent".into();
            return Err(FormatError::Unsafe {
                format: NAME,
                reason,
            });
        }
        t => {
            return Err(FormatError::Invalid {
                format: NAME,
                reason: format!("unknown image type {t}"),
            });
        }
    }
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size: Some(int::le64(&h, 0x170)),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::source::HeadSource;
    use super::*;

    fn header(kind: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..40].copy_from_slice(b"<<< Oracle VM VirtualBox Disk Image >>>\n");
        h[0x40..0x44].copy_from_slice(&SIGNATURE.to_le_bytes());
        h[0x44..0x48].copy_from_slice(&VERSION_1_1.to_le_bytes());
        h[0x4c..0x50].copy_from_slice(&kind.to_le_bytes());
        h[0x170..0x178].copy_from_slice(&(3u64 << 30).to_le_bytes());
        h
    }

    fn run(h: &[u8]) -> Result<Option<DetectedFormat>, FormatError> {
        let src = HeadSource {
            head: h,
            total: Some(h.len() as u64),
        };
        probe(&Reader::new(&src))
    }

    #[test]
    fn dynamic_fixed_and_differencing() {
        assert_eq!(
            run(&header(1)).ok().flatten().and_then(|d| d.virtual_size),
            Some(3 << 30)
        );
        assert!(run(&header(2)).is_ok());
        assert!(matches!(run(&header(4)), Err(FormatError::Unsafe { .. })));
        assert!(matches!(run(&header(9)), Err(FormatError::Invalid { .. })));
        assert!(matches!(run(&[0u8; 512]), Ok(None)));
    }
}
