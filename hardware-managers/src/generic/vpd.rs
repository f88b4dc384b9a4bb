//! SCSI VPD pages and ATA IDENTIFY data, read as udev's `scsi_id` and `ata_id` read them, so
//! that serials and WWNs computed from sysfs (`device/vpd_pg80`, `vpd_pg83`, `vpd_pg89`)
//! equal udev's `ID_SERIAL*` / `ID_WWN*` / `ID_SCSI_SERIAL`.
//!
//! Every parser takes arbitrary bytes: short, truncated or garbage pages give `None` or
//! partial results, never a panic.

/// `scsi_id`'s INQUIRY buffer size: longer pages are cut here, as udev sees them.
const INQ_BUFF_LEN: usize = 254;
/// `scsi_id`'s serial buffer size (identifier plus type character and NUL).
const MAX_SERIAL_LEN: usize = 256;
/// SCSI standard INQUIRY vendor and model field widths.
const VENDOR_LEN: usize = 8;
const MODEL_LEN: usize = 16;

/// Designator types (SPC).
const ID_VENDOR_SPECIFIC: u8 = 0;
const ID_T10_VENDOR: u8 = 1;
const ID_EUI_64: u8 = 2;
const ID_NAA: u8 = 3;
const ID_TGTGROUP: u8 = 5;
/// Code sets.
const BINARY: u8 = 1;
const ASCII: u8 = 2;
/// NAA types in the first nibble of an NAA designator.
const NAA_IEEE_REG: u8 = 5;
const NAA_IEEE_REG_EXTENDED: u8 = 6;

/// `scsi_id`'s preference order over page 0x83 designators: (type, NAA type or any, code set).
const SEARCH_ORDER: &[(u8, Option<u8>, u8)] = &[
    (ID_TGTGROUP, None, BINARY),
    (ID_NAA, Some(NAA_IEEE_REG_EXTENDED), BINARY),
    (ID_NAA, Some(NAA_IEEE_REG_EXTENDED), ASCII),
    (ID_NAA, Some(NAA_IEEE_REG), BINARY),
    (ID_NAA, Some(NAA_IEEE_REG), ASCII),
    (ID_NAA, None, BINARY),
    (ID_NAA, None, ASCII),
    (ID_EUI_64, None, BINARY),
    (ID_EUI_64, None, ASCII),
    (ID_T10_VENDOR, None, BINARY),
    (ID_T10_VENDOR, None, ASCII),
    (ID_VENDOR_SPECIFIC, None, BINARY),
    (ID_VENDOR_SPECIFIC, None, ASCII),
];

/// What `scsi_id --export` prints for a SCSI disk (before whitespace clean-up).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScsiIdent {
    /// Raw `ID_SERIAL`: designator type digit (or `S`) + identifier.
    pub serial: Option<String>,
    /// Raw `ID_SERIAL_SHORT`: the identifier alone.
    pub serial_short: Option<String>,
    /// `ID_WWN` without `0x`: the first 16 hex digits of an NAA designator.
    pub wwn: Option<String>,
    /// `ID_WWN_VENDOR_EXTENSION` without `0x`: NAA digits 17 to 32.
    pub wwn_vendor_extension: Option<String>,
    /// `ID_SCSI_SERIAL`: the unit serial number of page 0x80, verbatim.
    pub unit_serial: Option<String>,
}

/// A page copied into `scsi_id`'s zero-filled INQUIRY buffer.
fn inquiry_buffer(page: &[u8]) -> [u8; INQ_BUFF_LEN] {
    let mut buf = [0u8; INQ_BUFF_LEN];
    let n = page.len().min(INQ_BUFF_LEN);
    buf[..n].copy_from_slice(&page[..n]);
    buf
}

/// Bytes up to the first NUL, as a C string reads them.
fn c_str(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(c_str(bytes)).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The unit serial number of VPD page 0x80, as `scsi_id` copies it (`None` unless the page
/// code matches).
pub fn page80_serial(page: &[u8]) -> Option<String> {
    let buf = inquiry_buffer(page);
    if buf[1] != 0x80 {
        return None;
    }
    let len = usize::from(buf[3]);
    if 1 + VENDOR_LEN + MODEL_LEN + len > MAX_SERIAL_LEN {
        return None;
    }
    let end = (4 + len).min(INQ_BUFF_LEN);
    Some(lossy(&buf[4..end]))
}

/// `scsi_id`'s identification of a device from its VPD pages 0x83 and 0x80 and its raw
/// INQUIRY `vendor` (8 bytes) and `model` (16 bytes): the preferred page 0x83 designator, or
/// the page 0x80 serial when page 0x83 gives none.
pub fn scsi_ident(
    page83: Option<&[u8]>,
    page80: Option<&[u8]>,
    vendor: &[u8],
    model: &[u8],
) -> ScsiIdent {
    let unit_serial = page80.and_then(page80_serial).filter(|s| !s.is_empty());
    let mut ident = page83
        .and_then(|p| page83_ident(p, vendor, model))
        .or_else(|| {
            let serial = page80_serial(page80?)?;
            let prefix = vendor_model(vendor, model)?;
            Some(ScsiIdent {
                serial: Some(format!("S{prefix}{serial}")),
                serial_short: Some(serial),
                ..ScsiIdent::default()
            })
        })
        .unwrap_or_default();
    ident.unit_serial = unit_serial;
    ident
}

/// The vendor and model fields concatenated, when both have their full width.
fn vendor_model(vendor: &[u8], model: &[u8]) -> Option<String> {
    let (vendor, model) = (c_str(vendor), c_str(model));
    (vendor.len() == VENDOR_LEN && model.len() == MODEL_LEN)
        .then(|| format!("{}{}", lossy(vendor), lossy(model)))
}

/// The identification from page 0x83 alone.
fn page83_ident(page: &[u8], vendor: &[u8], model: &[u8]) -> Option<ScsiIdent> {
    let buf = inquiry_buffer(page);
    if buf[1] != 0x83 {
        return None;
    }
    if buf[6] != 0 {
        // A SCSI-2 style page (old EMC Symmetrix): the bytes after the header are the id.
        let len = usize::from(buf[3]).min((MAX_SERIAL_LEN - 4) / 2);
        let end = (4 + len).min(INQ_BUFF_LEN);
        let serial = format!("3{}", hex(&buf[4..end]));
        return Some(ScsiIdent {
            serial: Some(serial.clone()),
            serial_short: Some(serial),
            ..ScsiIdent::default()
        });
    }
    let page_end = ((usize::from(buf[2]) << 8) | usize::from(buf[3])) + 3;
    for &(id_type, naa, code_set) in SEARCH_ORDER {
        let mut j = 4;
        while j <= page_end && j + 4 < INQ_BUFF_LEN {
            let desc = &buf[j..];
            if let Some(found) = designator(desc, id_type, naa, code_set, vendor, model) {
                return Some(found);
            }
            j += usize::from(desc[3]) + 4;
        }
    }
    None
}

/// `scsi_id`'s check of one designator (`desc` starts at its header) against one entry of
/// the search order.
fn designator(
    desc: &[u8],
    id_type: u8,
    naa: Option<u8>,
    code_set: u8,
    vendor: &[u8],
    model: &[u8],
) -> Option<ScsiIdent> {
    let association = desc[1] & 0x30;
    if association == 0x10 {
        if id_type != ID_TGTGROUP {
            return None;
        }
    } else if association != 0 {
        return None;
    }
    if desc[1] & 0x0f != id_type || desc[0] & 0x0f != code_set {
        return None;
    }
    if naa.is_some_and(|n| n != desc[4] >> 4) {
        return None;
    }
    let id_len = usize::from(desc[3]);
    let mut need = if code_set == ASCII {
        id_len
    } else {
        id_len * 2
    } + 2;
    if id_type == ID_VENDOR_SPECIFIC {
        need += VENDOR_LEN + MODEL_LEN;
    }
    if need > MAX_SERIAL_LEN || id_type == ID_TGTGROUP {
        // Target port groups only feed ID_TARGET_PORT; the search goes on.
        return None;
    }
    let prefix = if id_type == ID_VENDOR_SPECIFIC {
        vendor_model(vendor, model)?
    } else {
        String::new()
    };
    let end = (4 + id_len).min(desc.len());
    let id = &desc[4..end];
    let short = if code_set == ASCII {
        lossy(id)
    } else {
        hex(id)
    };
    let short = format!("{prefix}{short}");
    let type_digit = char::from(b"0123456789abcdef"[usize::from(id_type)]);
    let serial = format!("{type_digit}{short}");
    // serial_short is the identifier after the type digit and the vendor/model prefix.
    let short = short[prefix.len()..].to_string();
    let (wwn, ext) = if id_type == ID_NAA {
        let wwn: String = short.chars().take(16).collect();
        let ext: String = short.chars().skip(16).take(16).collect();
        (Some(wwn), (!ext.is_empty()).then_some(ext))
    } else {
        (None, None)
    };
    Some(ScsiIdent {
        serial: Some(serial),
        serial_short: Some(short),
        wwn: wwn.filter(|w| !w.is_empty()),
        wwn_vendor_extension: ext,
        unit_serial: None,
    })
}

/// What `ata_id` reads from ATA IDENTIFY DEVICE data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AtaIdent {
    /// Model (words 27-46), still padded.
    pub model: String,
    /// Serial number (words 10-19), still padded.
    pub serial: String,
    /// The NAA 5 world wide name (words 108-111), when the device reports one.
    pub wwn: Option<u64>,
}

/// The IDENTIFY data inside VPD page 0x89 (ATA Information, from libata's SAT layer):
/// 512 bytes at offset 60.
pub fn page89_identify(page: &[u8]) -> Option<&[u8]> {
    if page.get(1) != Some(&0x89) {
        return None;
    }
    page.get(60..60 + 512)
}

/// Parses 512 bytes of IDENTIFY DEVICE data (little-endian words; strings stored with the
/// two bytes of each word swapped).
pub fn ata_identify(identify: &[u8]) -> Option<AtaIdent> {
    if identify.len() < 512 {
        return None;
    }
    let word = |w: usize| u16::from_le_bytes([identify[2 * w], identify[2 * w + 1]]);
    let string = |first: usize, words: usize| -> String {
        let bytes: Vec<u8> = (first..first + words)
            .flat_map(|w| word(w).to_be_bytes())
            .collect();
        lossy(&bytes)
    };
    let wwn = (word(108) & 0xf000 == 0x5000).then(|| {
        (u64::from(word(108)) << 48)
            | (u64::from(word(109)) << 32)
            | (u64::from(word(110)) << 16)
            | u64::from(word(111))
    });
    Some(AtaIdent {
        model: string(27, 20),
        serial: string(10, 10),
        wwn,
    })
}

/// The ATA identity libata's SAT layer exposes without IDENTIFY: the serial from page 0x80,
/// the model from page 0x83's T10 vendor designator (`ATA     ` + model + serial) and the WWN
/// from its NAA 5 designator.
pub fn ata_from_sat(page83: Option<&[u8]>, page80: Option<&[u8]>) -> Option<AtaIdent> {
    let serial = page80.and_then(page80_serial)?;
    let mut ident = AtaIdent {
        serial,
        ..AtaIdent::default()
    };
    let Some(page) = page83.filter(|p| p.get(1) == Some(&0x83)) else {
        return Some(ident);
    };
    let mut j = 4;
    while let Some(header) = page.get(j..j + 4) {
        let len = usize::from(header[3]);
        let Some(body) = page.get(j + 4..j + 4 + len) else {
            break;
        };
        let (code_set, kind) = (header[0] & 0x0f, header[1] & 0x0f);
        if kind == ID_T10_VENDOR && code_set == ASCII && len >= 48 {
            if let Some(model) = body.get(8..48) {
                ident.model = lossy(model);
            }
        } else if kind == ID_NAA && code_set == BINARY && len == 8 && body[0] >> 4 == 5 {
            let mut b = [0u8; 8];
            b.copy_from_slice(body);
            ident.wwn = Some(u64::from_be_bytes(b));
        }
        j += 4 + len;
    }
    Some(ident)
}

/// udev's `util_replace_whitespace`: trims, and turns each run of inner whitespace into one
/// `_`.
pub fn replace_whitespace(s: &str) -> String {
    s.split(is_c_space)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// udev's `util_replace_chars` with no extra allowed characters: anything but ASCII letters,
/// digits, `#+-.:=@_`, `\x` escapes and multi-byte UTF-8 becomes `_`.
pub fn replace_chars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        // U+FFFD stands for bytes that were not UTF-8: udev replaces those.
        if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || (!c.is_ascii() && c != '\u{fffd}')
        {
            out.push(c);
        } else if c == '\\' && chars.peek() == Some(&'x') {
            out.push(c);
            out.push('x');
            chars.next();
        } else {
            out.push('_');
        }
    }
    out
}

/// Both clean-ups, as `scsi_id` and `ata_id` apply them to serials and models.
pub fn udev_clean(s: &str) -> String {
    replace_chars(&replace_whitespace(s))
}

#[cfg(test)]
#[path = "vpd_tests.rs"]
mod tests;
