//! The 48-byte SNTPv4 packet (RFC 4330): building a client request and checking a reply.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::NtpError;

/// Length of an NTP packet without extension fields or MAC.
pub const PACKET_LEN: usize = 48;

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: seconds since 1900 and a 32-bit binary fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `t` as an NTP timestamp (times before 1970 become 0).
    pub fn from_system(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }

    /// Nanoseconds since the Unix epoch, RFC 4330 §3 era rule: a seconds value with its top bit
    /// clear is taken to be after 2036 (era 1).
    pub fn unix_nanos(self) -> i128 {
        let secs = self.0 >> 32;
        let frac = self.0 & 0xffff_ffff;
        let secs = if secs & 0x8000_0000 == 0 {
            secs + (1 << 32)
        } else {
            secs
        };
        let nanos = ((frac * 1_000_000_000) >> 32) as i128;
        (i128::from(secs) - i128::from(NTP_UNIX_OFFSET)) * 1_000_000_000 + nanos
    }

    fn read(buf: &[u8], at: usize) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[at..at + 8]);
        Self(u64::from_be_bytes(b))
    }
}

/// `t` as nanoseconds since the Unix epoch (negative before it).
pub fn system_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `t` moved by `nanos` (saturating at the epoch for absurd negative offsets).
pub fn shift(t: SystemTime, nanos: i128) -> SystemTime {
    let magnitude = Duration::from_nanos(u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX));
    if nanos >= 0 {
        t.checked_add(magnitude).unwrap_or(t)
    } else {
        t.checked_sub(magnitude)
            .filter(|s| *s >= UNIX_EPOCH)
            .unwrap_or(UNIX_EPOCH)
    }
}

/// A client (mode 3, version 4) request whose transmit timestamp is `transmit`.
pub fn request(transmit: Timestamp) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = (4 << 3) | 3;
    p[40..48].copy_from_slice(&transmit.0.to_be_bytes());
    p
}

/// The fields of an accepted server reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Stratum (1..=15).
    pub stratum: u8,
    /// When the server received the request (T2).
    pub receive: Timestamp,
    /// When the server sent the reply (T3).
    pub transmit: Timestamp,
}

/// Checks `buf` as the answer to a request sent with transmit timestamp `sent`: length, mode 4,
/// leap indicator not 3 (unsynchronised), stratum 1..=15 (0 is a kiss-of-death whose code is
/// reported), origin timestamp equal to `sent`, non-zero transmit timestamp.
pub fn parse_reply(buf: &[u8], sent: Timestamp) -> Result<Reply, NtpError> {
    if buf.len() < PACKET_LEN {
        return Err(NtpError::Malformed(format!(
            "{} bytes, expected at least {PACKET_LEN}",
            buf.len()
        )));
    }
    let leap = buf[0] >> 6;
    let mode = buf[0] & 7;
    let stratum = buf[1];
    if mode != 4 {
        return Err(NtpError::Malformed(format!(
            "mode {mode}, expected 4 (server)"
        )));
    }
    if stratum == 0 {
        let code: String = buf[12..16]
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect();
        return Err(NtpError::KissOfDeath(code));
    }
    if stratum > 15 {
        return Err(NtpError::Unsynchronised(format!("stratum {stratum}")));
    }
    if leap == 3 {
        return Err(NtpError::Unsynchronised("leap indicator 3".into()));
    }
    if Timestamp::read(buf, 24) != sent {
        return Err(NtpError::OriginMismatch);
    }
    let transmit = Timestamp::read(buf, 40);
    if transmit.0 == 0 {
        return Err(NtpError::Malformed("zero transmit timestamp".into()));
    }
    Ok(Reply {
        stratum,
        receive: Timestamp::read(buf, 32),
        transmit,
    })
}

/// The clock offset in nanoseconds, `((T2 - T1) + (T3 - T4)) / 2`.
pub fn offset_nanos(t1: i128, reply: &Reply, t4: i128) -> i128 {
    ((reply.receive.unix_nanos() - t1) + (reply.transmit.unix_nanos() - t4)) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_800_000_000, 250_000_000);
        let ts = Timestamp::from_system(t);
        let back = ts.unix_nanos();
        assert!((back - system_nanos(t)).abs() < 2, "{back}");
        assert_eq!(ts.0 >> 32, 1_800_000_000 + NTP_UNIX_OFFSET);
    }

    #[test]
    fn after_2036_is_era_one() {
        // 2040-01-01 wraps the 32-bit seconds field.
        let t = UNIX_EPOCH + Duration::from_secs(2_208_988_800);
        let ts = Timestamp::from_system(t);
        assert_eq!(ts.unix_nanos(), system_nanos(t));
    }

    #[test]
    fn shift_both_ways() {
        let t = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(
            shift(t, 5_000_000_000),
            UNIX_EPOCH + Duration::from_secs(105)
        );
        assert_eq!(
            shift(t, -5_000_000_000),
            UNIX_EPOCH + Duration::from_secs(95)
        );
        assert_eq!(shift(t, -500_000_000_000), UNIX_EPOCH);
    }

    #[test]
    fn short_and_client_packets_are_refused() {
        let sent = Timestamp(42);
        assert!(matches!(
            parse_reply(&[0; 10], sent),
            Err(NtpError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply(&request(sent), sent),
            Err(NtpError::Malformed(_))
        ));
    }
}
