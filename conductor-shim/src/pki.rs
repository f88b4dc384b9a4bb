//! A tiny lab PKI for `conductor-shim pki`: a CA, a server certificate for given IPs (and
//! `localhost`) signed by it, and optionally a client certificate, all as PEM files.
//!
//! Keys are ECDSA P-256; the CA is named `conductor-shim CA <8 random hex digits>`. The CA is valid for 10 years, the leaves for 825 days, all from one
//! hour ago (clock skew between the lab's machines).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Validity of the CA certificate.
const CA_DAYS: i64 = 3650;
/// Validity of the server and client certificates (the most browsers accept).
const LEAF_DAYS: i64 = 825;

/// Errors generating or writing the files.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file exists already (nothing is overwritten, least of all a CA key).
    #[error("{0} exists already; choose another --out directory")]
    Exists(PathBuf),
    /// A file or the directory could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct CertKey {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey").finish_non_exhaustive()
    }
}

/// The generated certificates.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA (`ca.crt`, `ca.key`).
    pub ca: CertKey,
    /// The server certificate (`server.crt`, `server.key`), signed by the CA.
    pub server: CertKey,
    /// The client certificate (`client.crt`, `client.key`), signed by the CA.
    pub client: Option<CertKey>,
}

/// A distinguished name with just a common name.
fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Parameters valid from one hour ago for `days`, with a random positive serial.
fn params(cn: &str, days: i64) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = common_name(cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok(params)
}

/// A leaf certificate for `usage`, signed by `issuer`.
fn leaf(
    cn: &str,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<CertKey, rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = params(cn, LEAF_DAYS)?;
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer)?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Generates a CA, a server certificate for `ips` and `localhost`, and with `client` a client
/// certificate.
pub fn generate(ips: &[IpAddr], client: bool) -> Result<Pki, PkiError> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    // A name of its own: two lab CAs with one name make clients report a bad signature
    // instead of an unknown issuer.
    let tag: [u8; 4] = rand::random();
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let mut ca_params = params(&format!("conductor-shim CA {tag}"), CA_DAYS)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = CertKey {
        cert_pem: ca_cert.pem(),
        key_pem: ca_key.serialize_pem(),
    };
    let issuer = Issuer::new(ca_params, ca_key);
    let mut sans: Vec<SanType> = ips.iter().copied().map(SanType::IpAddress).collect();
    sans.push(SanType::DnsName("localhost".try_into()?));
    let server = leaf(
        "conductor-shim",
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    )?;
    let client = client
        .then(|| {
            leaf(
                "conductor-shim client",
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
                &issuer,
            )
        })
        .transpose()?;
    Ok(Pki { ca, server, client })
}

impl Pki {
    /// The files to write: (name, contents, mode).
    fn files(&self) -> Vec<(&'static str, &str, u32)> {
        let mut files = vec![
            ("ca.crt", self.ca.cert_pem.as_str(), 0o644),
            ("ca.key", self.ca.key_pem.as_str(), 0o600),
            ("server.crt", self.server.cert_pem.as_str(), 0o644),
            ("server.key", self.server.key_pem.as_str(), 0o600),
        ];
        if let Some(client) = &self.client {
            files.push(("client.crt", client.cert_pem.as_str(), 0o644));
            files.push(("client.key", client.key_pem.as_str(), 0o600));
        }
        files
    }

    /// Writes the files into `dir` (created if needed; keys mode 0600, certificates 0644);
    /// returns their paths. Refuses when any of them exists.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = self.files();
        if let Some((name, _, _)) = files.iter().find(|(name, _, _)| dir.join(name).exists()) {
            return Err(PkiError::Exists(dir.join(name)));
        }
        let mut written = Vec::new();
        for (name, contents, mode) in files {
            let path = dir.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut f| f.write_all(contents.as_bytes()))
                .map_err(|source| PkiError::Write {
                    path: path.clone(),
                    source,
                })?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("one PEM certificate")
    }

    fn roots(pki: &Pki) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&pki.ca.cert_pem)).expect("CA accepted");
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn verify_server(pki: &Pki, name: &str) -> Result<(), rustls::Error> {
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots(pki), provider())
                .build()
                .expect("verifier");
        let name = ServerName::try_from(name.to_string()).expect("server name");
        verifier
            .verify_server_cert(&der(&pki.server.cert_pem), &[], &name, &[], UnixTime::now())
            .map(drop)
    }

    #[test]
    fn server_certificate_verifies_against_the_ca_for_its_ips_and_localhost() {
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "fd00::5".parse().unwrap()];
        let pki = generate(&ips, false).unwrap();
        assert!(pki.client.is_none());
        verify_server(&pki, "127.0.0.1").unwrap();
        verify_server(&pki, "fd00::5").unwrap();
        verify_server(&pki, "localhost").unwrap();
        let other = verify_server(&pki, "192.0.2.1").unwrap_err();
        assert!(
            matches!(
                other,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{other:?}"
        );
        // Another CA's server certificate is refused.
        let stranger = generate(&ips, false).unwrap();
        let refused = verify_server(
            &Pki {
                server: stranger.server,
                ..pki.clone()
            },
            "127.0.0.1",
        )
        .unwrap_err();
        assert_eq!(
            refused,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn client_certificate_verifies_against_the_ca() {
        let pki = generate(&["10.0.0.1".parse().unwrap()], true).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&pki), provider())
                .build()
                .unwrap();
        let client = pki.client.as_ref().unwrap();
        verifier
            .verify_client_cert(&der(&client.cert_pem), &[], UnixTime::now())
            .unwrap();
        // The server certificate is not a client certificate.
        assert!(
            verifier
                .verify_client_cert(&der(&pki.server.cert_pem), &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn write_creates_the_files_with_private_keys_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pki");
        let pki = generate(&["127.0.0.1".parse().unwrap()], true).unwrap();
        let written = pki.write(&out).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "server.crt",
                "server.key",
                "client.crt",
                "client.key"
            ]
        );
        let mode = |n: &str| std::fs::metadata(out.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("server.key"), 0o600);
        assert_eq!(mode("client.key"), 0o600);
        let ca_before = std::fs::read_to_string(out.join("ca.key")).unwrap();
        assert_eq!(ca_before, pki.ca.key_pem);
        let again = generate(&["127.0.0.1".parse().unwrap()], false).unwrap();
        let err = again.write(&out).unwrap_err();
        assert!(matches!(err, PkiError::Exists(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(out.join("ca.key")).unwrap(),
            ca_before
        );
    }
}
