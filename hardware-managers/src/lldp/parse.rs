//! The LLDPDU wire format: TLVs with a 7-bit type and a 9-bit length.

use super::{LLDP_ETHERTYPE, LLDP_MULTICAST, tlv_type};

/// The IEEE 802.1 OUI of organizationally specific TLVs.
const IEEE_8021_OUI: [u8; 3] = [0x00, 0x80, 0xc2];
/// The IEEE 802.1 subtype "VLAN name".
const SUBTYPE_VLAN_NAME: u8 = 3;
/// Longest value a TLV can carry (9-bit length).
const MAX_TLV_VALUE: usize = 511;

/// Longest LLDPDU [`parse_lldpdu`] accepts (a jumbo frame's payload).
pub const MAX_LLDPDU_LEN: usize = 9000;

/// One TLV of an LLDPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LldpTlv {
    /// The 7-bit TLV type (0 = End, 127 = organizationally specific).
    pub tlv_type: u8,
    /// The value bytes (at most 511).
    pub value: Vec<u8>,
}

/// Why an LLDPDU could not be read or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LldpError {
    /// A TLV claims more bytes than the frame holds.
    #[error("LLDP TLV at offset {offset} claims {length} bytes, {available} left")]
    Truncated {
        /// Offset of the TLV header in the LLDPDU.
        offset: usize,
        /// The length field.
        length: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// The LLDPDU is longer than [`MAX_LLDPDU_LEN`].
    #[error("LLDPDU of {0} bytes is too long")]
    TooLong(usize),
    /// A TLV to encode has a type above 127 or a value above 511 bytes.
    #[error("TLV type {tlv_type} with {length} bytes cannot be encoded")]
    Unencodable {
        /// The type.
        tlv_type: u8,
        /// The value length.
        length: usize,
    },
}

/// Splits an LLDPDU (the Ethernet payload after destination, source and ethertype) into TLVs.
///
/// Reading stops after the End TLV (type 0, kept in the result as IPA does) or when fewer than
/// two bytes remain (a missing End TLV or one stray byte is tolerated, as IPA does); padding
/// after End is ignored. A TLV whose length runs past the end is an error.
pub fn parse_lldpdu(payload: &[u8]) -> Result<Vec<LldpTlv>, LldpError> {
    if payload.len() > MAX_LLDPDU_LEN {
        return Err(LldpError::TooLong(payload.len()));
    }
    let mut tlvs = Vec::new();
    let mut offset = 0;
    while let Some(&[hi, lo]) = payload.get(offset..offset + 2) {
        let header = u16::from_be_bytes([hi, lo]);
        // 7-bit type: the u16 shifted right by 9 always fits a u8.
        let tlv_type = (header >> 9) as u8;
        let length = usize::from(header & 0x01ff);
        let start = offset + 2;
        let Some(value) = payload.get(start..start + length) else {
            return Err(LldpError::Truncated {
                offset,
                length,
                available: payload.len() - start,
            });
        };
        tlvs.push(LldpTlv {
            tlv_type,
            value: value.to_vec(),
        });
        offset = start + length;
        if tlv_type == tlv_type::END {
            break;
        }
    }
    Ok(tlvs)
}

/// The VLAN ids announced in IEEE 802.1 "VLAN name" TLVs (type 127, OUI 00:80:c2, subtype 3,
/// then a 2-byte VLAN id), in order, without duplicates; ids outside 1..=4094 are skipped.
pub fn vlan_ids(tlvs: &[LldpTlv]) -> Vec<u16> {
    let mut ids = Vec::new();
    for tlv in tlvs.iter().filter(|t| t.tlv_type == tlv_type::ORG_SPECIFIC) {
        let Some(&[o1, o2, o3, subtype, hi, lo]) = tlv.value.get(..6) else {
            continue;
        };
        if [o1, o2, o3] != IEEE_8021_OUI || subtype != SUBTYPE_VLAN_NAME {
            continue;
        }
        let id = u16::from_be_bytes([hi, lo]);
        if (1..=4094).contains(&id) && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The inventory form of TLVs: `(type, lower-case hex of the value)`, IPA's `lldp` field.
pub fn to_inventory(tlvs: &[LldpTlv]) -> Vec<(u8, String)> {
    tlvs.iter()
        .map(|t| {
            let hex = t.value.iter().map(|b| format!("{b:02x}")).collect();
            (t.tlv_type, hex)
        })
        .collect()
}

/// An IEEE 802.1 "VLAN name" TLV for `vid` named `name` (truncated to 32 bytes).
pub fn vlan_name_tlv(vid: u16, name: &str) -> LldpTlv {
    let name = &name.as_bytes()[..name.len().min(32)];
    let mut value = IEEE_8021_OUI.to_vec();
    value.push(SUBTYPE_VLAN_NAME);
    value.extend_from_slice(&vid.to_be_bytes());
    // The name length fits a byte: at most 32.
    value.push(name.len() as u8);
    value.extend_from_slice(name);
    LldpTlv {
        tlv_type: tlv_type::ORG_SPECIFIC,
        value,
    }
}

/// Encodes TLVs as an LLDPDU; an End TLV is appended unless the last one is already End.
pub fn encode_lldpdu(tlvs: &[LldpTlv]) -> Result<Vec<u8>, LldpError> {
    let mut out = Vec::new();
    for t in tlvs {
        if t.tlv_type > 127 || t.value.len() > MAX_TLV_VALUE {
            return Err(LldpError::Unencodable {
                tlv_type: t.tlv_type,
                length: t.value.len(),
            });
        }
        // Checked above: 7 + 9 bits.
        let header = (u16::from(t.tlv_type) << 9) | t.value.len() as u16;
        out.extend_from_slice(&header.to_be_bytes());
        out.extend_from_slice(&t.value);
    }
    if tlvs.last().is_none_or(|t| t.tlv_type != tlv_type::END) {
        out.extend_from_slice(&[0, 0]);
    }
    Ok(out)
}

/// A whole Ethernet frame from `source` to the LLDP multicast address carrying `tlvs`,
/// padded to the 60-byte minimum.
pub fn lldp_frame(source: [u8; 6], tlvs: &[LldpTlv]) -> Result<Vec<u8>, LldpError> {
    let mut frame = LLDP_MULTICAST.to_vec();
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&LLDP_ETHERTYPE.to_be_bytes());
    frame.extend(encode_lldpdu(tlvs)?);
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    Ok(frame)
}
