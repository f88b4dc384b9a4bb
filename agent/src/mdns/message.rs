//! A bounded DNS message encoder and decoder (RFC 1035 with RFC 6762's mDNS bits) for the
//! record types service discovery needs: A, AAAA, PTR, SRV, TXT; other types are kept as raw
//! data. Decoding never panics: every read is checked, name compression pointers must point
//! strictly backwards (so they cannot loop), names are at most 255 bytes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type PTR.
pub const TYPE_PTR: u16 = 12;
/// Record type TXT.
pub const TYPE_TXT: u16 = 16;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// Record type SRV.
pub const TYPE_SRV: u16 = 33;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// The top bit of a question's class: "unicast response wanted" (RFC 6762 §5.4); of a
/// record's class: "cache flush" (§10.2).
pub const CLASS_TOP_BIT: u16 = 0x8000;
/// The QR bit of the header flags (a response).
pub const FLAG_RESPONSE: u16 = 0x8000;
/// The AA bit of the header flags.
pub const FLAG_AUTHORITATIVE: u16 = 0x0400;

/// Longest encoded name (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// Longest label.
const MAX_LABEL: usize = 63;
/// Longest message we build or accept (mDNS allows up to 9000 bytes, §17).
pub const MAX_MESSAGE: usize = 9000;

/// Why a message could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The data ended early.
    #[error("DNS message truncated at byte {0}")]
    Truncated(usize),
    /// A name is invalid (too long, bad label, forward or looping pointer).
    #[error("bad DNS name at byte {0}: {1}")]
    BadName(usize, &'static str),
    /// A record's data does not fit its type or length.
    #[error("bad DNS record data at byte {0}")]
    BadRecord(usize),
    /// The message would be larger than [`MAX_MESSAGE`], or a field overflows.
    #[error("DNS message too large")]
    TooLarge,
}

/// A domain name as its labels (raw bytes: DNS-SD instance names may hold any UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name(pub Vec<Vec<u8>>);

impl Name {
    /// `a.b.c` (a trailing dot is ignored). Labels are split on dots.
    pub fn parse(text: &str) -> Self {
        Self(
            text.trim_end_matches('.')
                .split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect(),
        )
    }

    /// Case-insensitive (ASCII) equality, as DNS compares names.
    pub fn same(&self, other: &Name) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// Encoded length (labels plus their length bytes plus the root).
    fn wire_len(&self) -> usize {
        self.0.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }
}

impl fmt::Display for Name {
    /// Dotted, with a trailing dot (`ironic.local.`); the root is `.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for l in &self.0 {
            write!(f, "{}.", String::from_utf8_lossy(l))?;
        }
        Ok(())
    }
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Owner name.
    pub name: Name,
    /// Type.
    pub qtype: u16,
    /// Class, with the unicast-response bit.
    pub qclass: u16,
}

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Pointer to a name (service instance).
    Ptr(Name),
    /// Service location.
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Host name.
        target: Name,
    },
    /// Character strings.
    Txt(Vec<Vec<u8>>),
    /// Any other type, raw.
    Other(Vec<u8>),
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// Type.
    pub rtype: u16,
    /// Class, with the cache-flush bit.
    pub class: u16,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Data.
    pub data: RData,
}

/// A DNS message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Transaction id (0 for multicast queries).
    pub id: u16,
    /// Header flags.
    pub flags: u16,
    /// Questions.
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
    /// Additional section.
    pub additionals: Vec<Record>,
}

impl Message {
    /// Every record of all three sections.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.answers
            .iter()
            .chain(&self.authorities)
            .chain(&self.additionals)
    }

    /// Decodes `buf`.
    ///
    /// # Errors
    /// [`MessageError`] for anything malformed or beyond the bounds.
    pub fn decode(buf: &[u8]) -> Result<Self, MessageError> {
        if buf.len() > MAX_MESSAGE {
            return Err(MessageError::TooLarge);
        }
        let mut r = Reader { buf, pos: 0 };
        let id = r.u16()?;
        let flags = r.u16()?;
        let qd = r.u16()?;
        let an = r.u16()?;
        let ns = r.u16()?;
        let ar = r.u16()?;
        let mut m = Message {
            id,
            flags,
            ..Message::default()
        };
        for _ in 0..qd {
            let name = r.name()?;
            let qtype = r.u16()?;
            let qclass = r.u16()?;
            m.questions.push(Question {
                name,
                qtype,
                qclass,
            });
        }
        for (count, section) in [
            (an, &mut m.answers),
            (ns, &mut m.authorities),
            (ar, &mut m.additionals),
        ] {
            for _ in 0..count {
                section.push(r.record()?);
            }
        }
        Ok(m)
    }

    /// Encodes the message, compressing repeated name suffixes.
    ///
    /// # Errors
    /// [`MessageError::BadName`] for an empty or over-long label or name,
    /// [`MessageError::TooLarge`] past [`MAX_MESSAGE`] or 65535 entries in a section.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut w = Writer::default();
        w.u16(self.id);
        w.u16(self.flags);
        for n in [
            self.questions.len(),
            self.answers.len(),
            self.authorities.len(),
            self.additionals.len(),
        ] {
            w.u16(u16::try_from(n).map_err(|_| MessageError::TooLarge)?);
        }
        for q in &self.questions {
            w.name(&q.name)?;
            w.u16(q.qtype);
            w.u16(q.qclass);
        }
        for rec in self.records() {
            w.record(rec)?;
        }
        if w.buf.len() > MAX_MESSAGE {
            return Err(MessageError::TooLarge);
        }
        Ok(w.buf)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MessageError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(MessageError::Truncated(self.pos))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(MessageError::Truncated(self.pos))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name at the cursor, following compression pointers (each strictly before the label
    /// that holds it); the cursor ends after the name's first pointer or its root label.
    fn name(&mut self) -> Result<Name, MessageError> {
        let mut labels = Vec::new();
        let mut total = 1usize;
        let mut at = self.pos;
        let mut resume = None;
        loop {
            let len = *self.buf.get(at).ok_or(MessageError::Truncated(at))?;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        self.pos = resume.unwrap_or(at + 1);
                        return Ok(Name(labels));
                    }
                    let len = usize::from(len);
                    total += len + 1;
                    if total > MAX_NAME {
                        return Err(MessageError::BadName(at, "name longer than 255 bytes"));
                    }
                    let label = self
                        .buf
                        .get(at + 1..at + 1 + len)
                        .ok_or(MessageError::Truncated(at))?;
                    labels.push(label.to_vec());
                    at += 1 + len;
                }
                0xc0 => {
                    let low = *self.buf.get(at + 1).ok_or(MessageError::Truncated(at))?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                    if target >= at {
                        return Err(MessageError::BadName(at, "pointer does not point back"));
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(MessageError::BadName(at, "reserved label type")),
            }
        }
    }

    fn record(&mut self) -> Result<Record, MessageError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlen = usize::from(self.u16()?);
        let start = self.pos;
        let end = start + rdlen;
        if end > self.buf.len() {
            return Err(MessageError::Truncated(start));
        }
        let data = match rtype {
            TYPE_A => {
                let b = self.take(rdlen)?;
                let b: [u8; 4] = b.try_into().map_err(|_| MessageError::BadRecord(start))?;
                RData::A(Ipv4Addr::from(b))
            }
            TYPE_AAAA => {
                let b = self.take(rdlen)?;
                let b: [u8; 16] = b.try_into().map_err(|_| MessageError::BadRecord(start))?;
                RData::Aaaa(Ipv6Addr::from(b))
            }
            TYPE_PTR => RData::Ptr(self.name()?),
            TYPE_SRV => RData::Srv {
                priority: self.u16()?,
                weight: self.u16()?,
                port: self.u16()?,
                target: self.name()?,
            },
            TYPE_TXT => {
                let mut strings = Vec::new();
                while self.pos < end {
                    let n = usize::from(self.u8()?);
                    strings.push(self.take(n)?.to_vec());
                }
                RData::Txt(strings)
            }
            _ => RData::Other(self.take(rdlen)?.to_vec()),
        };
        if self.pos != end {
            return Err(MessageError::BadRecord(start));
        }
        Ok(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    /// Offsets of name suffixes already written (exact labels, so decoding gives back the
    /// same spelling).
    suffixes: Vec<(Vec<Vec<u8>>, usize)>,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &Name) -> Result<(), MessageError> {
        if name.wire_len() > MAX_NAME {
            return Err(MessageError::BadName(
                self.buf.len(),
                "name longer than 255 bytes",
            ));
        }
        for i in 0..name.0.len() {
            let suffix = name.0[i..].to_vec();
            if let Some((_, off)) = self.suffixes.iter().find(|(s, _)| *s == suffix) {
                // Offsets past 0x3fff cannot be pointed to; they are never recorded below.
                self.u16(0xc000 | *off as u16);
                return Ok(());
            }
            let label = &name.0[i];
            if label.is_empty() || label.len() > MAX_LABEL {
                return Err(MessageError::BadName(self.buf.len(), "empty or long label"));
            }
            if self.buf.len() <= 0x3fff {
                self.suffixes.push((suffix, self.buf.len()));
            }
            self.buf.push(label.len() as u8);
            self.buf.extend_from_slice(label);
        }
        self.buf.push(0);
        Ok(())
    }

    fn record(&mut self, r: &Record) -> Result<(), MessageError> {
        self.name(&r.name)?;
        self.u16(r.rtype);
        self.u16(r.class);
        self.buf.extend_from_slice(&r.ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.u16(0);
        match &r.data {
            RData::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Ptr(n) => self.name(n)?,
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                self.name(target)?;
            }
            RData::Txt(strings) => {
                for s in strings {
                    let n = u8::try_from(s.len()).map_err(|_| MessageError::TooLarge)?;
                    self.buf.push(n);
                    self.buf.extend_from_slice(s);
                }
            }
            RData::Other(raw) => self.buf.extend_from_slice(raw),
        }
        let rdlen =
            u16::try_from(self.buf.len() - len_at - 2).map_err(|_| MessageError::TooLarge)?;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        if self.buf.len() > MAX_MESSAGE {
            return Err(MessageError::TooLarge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let inst = Name::parse("baremetal._openstack._tcp.local.");
        Message {
            id: 0,
            flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE,
            questions: vec![Question {
                name: inst.clone(),
                qtype: TYPE_SRV,
                qclass: CLASS_IN | CLASS_TOP_BIT,
            }],
            answers: vec![
                Record {
                    name: Name::parse("_openstack._tcp.local"),
                    rtype: TYPE_PTR,
                    class: CLASS_IN,
                    ttl: 120,
                    data: RData::Ptr(inst.clone()),
                },
                Record {
                    name: inst.clone(),
                    rtype: TYPE_SRV,
                    class: CLASS_IN | CLASS_TOP_BIT,
                    ttl: 120,
                    data: RData::Srv {
                        priority: 0,
                        weight: 0,
                        port: 6385,
                        target: Name::parse("ironic.local"),
                    },
                },
                Record {
                    name: inst,
                    rtype: TYPE_TXT,
                    class: CLASS_IN,
                    ttl: 120,
                    data: RData::Txt(vec![b"path=/baremetal".to_vec(), b"flag".to_vec()]),
                },
            ],
            authorities: vec![],
            additionals: vec![
                Record {
                    name: Name::parse("ironic.local"),
                    rtype: TYPE_A,
                    class: CLASS_IN,
                    ttl: 120,
                    data: RData::A(Ipv4Addr::new(192, 0, 2, 10)),
                },
                Record {
                    name: Name::parse("IRONIC.local"),
                    rtype: TYPE_AAAA,
                    class: CLASS_IN,
                    ttl: 120,
                    data: RData::Aaaa("2001:db8::10".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
                },
                Record {
                    name: Name::parse("ironic.local"),
                    rtype: 47,
                    class: CLASS_IN,
                    ttl: 120,
                    data: RData::Other(vec![1, 2, 3]),
                },
            ],
        }
    }

    #[test]
    fn round_trip_with_compression() {
        let m = sample();
        let wire = m.encode().expect("encode");
        // "local" is written once; later names point back to it.
        assert_eq!(wire.windows(6).filter(|w| w == b"\x05local").count(), 1);
        assert_eq!(Message::decode(&wire).expect("decode"), m);
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        let mut wire = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        // A question whose name points at itself.
        wire.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            Message::decode(&wire),
            Err(MessageError::BadName(12, _))
        ));
        let mut wire = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        wire.extend_from_slice(&[0xc0, 20, 0, 1, 0, 1, 0, 0]);
        assert!(Message::decode(&wire).is_err());
    }

    #[test]
    fn truncations_never_panic() {
        let wire = sample().encode().expect("encode");
        for n in 0..wire.len() {
            assert!(Message::decode(&wire[..n]).is_err(), "prefix {n}");
        }
        // Bad rdlength for an A record.
        let mut m = sample();
        m.answers.clear();
        m.additionals.truncate(1);
        let mut wire = m.encode().expect("encode");
        let len = wire.len();
        wire[len - 6] = 0;
        wire[len - 5] = 3;
        assert!(Message::decode(&wire[..len - 1]).is_err());
    }

    #[test]
    fn long_names_are_refused() {
        let label = "a".repeat(63);
        let name = Name::parse(&[label.as_str(); 5].join("."));
        let m = Message {
            questions: vec![Question {
                name,
                qtype: TYPE_A,
                qclass: CLASS_IN,
            }],
            ..Message::default()
        };
        assert!(matches!(m.encode(), Err(MessageError::BadName(..))));
        assert_eq!(Name::parse("a.B.").to_string(), "a.B.");
        assert!(Name::parse("a.B").same(&Name::parse("A.b.")));
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    /// The fuzz seeds (`fuzz/make_seeds.py`) are valid messages that survive a round trip.
    #[test]
    fn fuzz_seeds_decode() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mdns_message");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut seen = 0;
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with("seed-") {
                continue;
            }
            seen += 1;
            let data = std::fs::read(e.path()).expect("read seed");
            let m = Message::decode(&data).unwrap_or_else(|err| panic!("{:?}: {err}", e.path()));
            let again = Message::decode(&m.encode().expect("encode")).expect("decode");
            assert_eq!(again, m);
            assert!(m.records().count() > 0 || !m.questions.is_empty());
        }
        assert!(seen >= 4, "{seen} seeds");
    }
}
