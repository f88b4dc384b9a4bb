//! A raw disk image with a GUID partition table: a protective MBR (signature `55 AA` at 510,
//! a partition of type `0xEE`) and the GPT header `EFI PART` at LBA 1, which is byte 512 for
//! 512-byte sectors and byte 4096 for 4096-byte sectors.

use super::FormatError;
use super::source::Reader;

const GPT_SIGNATURE: &[u8] = b"EFI PART";
const PROTECTIVE: u8 = 0xEE;

/// True when the image starts with a protective MBR and a GPT header.
pub(super) fn probe(r: &Reader) -> Result<bool, FormatError> {
    let Some(mbr) = r.peek(0, 512)? else {
        return Ok(false);
    };
    if mbr[510..512] != [0x55, 0xAA] {
        return Ok(false);
    }
    let protective = (0..4).any(|i| mbr[446 + 16 * i + 4] == PROTECTIVE);
    Ok(protective && (r.magic_at(512, GPT_SIGNATURE)? || r.magic_at(4096, GPT_SIGNATURE)?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::source::HeadSource;
    use super::*;

    /// A protective MBR and a GPT header signature for the given sector size.
    pub fn image(sector: usize) -> Vec<u8> {
        let mut img = vec![0u8; 64 * 1024];
        img[446 + 4] = PROTECTIVE;
        img[510] = 0x55;
        img[511] = 0xAA;
        img[sector..sector + 8].copy_from_slice(GPT_SIGNATURE);
        img
    }

    fn run(img: &[u8]) -> bool {
        let src = HeadSource {
            head: img,
            total: Some(img.len() as u64),
        };
        probe(&Reader::new(&src)).unwrap_or(false)
    }

    #[test]
    fn both_sector_sizes_and_look_alikes() {
        assert!(run(&image(512)));
        assert!(run(&image(4096)));
        let mut mbr_only = image(512);
        mbr_only[446 + 4] = 0x83;
        assert!(!run(&mbr_only));
        let mut no_header = image(512);
        no_header[512] = 0;
        assert!(!run(&no_header));
    }
}
