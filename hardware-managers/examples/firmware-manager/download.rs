//! Downloading a firmware file over http(s) while hashing it, and checking its checksum.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256, Sha512};
use tempfile::NamedTempFile;

use crate::PluginError;
use crate::config::Config;

/// A checksum algorithm the step accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256 (64 hex digits).
    Sha256,
    /// SHA-512 (128 hex digits).
    Sha512,
}

/// An expected checksum, `sha256:HEX` or `sha512:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Lower-case hex digest.
    pub hex: String,
}

impl Checksum {
    /// Parses `sha256:HEX` / `sha512:HEX` (hex in either case).
    pub fn parse(text: &str) -> Result<Checksum, PluginError> {
        let bad = |why: &str| {
            PluginError::InvalidArgs(format!(
                "update_firmware: `checksum` must be sha256:HEX or sha512:HEX, got {text:?} ({why})"
            ))
        };
        let (algo, hex) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| bad("no algorithm prefix"))?;
        let (algorithm, digits) = match algo.to_ascii_lowercase().as_str() {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return Err(bad("unsupported algorithm")),
        };
        if hex.len() != digits || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(&format!("expected {digits} hex digits")));
        }
        Ok(Checksum {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }

    fn name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// A verified firmware file; removed when dropped.
#[derive(Debug)]
pub struct Firmware {
    /// The file (deleted on drop).
    pub file: NamedTempFile,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Firmware {
    /// Path of the downloaded file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn client(config: &Config) -> Result<reqwest::blocking::Client, PluginError> {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(config.download_timeout())
        .connect_timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("firmware-manager/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &config.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            PluginError::Config(format!("cannot read ca_file {}: {e}", ca.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| PluginError::Config(format!("ca_file {}: {e}", ca.display())))?;
        builder = builder.tls_certs_merge(certs);
    }
    if config.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| PluginError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Downloads `url` into the download directory and verifies it against `want`. On a mismatch
/// the file is removed and a `FirmwareChecksumError` returned.
pub fn fetch(
    config: &Config,
    url: &reqwest::Url,
    want: &Checksum,
) -> Result<Firmware, PluginError> {
    let failed = |why: String| PluginError::Download(format!("downloading {url} failed: {why}"));
    let mut response = client(config)?
        .get(url.clone())
        .send()
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let dir = config.download_dir();
    let mut file = tempfile::Builder::new()
        .prefix("firmware-")
        .suffix(".bin")
        .tempfile_in(&dir)
        .map_err(|e| failed(format!("cannot create a file in {}: {e}", dir.display())))?;
    let mut sha256 = Sha256::new();
    let mut sha512 = (want.algorithm == Algorithm::Sha512).then(Sha512::new);
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(e.to_string())),
        };
        size += n as u64;
        if size > config.max_size_bytes {
            return Err(failed(format!(
                "larger than max_size_bytes ({})",
                config.max_size_bytes
            )));
        }
        sha256.update(&buf[..n]);
        if let Some(h) = sha512.as_mut() {
            h.update(&buf[..n]);
        }
        file.write_all(&buf[..n])
            .map_err(|e| failed(format!("writing {}: {e}", file.path().display())))?;
    }
    file.as_file()
        .sync_all()
        .map_err(|e| failed(format!("syncing {}: {e}", file.path().display())))?;
    let sha256 = hex(&sha256.finalize());
    let got = match sha512 {
        Some(h) => hex(&h.finalize()),
        None => sha256.clone(),
    };
    if got != want.hex {
        // `file` is dropped (deleted) on return.
        return Err(PluginError::Checksum(format!(
            "checksum mismatch for {url}: expected {algo}:{}, got {algo}:{got}; the file was \
             removed and the flasher was not run",
            want.hex,
            algo = want.name()
        )));
    }
    eprintln!("firmware-manager: downloaded {url}: {size} bytes, sha256 {sha256}");
    Ok(Firmware { file, sha256, size })
}
