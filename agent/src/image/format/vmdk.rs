//! VMDK: a little-endian "hosted sparse extent" header (`KDMV`) with an embedded text
//! descriptor, or a bare text descriptor that points at other files.
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `KDMV` |
//! | 4 | version (1–3) |
//! | 12 | capacity in 512-byte sectors (u64) |
//! | 28 | descriptor offset in sectors (u64; 1 for every single-file VMDK) |
//! | 36 | descriptor size in sectors (u64) |
//! | 56 | grain directory offset (u64; all ones = "read the footer at the end") |
//!
//! Only the single-file kinds are accepted (`createType` `monolithicSparse` or
//! `streamOptimized`, one `SPARSE` extent with a plain file name, no `parentFileNameHint`):
//! every other kind makes the reader open other files.

use super::source::{Reader, int, printable_name};
use super::{DetectedFormat, FormatError};

const NAME: &str = "vmdk";
const MAGIC: &[u8] = b"KDMV";
const COWD_MAGIC: &[u8] = b"COWD";
const SECTOR: u64 = 512;
const GD_AT_END: u64 = u64::MAX;
/// qemu reads at most this much descriptor.
const MAX_DESCRIPTOR: u64 = (1 << 20) - 1;
const ALLOWED_TYPES: &[&str] = &["monolithicsparse", "streamoptimized"];
const MARKER_FOOTER: u32 = 3;

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

/// Recognises a VMDK (sparse or bare descriptor) and refuses the multi-file kinds.
pub(super) fn probe(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    if r.magic_at(0, COWD_MAGIC)? {
        return Err(unsafe_("is in the VMware 3 (COWD) format".into()));
    }
    if !r.magic_at(0, MAGIC)? {
        return probe_text_descriptor(r);
    }
    let header = r.bytes(NAME, 0, 512)?;
    let version = int::le32(&header, 4);
    if !(1..=3).contains(&version) {
        return Err(invalid(format!("unknown version {version}")));
    }
    let (desc_sector, desc_sectors) = (int::le64(&header, 28), int::le64(&header, 36));
    if desc_sector != 1 || desc_sectors == 0 {
        return Err(invalid("no embedded descriptor at sector 1"));
    }
    let desc_len = desc_sectors.saturating_mul(SECTOR).min(MAX_DESCRIPTOR);
    let raw = r.bytes(NAME, SECTOR, desc_len as usize)?;
    let desc = Descriptor::parse(&raw)?;
    desc.check()?;

    let mut capacity = int::le64(&header, 12);
    if int::le64(&header, 56) == GD_AT_END {
        // streamOptimized written in one pass: the footer's copy of the header is the real one.
        capacity = check_footer(r, &header)?;
    }
    let virtual_size = capacity
        .checked_mul(SECTOR)
        .ok_or_else(|| invalid(format!("capacity of {capacity} sectors overflows")))?;
    Ok(Some(DetectedFormat {
        name: NAME,
        virtual_size: Some(virtual_size),
    }))
}

/// A bare text descriptor (`# Disk DescriptorFile` …): the data lives in other files.
fn probe_text_descriptor(r: &Reader) -> Result<Option<DetectedFormat>, FormatError> {
    let head = match r.peek(0, 512)? {
        Some(head) => head,
        // An image shorter than a sector: look at all of it.
        None => match r.total_len() {
            Some(t) if t < 512 => r.peek(0, t as usize)?.unwrap_or_default(),
            _ => return Ok(None),
        },
    };
    let text_end = head.iter().position(|&b| b == 0).unwrap_or(head.len());
    let text = &head[..text_end];
    if text.is_empty()
        || !text
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return Ok(None);
    }
    let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
    if !lower.starts_with("# disk descriptorfile") && !lower.contains("createtype=") {
        return Ok(None);
    }
    let kind = Descriptor::parse(text)
        .ok()
        .and_then(|d| d.create_type)
        .unwrap_or_else(|| "unknown".into());
    Err(unsafe_(format!(
        "is a bare descriptor (createType \"{kind}\") whose data lives in other files"
    )))
}

/// Checks the footer of a streamOptimized image (marker, header copy, end-of-stream marker)
/// and returns the capacity it declares.
fn check_footer(r: &Reader, header: &[u8]) -> Result<u64, FormatError> {
    let total = r.total_len().ok_or(FormatError::Incomplete {
        format: NAME,
        needed: None,
    })?;
    let at = total
        .checked_sub(3 * SECTOR)
        .ok_or_else(|| invalid("too short for its footer"))?;
    let tail = r.bytes(NAME, at, 3 * SECTOR as usize)?;
    let (marker, footer, eos) = (&tail[..512], &tail[512..1024], &tail[1024..]);
    let marker_ok = int::le32(marker, 8) == 0
        && int::le32(marker, 12) == MARKER_FOOTER
        && marker[16..].iter().all(|&b| b == 0);
    if !marker_ok {
        return Err(invalid("footer marker is missing"));
    }
    if &footer[..4] != MAGIC
        || int::le32(footer, 4) != int::le32(header, 4)
        || footer[28..44] != header[28..44]
    {
        return Err(invalid("footer does not match the header"));
    }
    if int::le64(footer, 56) == GD_AT_END {
        return Err(invalid("footer points at another footer"));
    }
    if eos.iter().any(|&b| b != 0) {
        return Err(invalid("end-of-stream marker is missing"));
    }
    Ok(int::le64(footer, 12))
}

/// The parts of a descriptor that decide safety.
#[derive(Debug, Default)]
struct Descriptor {
    create_type: Option<String>,
    parent_hint: Option<String>,
    /// (type, file name) of each extent line.
    extents: Vec<(String, String)>,
}

impl Descriptor {
    /// Parses descriptor text (up to the first NUL), refusing lines it does not understand.
    fn parse(raw: &[u8]) -> Result<Descriptor, FormatError> {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let text = std::str::from_utf8(&raw[..end])
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or_else(|| invalid("descriptor is not ASCII text"))?;
        let mut d = Descriptor::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("ddb.") {
                continue;
            }
            let first = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if matches!(first.as_str(), "RW" | "RDONLY" | "NOACCESS") {
                d.extents.push(parse_extent(line)?);
            } else if let Some((key, value)) = line.split_once('=')
                && !key.trim().contains(char::is_whitespace)
            {
                let value = value.trim().trim_matches('"').to_string();
                match key.trim().to_ascii_lowercase().as_str() {
                    "createtype" => d.create_type = Some(value),
                    "parentfilenamehint" => d.parent_hint = Some(value),
                    _ => {}
                }
            } else {
                return Err(invalid(format!(
                    "unrecognised descriptor line \"{}\"",
                    printable_name(line.as_bytes())
                )));
            }
        }
        Ok(d)
    }

    /// Refuses everything but one self-contained sparse extent.
    fn check(&self) -> Result<(), FormatError> {
        let kind = self
            .create_type
            .as_deref()
            .ok_or_else(|| invalid("descriptor has no createType"))?;
        if !ALLOWED_TYPES.contains(&kind.to_ascii_lowercase().as_str()) {
            return Err(unsafe_(format!(
                "has createType \"{}\" (only monolithicSparse and streamOptimized are accepted)",
                printable_name(kind.as_bytes())
            )));
        }
        if let Some(hint) = &self.parent_hint {
            return Err(unsafe_(format!(
                "has a backing file ({})",
                printable_name(hint.as_bytes())
            )));
        }
        match self.extents.as_slice() {
            [(kind, file)] if kind.eq_ignore_ascii_case("SPARSE") => {
                if file.contains(['/', '\\']) {
                    return Err(unsafe_(format!(
                        "has an extent in another directory (\"{}\")",
                        printable_name(file.as_bytes())
                    )));
                }
                Ok(())
            }
            [(kind, file)] => Err(unsafe_(format!(
                "has a {} extent (\"{}\") instead of its own sparse data",
                printable_name(kind.as_bytes()),
                printable_name(file.as_bytes())
            ))),
            [] => Err(invalid("descriptor lists no extent")),
            many => Err(unsafe_(format!(
                "lists {} extents (one expected)",
                many.len()
            ))),
        }
    }
}

/// `RW 2048 SPARSE "name.vmdk" [offset]` → (type, name).
fn parse_extent(line: &str) -> Result<(String, String), FormatError> {
    let bad = || {
        invalid(format!(
            "malformed extent line \"{}\"",
            printable_name(line.as_bytes())
        ))
    };
    let mut words = line
        .splitn(4, char::is_whitespace)
        .filter(|w| !w.is_empty());
    let (_access, _sectors) = (words.next().ok_or_else(bad)?, words.next().ok_or_else(bad)?);
    let rest = line.split_once('"');
    let kind = words.next().ok_or_else(bad)?.to_string();
    let file = match rest {
        Some((_, after)) => after.split('"').next().unwrap_or_default().to_string(),
        None => String::new(),
    };
    Ok((kind, file))
}

#[cfg(test)]
mod tests {
    use super::super::source::HeadSource;
    use super::*;

    fn sparse(descriptor: &str) -> Vec<u8> {
        let mut h = vec![0u8; 64 * 1024];
        h[..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[12..20].copy_from_slice(&2048u64.to_le_bytes());
        h[28..36].copy_from_slice(&1u64.to_le_bytes());
        h[36..44].copy_from_slice(&20u64.to_le_bytes());
        h[512..512 + descriptor.len()].copy_from_slice(descriptor.as_bytes());
        h
    }

    fn run(h: &[u8]) -> Result<Option<DetectedFormat>, FormatError> {
        let src = HeadSource {
            head: h,
            total: Some(h.len() as u64),
        };
        probe(&Reader::new(&src))
    }

    fn reason(h: &[u8]) -> String {
        match run(h) {
            Err(FormatError::Unsafe { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    const GOOD: &str = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
        createType=\"monolithicSparse\"\n\n# Extent description\nRW 2048 SPARSE \"disk.vmdk\"\n\n\
        ddb.virtualHWVersion = \"4\"\n";

    #[test]
    fn monolithic_sparse_is_accepted_with_its_capacity() {
        let d = run(&sparse(GOOD)).ok().flatten();
        assert_eq!(
            d,
            Some(DetectedFormat {
                name: "vmdk",
                virtual_size: Some(2048 * 512)
            })
        );
    }

    #[test]
    fn other_create_types_extents_and_parents_are_refused() {
        let flat = GOOD.replace("monolithicSparse", "monolithicFlat");
        assert!(reason(&sparse(&flat)).contains("createType \"monolithicFlat\""));
        let outside = GOOD.replace("\"disk.vmdk\"", "\"/etc/passwd\"");
        assert!(reason(&sparse(&outside)).contains("another directory"));
        let two = GOOD.replace(
            "RW 2048 SPARSE \"disk.vmdk\"",
            "RW 1 SPARSE \"a\"\nRW 1 SPARSE \"b\"",
        );
        assert_eq!(reason(&sparse(&two)), "lists 2 extents (one expected)");
        let flat_extent = GOOD.replace("SPARSE \"disk.vmdk\"", "FLAT \"other.img\" 0");
        assert!(reason(&sparse(&flat_extent)).contains("FLAT extent (\"other.img\")"));
        let child = format!("{GOOD}parentFileNameHint=\"base.vmdk\"\n");
        assert_eq!(reason(&sparse(&child)), "has a backing file (base.vmdk)");
        let junk = format!("{GOOD}rm -rf /\n");
        assert!(matches!(
            run(&sparse(&junk)),
            Err(FormatError::Invalid { .. })
        ));
    }

    #[test]
    fn bare_descriptors_and_cowd_are_refused_plain_text_is_not_vmdk() {
        let text = GOOD
            .replace("monolithicSparse", "twoGbMaxExtentFlat")
            .into_bytes();
        assert!(reason(&text).contains("bare descriptor (createType \"twoGbMaxExtentFlat\")"));
        assert!(reason(b"COWD\x01\x00\x00\x00").contains("COWD"));
        assert!(matches!(run(b"hello world, just text\n"), Ok(None)));
    }

    #[test]
    fn stream_optimized_footer_is_checked() {
        let desc = GOOD.replace("monolithicSparse", "streamOptimized");
        let mut img = sparse(&desc);
        img[56..64].copy_from_slice(&GD_AT_END.to_le_bytes());
        // No valid footer at the end: refused.
        assert!(matches!(run(&img), Err(FormatError::Invalid { .. })));
        let mut footer = vec![0u8; 1536];
        footer[12..16].copy_from_slice(&MARKER_FOOTER.to_le_bytes());
        footer[512..1024].copy_from_slice(&img[..512]);
        footer[512 + 12..512 + 20].copy_from_slice(&4096u64.to_le_bytes());
        footer[512 + 56..512 + 64].copy_from_slice(&100u64.to_le_bytes());
        img.extend_from_slice(&footer);
        let d = run(&img).ok().flatten();
        assert_eq!(d.and_then(|d| d.virtual_size), Some(4096 * 512));
        // From a head without the total size, the footer cannot be checked.
        let src = HeadSource {
            head: &img,
            total: None,
        };
        assert!(matches!(
            probe(&Reader::new(&src)),
            Err(FormatError::Incomplete { .. })
        ));
    }
}
