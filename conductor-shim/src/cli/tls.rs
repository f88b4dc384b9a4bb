//! HTTPS: the TLS flags of `serve`, and `pki`, which writes a lab CA with server and client
//! certificates for them.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::Cli;
use crate::tls::TlsFiles;

/// `serve`'s HTTPS flags.
#[derive(Debug, Clone, Args)]
pub struct ServeTlsArgs {
    /// Serve HTTPS with this certificate (PEM: the server certificate, then any
    /// intermediates), e.g. `server.crt` of `conductor-shim pki`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: require a client certificate signed by a CA of this PEM file (needs
    /// `--tls-cert`).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServeTlsArgs {
    /// The PEM files when HTTPS is asked for.
    pub fn files(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        }
    }
}

/// `pki` options.
#[derive(Debug, Args)]
pub struct PkiArgs {
    /// Directory to write into (created if needed; existing files are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// An IP address of the server certificate (repeatable; `localhost` is always included).
    #[arg(long = "ip", value_name = "IP", required = true)]
    pub ips: Vec<IpAddr>,
    /// Also write a client certificate (`client.crt`, `client.key`) for `--tls-client-ca`.
    #[arg(long)]
    pub client: bool,
}

/// `pki`: writes the files and lists them (as JSON with `--json`).
pub(super) fn run_pki(cli: &Cli, args: &PkiArgs) -> Result<()> {
    let pki = crate::pki::generate(&args.ips, args.client)?;
    let written = pki
        .write(&args.out)
        .with_context(|| format!("writing into {}", args.out.display()))?;
    let mut stdout = std::io::stdout().lock();
    if cli.json {
        let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        writeln!(stdout, "{}", serde_json::json!({ "files": files }))?;
    } else {
        for path in &written {
            writeln!(stdout, "{}", path.display())?;
        }
    }
    Ok(())
}
