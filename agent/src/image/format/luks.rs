//! LUKS: `LUKS\xba\xbe` and a big-endian version (u16 at 6). LUKS1 keeps the payload offset
//! in sectors (u32 at 104): the decrypted disk is what follows it. LUKS2's size lives in its
//! JSON area and is not read here.

use super::source::{Reader, int};
use super::{DetectedFormat, FormatError};

const NAME: &str = "luks";
const MAGIC: &[u8] = b"LUKS\xba\xbe";

/// Recognises a LUKS header.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    if !r.magic_at(0, MAGIC)? {
        return Ok(None);
    }
    let h = r.bytes(NAME, 0, 108)?;
    let virtual_size = match int::be16(&h, 6) {
        1 => {
            let payload = u64::from(int::be32(&h, 104)) * 512;
            r.total_len().and_then(|t| t.checked_sub(payload))
        }
        2 => None,
        v => {
            return Err(FormatError::Invalid {
                format: NAME,
                reason: format!("unknown version {v}"),
            });
        }
    };
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::source::HeadSource;
    use super::*;

    #[test]
    fn luks1_size_is_what_follows_the_payload_offset() {
        let mut h = vec![0u8; 4096];
        h[..6].copy_from_slice(MAGIC);
        h[6..8].copy_from_slice(&1u16.to_be_bytes());
        h[104..108].copy_from_slice(&4u32.to_be_bytes());
        let src = HeadSource {
            head: &h,
            total: Some(1 << 20),
        };
        let d = probe(&Reader::new(&src)).ok().flatten();
        assert_eq!(
            d,
            Some(DetectedFormat {
                name: "luks",
                virtual_size: Some((1 << 20) - 2048)
            })
        );
        h[6..8].copy_from_slice(&7u16.to_be_bytes());
        let src = HeadSource {
            head: &h,
            total: Some(1 << 20),
        };
        assert!(matches!(
            probe(&Reader::new(&src)),
            Err(FormatError::Invalid { .. })
        ));
    }
}
