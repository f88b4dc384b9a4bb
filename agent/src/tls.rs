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
    /// The client certificate or key could not be read or parsed.
    #[error("reading client certificate/key {path}: {message}")]
    ClientIdentity {
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

/// The lowest TLS version the auto-TLS server accepts when lookup does not say otherwise
/// (IPA's server range is TLS 1.2–1.3).
pub const DEFAULT_SERVER_MIN_VERSION: &str = "1.2";

/// The minimum TLS version for the agent's own API from lookup's `tls_min_version`: TLS 1.3
/// only when the conductor says `1.3` (Ironic's lookup does by default), TLS 1.2
/// and up when it says `1.2` or nothing (IPA's default). An unknown value gets the strictest
/// version we serve, 1.3, with a warning.
pub fn server_min_version(from_lookup: Option<&str>) -> &'static str {
    match from_lookup.map(str::trim) {
        None | Some("1.2") => DEFAULT_SERVER_MIN_VERSION,
        Some("1.3") => "1.3",
        Some(other) => {
            tracing::warn!(
                tls_min_version = other,
                "unsupported tls_min_version from Ironic; serving TLS 1.3 only"
            );
            "1.3"
        }
    }
}

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
    client_config_with_identity(insecure, cafile, min_version, None)
}

/// A client certificate and its key (PEM files: IPA's `certfile` and `keyfile`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentityFiles<'a> {
    /// The certificate chain.
    pub certfile: &'a Path,
    /// Its private key.
    pub keyfile: &'a Path,
}

/// [`client_config`] presenting `identity` to servers that ask for a client certificate.
pub fn client_config_with_identity(
    insecure: bool,
    cafile: Option<&Path>,
    min_version: &str,
    identity: Option<ClientIdentityFiles<'_>>,
) -> Result<rustls::ClientConfig, TlsError> {
    let identity = identity.map(load_identity).transpose()?;
    let provider = Arc::new(provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(min_version)?)?;
    let config = if insecure {
        let b = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)));
        match identity {
            Some((certs, key)) => b.with_client_auth_cert(certs, key)?,
            None => b.with_no_client_auth(),
        }
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
        let b = builder.with_root_certificates(roots);
        match identity {
            Some((certs, key)) => b.with_client_auth_cert(certs, key)?,
            None => b.with_no_client_auth(),
        }
    };
    Ok(config)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load_identity(files: ClientIdentityFiles<'_>) -> Result<Identity, TlsError> {
    let err = |path: &Path, message: String| TlsError::ClientIdentity {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.certfile)
        .map_err(|e| err(files.certfile, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(files.certfile, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(files.certfile, "no certificates found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(files.keyfile)
        .map_err(|e| err(files.keyfile, e.to_string()))?;
    Ok((certs, key))
}

/// The refused-certificate reason when `e` is rustls's certificate error, directly or inside
/// `io::Error`s (which hide what they wrap from `source()`; the HTTP stack nests two).
fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = e;
    for _ in 0..8 {
        if let Some(rustls::Error::InvalidCertificate(reason)) = cur.downcast_ref::<rustls::Error>()
        {
            return Some(format!("{reason:?}"));
        }
        let inner = cur
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)?;
        cur = inner;
    }
    None
}

/// Whether the failure `e` (or one of its causes) is a server certificate that did not verify.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    error_sources(e).any(|c| certificate_problem(c).is_some())
}

/// `e` and its causes, at most 16 deep.
fn error_sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| c.source()).take(16)
}

/// The whole cause chain of an outbound connection error on one line. When the server's
/// certificate was refused, the text starts by saying so and names the two ways out
/// (`--cafile`, or `ipa-insecure=1` / `--insecure`).
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut reason = None;
    for c in error_sources(e) {
        if reason.is_none() {
            reason = certificate_problem(c);
        }
        let t = c.to_string();
        if !text.contains(&t) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&t);
        }
    }
    match reason {
        Some(r) => format!(
            "TLS certificate verification failed ({r}): {text}; give the CA that issued the \
             server's certificate with --cafile, or turn verification off with ipa-insecure=1 \
             (--insecure)"
        ),
        None => text,
    }
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

/// Test support: an HTTPS server with a self-signed certificate, for the outbound-TLS tests of
/// every client (conductor, image, config drive, `inject_files`).
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// A running test server.
    pub(crate) struct HttpsServer {
        /// `https://127.0.0.1:PORT`.
        pub url: String,
        /// Its certificate (self-signed, SubjectAltName 127.0.0.1) as PEM.
        pub ca_pem: String,
    }

    impl HttpsServer {
        /// Writes the certificate to `dir/ca.pem`, for `cafile`.
        pub(crate) fn ca_file(&self, dir: &Path) -> anyhow::Result<PathBuf> {
            let path = dir.join("ca.pem");
            std::fs::write(&path, &self.ca_pem)?;
            Ok(path)
        }
    }

    /// Serves `body` (200) to every request on 127.0.0.1 over TLS 1.2/1.3 until the process
    /// ends; one thread per connection, each bounded by 5 s socket timeouts.
    pub(crate) fn https_server(body: Vec<u8>) -> anyhow::Result<HttpsServer> {
        // A CN no real root shares (some trust stores hold a `CN=localhost` test root).
        let cert = super::generate_cert(IpAddr::V4(Ipv4Addr::LOCALHOST), "ironic-agent-test")?;
        let config = super::server_config(&cert, "1.2")?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("https://{}", listener.local_addr()?);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(tcp) = conn else { continue };
                let config = config.clone();
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
                    let Ok(session) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut stream = rustls::StreamOwned::new(session, tcp);
                    let mut reader = BufReader::new(&mut stream);
                    // The request head; a refused handshake ends here with an error.
                    for _ in 0..200 {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                    stream.conn.send_close_notify();
                    let _ = stream.flush();
                });
            }
        });
        Ok(HttpsServer {
            url,
            ca_pem: cert.pem,
        })
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
    fn the_server_serves_tls13_only_when_lookup_asks_for_it() {
        assert_eq!(server_min_version(None), "1.2");
        assert_eq!(server_min_version(Some("1.2")), "1.2");
        assert_eq!(server_min_version(Some(" 1.2 ")), "1.2");
        for other in [
            Some("1.3"),
            Some(" 1.3"),
            Some("1.1"),
            Some(""),
            Some("TLSv1.2"),
        ] {
            assert_eq!(server_min_version(other), "1.3", "{other:?}");
        }
    }

    #[test]
    fn certificate_errors_are_named_through_io_wrappers() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-util hands it over: an io::Error inside an io::Error.
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            refused,
        ));
        let text = describe_error(&wrapped);
        assert!(
            text.starts_with("TLS certificate verification failed (UnknownIssuer)"),
            "{text}"
        );
        assert!(
            text.contains("--cafile") && text.contains("ipa-insecure=1"),
            "{text}"
        );
        assert!(is_certificate_error(&wrapped));
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(describe_error(&other), "refused");
        assert!(!is_certificate_error(&other));
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

    #[test]
    fn client_identity_is_loaded() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = rcgen::CertificateParams::new(vec!["agent".to_string()])?.self_signed(&key)?;
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem())?;
        std::fs::write(&k, key.serialize_pem())?;
        let id = ClientIdentityFiles {
            certfile: &c,
            keyfile: &k,
        };
        let cfg = client_config_with_identity(false, None, "1.2", Some(id))?;
        assert!(cfg.client_auth_cert_resolver.has_certs());
        let cfg = client_config_with_identity(true, None, "1.2", Some(id))?;
        assert!(cfg.client_auth_cert_resolver.has_certs());
        assert!(
            !client_config(false, None, "1.2")?
                .client_auth_cert_resolver
                .has_certs()
        );
        let swapped = ClientIdentityFiles {
            certfile: &k,
            keyfile: &c,
        };
        let e = client_config_with_identity(false, None, "1.2", Some(swapped))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("client certificate/key") && e.contains("k.pem"),
            "{e}"
        );
        Ok(())
    }

    // ---- every outbound client verifies certificates unless told otherwise ----------------

    fn assert_refused(what: &str, message: &str) {
        assert!(
            message.contains("TLS certificate verification failed (UnknownIssuer)")
                && message.contains("--cafile"),
            "{what}: {message}"
        );
    }

    fn agent_config(api_url: &str, flags: &[&str]) -> anyhow::Result<crate::config::Config> {
        use clap::Parser;
        let mut args = vec!["ironic-agent"];
        args.extend_from_slice(flags);
        crate::config::Config::from_parts(
            &crate::config::Flags::parse_from(args),
            crate::config::KernelParams::parse(&format!("ipa-api-url={api_url}")),
        )
    }

    #[tokio::test]
    async fn the_conductor_client_verifies_certificates() -> anyhow::Result<()> {
        use crate::conductor::IronicClient;
        use reqwest::Method;
        let server =
            testing::https_server(br#"{"default_version": {"version": "1.89"}}"#.to_vec())?;
        let dir = tempfile::tempdir()?;
        let ca = server.ca_file(dir.path())?.display().to_string();

        let client = IronicClient::new(&agent_config(&server.url, &[])?)?;
        match client.send(Method::GET, "/", None, None).await {
            Err(e) => assert_refused("conductor", &e.to_string()),
            Ok((status, _)) => anyhow::bail!("a self-signed conductor was trusted ({status})"),
        }
        for flags in [["--cafile", ca.as_str()].as_slice(), &["--insecure"]] {
            let client = IronicClient::new(&agent_config(&server.url, flags)?)?;
            let (status, _) = client.send(Method::GET, "/", None, None).await?;
            assert_eq!(status, reqwest::StatusCode::OK, "{flags:?}");
            assert_eq!(client.api_version().await, (1, 89), "{flags:?}");
        }
        Ok(())
    }

    #[test]
    fn config_drive_downloads_verify_certificates() -> anyhow::Result<()> {
        use crate::deploy::configdrive::download;
        use crate::disk::DiskError;
        use crate::fetch::TlsSettings;
        // Not base64 (the NUL and 0xff): used as raw image bytes.
        let image = b"\0\xffraw config drive".to_vec();
        let server = testing::https_server(image.clone())?;
        let dir = tempfile::tempdir()?;
        let ca = server.ca_file(dir.path())?;
        let url = format!("{}/configdrive", server.url);

        match download(&url, &TlsSettings::default(), dir.path(), None) {
            Err(DiskError::ConfigDriveDownload { message, .. }) => {
                assert_refused("config drive", &message);
            }
            other => anyhow::bail!("expected a refused certificate, got {other:?}"),
        }
        for tls in [
            TlsSettings {
                cafile: Some(ca.clone()),
                ..TlsSettings::default()
            },
            TlsSettings {
                insecure: true,
                ..TlsSettings::default()
            },
        ] {
            let file = download(&url, &tls, dir.path(), None)?;
            assert_eq!(std::fs::read(file.path())?, image, "{tls:?}");
        }
        Ok(())
    }

    #[test]
    fn image_downloads_verify_certificates() -> anyhow::Result<()> {
        use crate::image::error::ImageError;
        use crate::image::info::ImageInfo;
        use crate::image::options::DownloadOptions;
        use crate::image::source::fetch_text;
        let server = testing::https_server(b"abc123  image.qcow2\n".to_vec())?;
        let dir = tempfile::tempdir()?;
        let ca = server.ca_file(dir.path())?;
        let url = format!("{}/image.sha256", server.url);
        let opts = DownloadOptions {
            retries: 3,
            retry_interval: std::time::Duration::from_secs(5),
            connection_timeout: std::time::Duration::from_secs(5),
            ..DownloadOptions::default()
        };
        let started = std::time::Instant::now();
        match fetch_text(&ImageInfo::default(), &url, &opts, 1024) {
            Err(e @ ImageError::DownloadFatal { .. }) => assert_refused("image", &e.to_string()),
            other => anyhow::bail!("expected a refused certificate, got {other:?}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "a refused certificate is not retried ({:?})",
            started.elapsed()
        );
        for opts in [
            DownloadOptions {
                cafile: Some(ca.clone()),
                ..opts.clone()
            },
            DownloadOptions {
                insecure: true,
                ..opts.clone()
            },
        ] {
            let text = fetch_text(&ImageInfo::default(), &url, &opts, 1024)?;
            assert_eq!(text, "abc123  image.qcow2\n");
        }
        Ok(())
    }
}
