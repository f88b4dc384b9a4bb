//! TLS: the auto-TLS certificate and server context, and the outbound client context.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Errors building TLS contexts.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("generating the auto-TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A CA file could not be read or parsed.
    #[error("reading CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// `tls_min_version` was not 1.2 or 1.3.
    #[error("unsupported TLS minimum version `{0}` (want 1.2 or 1.3)")]
    Version(String),
}

/// A generated self-signed certificate.
#[derive(Clone)]
pub struct AutoCert {
    /// PEM text sent to Ironic as `agent_verify_ca` (identical in every heartbeat).
    pub pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for AutoCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoCert").finish_non_exhaustive()
    }
}

/// IPA's auto-TLS certificate: EC P-384 key, subject = issuer = `CN=<hostname>`, SubjectAltName
/// = the advertise IP only, random serial, valid from one hour ago for 30 days.
pub fn generate_cert(ip: IpAddr, hostname: &str) -> Result<AutoCert, TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        if hostname.is_empty() {
            "ironic-agent"
        } else {
            hostname
        },
    );
    params.distinguished_name = dn;
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(ip)];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(30);
    let serial: [u8; 16] = rand::random();
    // A positive serial: clear the top bit.
    let mut serial = serial;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key)?;
    Ok(AutoCert {
        pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    })
}

/// The ring provider with TLS 1.2 limited to ECDHE + AES-GCM (IPA's cipher list).
fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(t) => {
            let name = format!("{:?}", t.common.suite);
            name.contains("_AES_") && name.contains("_GCM_")
        }
    });
    p
}

/// TLS 1.3 only.
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(min: &str) -> Result<&'static [&'static rustls::SupportedProtocolVersion], TlsError> {
    match min {
        "1.2" => Ok(rustls::ALL_VERSIONS),
        "1.3" => Ok(TLS13_ONLY),
        other => Err(TlsError::Version(other.to_string())),
    }
}

/// Server context for `cert`, accepting TLS versions from `min_version` (`1.2` or `1.3`) up.
pub fn server_config(
    cert: &AutoCert,
    min_version: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions(min_version)?)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert_der.clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client context for outbound HTTPS: system roots plus `cafile`, or no verification at all
/// with `insecure`.
pub fn client_config(
    insecure: bool,
    cafile: Option<&Path>,
    min_version: &str,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(min_version)?)?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = cafile {
            let ca_err = |message: String| TlsError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificates found".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// Accepts any server certificate (`--insecure` / `ipa-insecure`).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_has_ip_san_and_builds_server_contexts() -> anyhow::Result<()> {
        let ip: IpAddr = "192.0.2.10".parse()?;
        let c = generate_cert(ip, "node-1")?;
        assert!(c.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&c, "1.3")?;
        server_config(&c, "1.2")?;
        assert!(server_config(&c, "1.1").is_err());
        // The certificate verifies for its IP with only itself as the root.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(c.cert_der.clone())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(provider()),
        )
        .build()?;
        let name = ServerName::IpAddress(ip.into());
        verifier.verify_server_cert(&c.cert_der, &[], &name, &[], UnixTime::now())?;
        let other = ServerName::IpAddress("192.0.2.11".parse::<IpAddr>()?.into());
        assert!(
            verifier
                .verify_server_cert(&c.cert_der, &[], &other, &[], UnixTime::now())
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn client_configs() -> anyhow::Result<()> {
        client_config(true, None, "1.2")?;
        client_config(false, None, "1.3")?;
        let dir = tempfile::tempdir()?;
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a pem")?;
        assert!(client_config(false, Some(&bad), "1.2").is_err());
        Ok(())
    }
}
