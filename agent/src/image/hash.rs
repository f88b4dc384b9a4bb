//! Incremental hashing of the bytes as downloaded (before decompression).

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

use super::checksum::HashAlgo;

/// A running digest of one of the supported algorithms.
#[derive(Clone)]
pub struct Hasher {
    algo: HashAlgo,
    state: State,
}

#[derive(Clone)]
enum State {
    Md5(Md5),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("algo", &self.algo).finish()
    }
}

impl Hasher {
    /// A fresh digest for `algo`.
    pub fn new(algo: HashAlgo) -> Self {
        let state = match algo {
            HashAlgo::Md5 => State::Md5(Md5::new()),
            HashAlgo::Sha256 => State::Sha256(Sha256::new()),
            HashAlgo::Sha512 => State::Sha512(Sha512::new()),
        };
        Hasher { algo, state }
    }

    /// The algorithm.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Md5(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Sha512(h) => h.update(data),
        }
    }

    /// The lowercase hex digest.
    pub fn finish_hex(self) -> String {
        match self.state {
            State::Md5(h) => to_hex(&h.finalize()),
            State::Sha256(h) => to_hex(&h.finalize()),
            State::Sha512(h) => to_hex(&h.finalize()),
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let cases = [
            (HashAlgo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                HashAlgo::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlgo::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algo, want) in cases {
            let mut h = Hasher::new(algo);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.finish_hex(), want, "{algo:?}");
        }
    }
}
