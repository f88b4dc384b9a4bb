//! Downloading URL content before anything is written, through the agent's one fetch module
//! ([`crate::fetch::get_bytes`]: retries as IPA's download settings say, refusals at once, a
//! size cap).

use std::path::PathBuf;
use std::time::Duration;

use hardware_managers::HardwareResult;
use hardware_managers::IpaClass;
use tracing::info;

use super::validate::{Action, FileSpec};
use super::{DOWNLOAD_TIMEOUT, MAX_CONTENT_BYTES, failed};
use crate::fetch::{ClientSettings, RetryPolicy, TlsSettings, get_bytes};
use crate::shutdown::Shutdown;

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
    /// Downloads stop at once when the agent shuts down (SIGTERM).
    pub shutdown: Option<Shutdown>,
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
            shutdown: None,
        }
    }
}

pub(super) fn fetch_all(
    files: &[FileSpec],
    s: &DownloadSettings,
) -> HardwareResult<Vec<Option<Vec<u8>>>> {
    let client = ClientSettings {
        connect_timeout: s.connect_timeout,
        ..ClientSettings::new(
            TlsSettings {
                insecure: s.insecure,
                cafile: s.cafile.clone(),
                min_version: s.tls_min.clone(),
                client_identity: None,
            },
            s.timeout,
        )
    };
    let retry = RetryPolicy {
        timeout: s.timeout,
        retries: s.retries,
        interval: s.retry_interval,
    };
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let Action::Url(url) = &f.action else {
            out.push(None);
            continue;
        };
        let stop = s.shutdown.as_ref().map(Shutdown::subscribe);
        let body = get_bytes(url, &client, &retry, s.max_bytes, stop).map_err(|e| {
            failed(
                IpaClass::CommandExecutionError,
                format!("Unable to read data from {url} for {}: {e}", f.describe()),
            )
        })?;
        info!(file = %f.path, bytes = body.len(), "downloaded file content");
        out.push(Some(body));
    }
    Ok(out)
}
