//! Ethernet frames as the switch sees them: addresses, an optional 802.1Q tag, the rest.

/// The 802.1Q tag protocol identifier.
pub const TPID_8021Q: u16 = 0x8100;
/// Shortest frame accepted (addresses and ethertype).
pub const MIN_FRAME: usize = 14;
/// Longest frame accepted (a jumbo frame with a tag).
pub const MAX_FRAME: usize = 9022;

/// A parsed frame, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// The 802.1Q tag's VLAN id, when tagged (0 for a priority tag).
    pub vid: Option<u16>,
    /// The priority bits of the tag (0 when untagged).
    pub pcp: u8,
    /// Everything after the addresses and the tag: the inner ethertype and the payload.
    pub rest: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses `bytes`; `None` for runts, oversized frames and truncated tags.
    pub fn parse(bytes: &'a [u8]) -> Option<Frame<'a>> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&bytes.len()) {
            return None;
        }
        let dst = bytes.get(0..6)?.try_into().ok()?;
        let src = bytes.get(6..12)?.try_into().ok()?;
        let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
        if ethertype == TPID_8021Q {
            let tci = u16::from_be_bytes(bytes.get(14..16)?.try_into().ok()?);
            let rest = bytes.get(16..)?;
            if rest.len() < 2 {
                return None;
            }
            // PCP is the top three bits of the TCI.
            let pcp = (tci >> 13) as u8;
            Some(Frame {
                dst,
                src,
                vid: Some(tci & 0x0fff),
                pcp,
                rest,
            })
        } else {
            Some(Frame {
                dst,
                src,
                vid: None,
                pcp: 0,
                rest: &bytes[12..],
            })
        }
    }

    /// The frame without a tag.
    pub fn untagged(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.rest.len());
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        out.extend_from_slice(self.rest);
        out
    }

    /// The frame tagged with `vid` (keeping the priority bits of an ingress tag).
    pub fn tagged(&self, vid: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.rest.len());
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        out.extend_from_slice(&TPID_8021Q.to_be_bytes());
        let tci = (u16::from(self.pcp) << 13) | (vid & 0x0fff);
        out.extend_from_slice(&tci.to_be_bytes());
        out.extend_from_slice(self.rest);
        out
    }

    /// The inner ethertype (after any tag).
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }
}

/// Whether `mac` is a group (broadcast or multicast) address.
pub fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

/// Whether `mac` is one of the IEEE 802.1D reserved addresses 01:80:c2:00:00:0X (LLDP, STP,
/// pause...), which bridges never forward.
pub fn is_link_local(mac: &[u8; 6]) -> bool {
    mac[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && mac[5] & 0xf0 == 0
}
