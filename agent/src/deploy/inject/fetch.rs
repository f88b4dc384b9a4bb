//! Downloading URL content before anything is written (one client, retries on connection
//! failures, a size cap).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use hardware_managers::HardwareResult;
use hardware_managers::IpaClass;
use tracing::{info, warn};

use super::error::InjectError;
use super::validate::{Action, FileSpec};
use super::{DOWNLOAD_TIMEOUT, MAX_CONTENT_BYTES, failed};

/// How URL content is downloaded.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// Skip certificate verification (the agent's `insecure`; forced by `verify_ca: false`).
    pub insecure: bool,
    /// Extra CA bundle.
    pub cafile: Option<PathBuf>,
    /// Lowest TLS version (`1.2` or `1.3`).
    pub tls_min: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries after a connection failure.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_interval: Duration,
    /// Largest body accepted.
    pub max_bytes: u64,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings {
            insecure: false,
            cafile: None,
            tls_min: "1.2".into(),
            connect_timeout: DOWNLOAD_TIMEOUT,
            timeout: DOWNLOAD_TIMEOUT,
            retries: 2,
            retry_interval: Duration::from_secs(5),
            max_bytes: MAX_CONTENT_BYTES,
        }
    }
}

pub(super) fn fetch_all(
    files: &[FileSpec],
    s: &DownloadSettings,
) -> HardwareResult<Vec<Option<Vec<u8>>>> {
    let mut client = None;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let Action::Url(url) = &f.action else {
            out.push(None);
            continue;
        };
        let fail = |m: InjectError| {
            failed(
                IpaClass::CommandExecutionError,
                format!("Unable to read data from {url} for {}: {m}", f.describe()),
            )
        };
        if client.is_none() {
            client = Some(http_client(s).map_err(&fail)?);
        }
        let Some(c) = client.as_ref() else {
            return Err(fail(InjectError::Download("no HTTP client".into())));
        };
        let body = download(c, url, s).map_err(fail)?;
        info!(file = %f.path, bytes = body.len(), "downloaded file content");
        out.push(Some(body));
    }
    Ok(out)
}

pub(super) fn http_client(s: &DownloadSettings) -> Result<reqwest::blocking::Client, InjectError> {
    let tls = crate::tls::client_config(s.insecure, s.cafile.as_deref(), &s.tls_min)
        .map_err(|e| InjectError::Download(e.to_string()))?;
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(s.timeout)
        .connect_timeout(s.connect_timeout)
        .user_agent(concat!("ironic-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| InjectError::Download(e.to_string()))
}

pub(super) fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    s: &DownloadSettings,
) -> Result<Vec<u8>, InjectError> {
    let mut attempt = 0;
    let resp = loop {
        match client.get(url).send() {
            Ok(r) => break r,
            // A refused certificate will not verify on a retry.
            Err(e)
                if e.is_connect()
                    && attempt < s.retries
                    && !crate::tls::is_certificate_error(&e) =>
            {
                attempt += 1;
                warn!(error = %e, attempt, "connection failed; retrying");
                std::thread::sleep(s.retry_interval);
            }
            Err(e) => return Err(InjectError::Download(crate::tls::describe_error(&e))),
        }
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(InjectError::Download(format!("HTTP {status}")));
    }
    if resp.content_length().is_some_and(|l| l > s.max_bytes) {
        return Err(InjectError::Download(format!(
            "the content is larger than {} bytes",
            s.max_bytes
        )));
    }
    let mut body = Vec::new();
    resp.take(s.max_bytes + 1)
        .read_to_end(&mut body)
        .map_err(|e| InjectError::Download(e.to_string()))?;
    if body.len() as u64 > s.max_bytes {
        return Err(InjectError::Download(format!(
            "the content is larger than {} bytes",
            s.max_bytes
        )));
    }
    Ok(body)
}
