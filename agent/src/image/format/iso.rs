//! ISO 9660: volume descriptors of 2048 bytes from sector 16 (byte 32768), each starting with
//! a type byte and `CD001`. The primary volume descriptor (type 1) holds the volume space size
//! (LE u32 at 80) and the logical block size (LE u16 at 128); type 255 ends the list.

use super::source::{Reader, int};
use super::{DetectedFormat, FormatError};

const NAME: &str = "iso";
const FIRST_DESCRIPTOR: u64 = 16 * 2048;
const DESCRIPTOR_LEN: u64 = 2048;
const IDENTIFIER: &[u8] = b"CD001";
/// Descriptors scanned for the primary one (boot records and supplementary ones come first
/// in some images).
const MAX_DESCRIPTORS: u64 = 16;

/// Recognises an ISO 9660 filesystem and reads its size from the primary volume descriptor.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    if !r.magic_at(FIRST_DESCRIPTOR + 1, IDENTIFIER)? {
        return Ok(None);
    }
    let mut virtual_size = None;
    for i in 0..MAX_DESCRIPTORS {
        let Some(d) = r.peek(FIRST_DESCRIPTOR + i * DESCRIPTOR_LEN, 136)? else {
            break;
        };
        if &d[1..6] != IDENTIFIER || d[0] == 255 {
            break;
        }
        if d[0] == 1 {
            let blocks = u64::from(int::le32(&d, 80));
            let block_size = u64::from(int::le16(&d, 128));
            virtual_size = Some(blocks * block_size);
            break;
        }
    }
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size,
    }))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::source::HeadSource;
    use super::*;

    /// A synthetic ISO head: a boot record, then the primary volume descriptor.
    pub fn image(blocks: u32) -> Vec<u8> {
        let mut img = vec![0u8; 40 * 1024];
        let boot = FIRST_DESCRIPTOR as usize;
        img[boot + 1..boot + 6].copy_from_slice(IDENTIFIER);
        let pvd = boot + 2048;
        img[pvd] = 1;
        img[pvd + 1..pvd + 6].copy_from_slice(IDENTIFIER);
        img[pvd + 80..pvd + 84].copy_from_slice(&blocks.to_le_bytes());
        img[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
        img
    }

    #[test]
    fn primary_descriptor_gives_the_size() {
        let img = image(1000);
        let src = HeadSource {
            head: &img,
            total: None,
        };
        let d = probe(&Reader::new(&src)).ok().flatten();
        assert_eq!(
            d,
            Some(DetectedFormat {
                name: "iso",
                virtual_size: Some(2048 * 1000)
            })
        );
        let blank = vec![0u8; 40 * 1024];
        let src = HeadSource {
            head: &blank,
            total: None,
        };
        assert!(matches!(probe(&Reader::new(&src)), Ok(None)));
    }
}
