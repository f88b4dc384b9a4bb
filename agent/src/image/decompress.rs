//! Compression sniffed from the magic bytes (gzip, zstd, xz), and the matching decoder.

use std::io::{self, BufRead, Read};

/// How the served bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed (or not a format we know: passed through as is).
    None,
    /// gzip (`1f 8b`), possibly several members.
    Gzip,
    /// zstd (`28 b5 2f fd`), possibly several frames.
    Zstd,
    /// xz (`fd 37 7a 58 5a 00`), possibly several streams.
    Xz,
}

impl Compression {
    /// Name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }
}

/// Longest magic we look at.
pub const MAGIC_LEN: usize = 6;

/// The compression whose magic starts `head`.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// A reader of the decompressed bytes of `input`.
pub fn decoder<'a, R: BufRead + 'a>(c: Compression, input: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn roundtrip(c: Compression, packed: &[u8], want: &[u8]) -> io::Result<()> {
        assert_eq!(sniff(packed), c);
        let mut out = Vec::new();
        decoder(c, packed)?.read_to_end(&mut out)?;
        assert_eq!(out, want, "{c:?}");
        Ok(())
    }

    #[test]
    fn sniffs_and_decodes_each_format_including_concatenations() -> io::Result<()> {
        let data = sample();
        let (a, b) = data.split_at(123_457);

        let gz = |part: &[u8]| -> io::Result<Vec<u8>> {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part)?;
            e.finish()
        };
        roundtrip(Compression::Gzip, &[gz(a)?, gz(b)?].concat(), &data)?;

        let zs = |part: &[u8]| zstd::stream::encode_all(part, 1);
        roundtrip(Compression::Zstd, &[zs(a)?, zs(b)?].concat(), &data)?;

        let xz = |part: &[u8]| -> io::Result<Vec<u8>> {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(part)?;
            e.finish()
        };
        roundtrip(Compression::Xz, &[xz(a)?, xz(b)?].concat(), &data)?;

        roundtrip(Compression::None, &data, &data)?;
        assert_eq!(sniff(&[0x1f]), Compression::None);
        assert_eq!(sniff(b"QFI\xfb"), Compression::None);
        Ok(())
    }

    #[test]
    fn corrupt_stream_is_an_error() {
        let mut bad = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        bad.extend_from_slice(&[0xff; 64]);
        let mut out = Vec::new();
        let r = decoder(Compression::Gzip, &bad[..]).and_then(|mut d| d.read_to_end(&mut out));
        assert!(r.is_err());
    }
}
