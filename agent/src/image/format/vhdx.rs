//! VHDX (MS-VHDX): little-endian structures found through GUID-keyed tables.
//!
//! * `vhdxfile` at byte 0;
//! * the region table at 192 KiB: `regi`, entry count (u32 at 8), then 32-byte entries
//!   (GUID, file offset u64, length u32, flags u32) from byte 16;
//! * the metadata region (GUID 8B7CA206-4790-4B9A-B8FE-575F050F886E): `metadata`, entry
//!   count (u16 at 10), then 32-byte entries (GUID, offset u32 from the region start,
//!   length u32, flags u32) from byte 32;
//! * metadata items: Virtual Disk Size (2FA54224-…, a u64), File Parameters (CAA16737-…,
//!   flags u32 at 4 whose bit 1 is "has parent"), Parent Locator (A8D35F2D-…).
//!
//! GUIDs are stored with their first three fields little-endian, as the byte arrays below.

use super::source::{Reader, int};
use super::{DetectedFormat, FormatError};

const NAME: &str = "vhdx";
const MAGIC: &[u8] = b"vhdxfile";
const REGION_TABLE_AT: u64 = 192 * 1024;
const MAX_ENTRIES: usize = 2047;
const METADATA_REGION: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);
const HAS_PARENT: u32 = 1 << 1;

/// The on-disk bytes of a GUID written as `d1-d2-d3-d4`.
const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (d1.to_le_bytes(), d2.to_le_bytes(), d3.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

fn invalid(reason: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        format: NAME,
        reason: reason.into(),
    }
}

/// Recognises a VHDX, reads its virtual size and refuses differencing disks.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    if !r.magic_at(0, MAGIC)? {
        return Ok(None);
    }
    let table = r.bytes(NAME, REGION_TABLE_AT, 64 * 1024)?;
    if &table[..4] != b"regi" {
        return Err(invalid("no region table at 192 KiB"));
    }
    let regions = int::le32(&table, 8) as usize;
    if regions > MAX_ENTRIES {
        return Err(invalid(format!("{regions} regions")));
    }
    let metadata_at = (0..regions)
        .map(|i| &table[16 + 32 * i..48 + 32 * i])
        .find(|e| e[..16] == METADATA_REGION)
        .map(|e| int::le64(e, 16))
        .ok_or_else(|| invalid("no metadata region"))?;

    let meta = r.bytes(NAME, metadata_at, 32 * (MAX_ENTRIES + 1))?;
    if &meta[..8] != b"metadata" {
        return Err(invalid(format!("no metadata table at byte {metadata_at}")));
    }
    let items = usize::from(int::le16(&meta, 10));
    if items > MAX_ENTRIES {
        return Err(invalid(format!("{items} metadata items")));
    }
    let mut virtual_size = None;
    for entry in (0..items).map(|i| &meta[32 + 32 * i..64 + 32 * i]) {
        let item_at = metadata_at + u64::from(int::le32(entry, 16));
        let id = <[u8; 16]>::try_from(&entry[..16]).unwrap_or_default();
        let refusal = if id == VIRTUAL_DISK_SIZE {
            virtual_size = Some(int::le64(&r.bytes(NAME, item_at, 8)?, 0));
            None
        } else if id == FILE_PARAMETERS {
            let flags = int::le32(&r.bytes(NAME, item_at, 8)?, 4);
            (flags & HAS_PARENT != 0).then_some("is a differencing disk (has a parent)")
        } else if id == PARENT_LOCATOR {
            Some("has a parent locator")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(FormatError::Unsafe {
                format: NAME,
                reason: reason.into(),
            });
        }
    }
    let virtual_size = virtual_size.ok_or_else(|| invalid("no virtual disk size"))?;
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size: Some(virtual_size),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::source::HeadSource;
    use super::*;

    /// A minimal VHDX: region table → metadata at 1 MiB with the given items.
    fn image(items: &[([u8; 16], Vec<u8>)]) -> Vec<u8> {
        let meta_at = 1usize << 20;
        let mut img = vec![0u8; meta_at + 128 * 1024];
        img[..8].copy_from_slice(MAGIC);
        let t = REGION_TABLE_AT as usize;
        img[t..t + 4].copy_from_slice(b"regi");
        img[t + 8..t + 12].copy_from_slice(&1u32.to_le_bytes());
        img[t + 16..t + 32].copy_from_slice(&METADATA_REGION);
        img[t + 32..t + 40].copy_from_slice(&(meta_at as u64).to_le_bytes());
        img[meta_at..meta_at + 8].copy_from_slice(b"metadata");
        img[meta_at + 10..meta_at + 12].copy_from_slice(&(items.len() as u16).to_le_bytes());
        for (i, (id, data)) in items.iter().enumerate() {
            let e = meta_at + 32 + 32 * i;
            let data_off = 64 * 1024 + 64 * i;
            img[e..e + 16].copy_from_slice(id);
            img[e + 16..e + 20].copy_from_slice(&(data_off as u32).to_le_bytes());
            img[meta_at + data_off..meta_at + data_off + data.len()].copy_from_slice(data);
        }
        img
    }

    fn run(img: &[u8]) -> Result<Option<DetectedFormat>, FormatError> {
        let src = HeadSource {
            head: img,
            total: Some(img.len() as u64),
        };
        probe(&Reader::new(&src))
    }

    #[test]
    fn guid_layout_matches_the_spec() {
        // 8B7CA206-4790-4B9A-B8FE-575F050F886E as stored on disk.
        assert_eq!(METADATA_REGION[..4], [0x06, 0xA2, 0x7C, 0x8B]);
        assert_eq!(METADATA_REGION[4..8], [0x90, 0x47, 0x9A, 0x4B]);
    }

    #[test]
    fn virtual_size_and_parents() {
        let size = (5u64 << 30).to_le_bytes().to_vec();
        let plain = image(&[
            (FILE_PARAMETERS, vec![0, 0, 0, 2, 0, 0, 0, 0]),
            (VIRTUAL_DISK_SIZE, size.clone()),
        ]);
        assert_eq!(
            run(&plain).ok().flatten().and_then(|d| d.virtual_size),
            Some(5 << 30)
        );
        let child = image(&[
            (VIRTUAL_DISK_SIZE, size.clone()),
            (FILE_PARAMETERS, vec![0, 0, 0, 2, 2, 0, 0, 0]),
        ]);
        assert!(matches!(run(&child), Err(FormatError::Unsafe { .. })));
        let locator = image(&[(VIRTUAL_DISK_SIZE, size), (PARENT_LOCATOR, vec![0; 8])]);
        assert!(matches!(run(&locator), Err(FormatError::Unsafe { .. })));
        assert!(matches!(run(&image(&[])), Err(FormatError::Invalid { .. })));
        // A head that stops before the metadata asks for more.
        let src = HeadSource {
            head: &plain[..512 * 1024],
            total: Some(plain.len() as u64),
        };
        assert!(matches!(
            probe(&Reader::new(&src)),
            Err(FormatError::Incomplete { .. })
        ));
    }
}
