//! Settings of one image download: IPA's timeouts and retry counts, TLS, buffer sizes, the
//! caller's check of the image's first bytes and the agent's shutdown.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use super::head::HeadCheck;

use crate::fetch::{ClientIdentity, RetryPolicy, TlsSettings};
use crate::shutdown::Shutdown;

/// HTTP basic credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    /// Password (never logged).
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// How to download and write an image.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Connect timeout, time to first byte and longest gap between body chunks
    /// (`image_download_connection_timeout`, 60 s).
    pub connection_timeout: Duration,
    /// Retries per URL after the first attempt (`image_download_connection_retries`, 9).
    /// With the two others, the only retry layer: nothing restarts the whole download.
    pub retries: u32,
    /// Pause between attempts (`image_download_connection_retry_interval`, 10 s).
    pub retry_interval: Duration,
    /// Wall-time cap of one download (`image_download_max_duration`, off).
    pub max_duration: Option<Duration>,
    /// Reconnections (resumes) allowed within one download, whatever their cause; bounds
    /// a server that keeps dropping the connection after sending a little.
    pub max_reconnects: u32,
    /// Skip TLS verification (`ipa-insecure`).
    pub insecure: bool,
    /// Extra CA bundle for image servers.
    pub cafile: Option<PathBuf>,
    /// The agent's client certificate (`certfile`/`keyfile`), presented to image servers as
    /// IPA's download session does.
    pub client_identity: Option<ClientIdentity>,
    /// Lowest TLS version (`1.2` or `1.3`).
    pub tls_min_version: String,
    /// Agent-wide `image_server_auth_strategy = http_basic` credentials; `image_info`'s own
    /// credentials take precedence.
    pub basic_auth: Option<BasicAuth>,
    /// Size of the buffers passed between the stages and of each direct write (rounded to a
    /// 4 KiB multiple, 64 KiB to 64 MiB). Peak pipeline memory ≈ (2 × `queue_depth` + 4) blocks.
    pub block_size: usize,
    /// Buffers queued between two stages.
    pub queue_depth: usize,
    /// Write with `O_DIRECT` when the target accepts it.
    pub direct_io: bool,
    /// Check of the first decompressed bytes before anything is written.
    pub head_check: Option<HeadCheck>,
    /// The agent's shutdown: once requested, the download stops at once and the write fails
    /// (wiping the partition-table areas, as after any failure).
    pub shutdown: Option<Shutdown>,
}

impl fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("connection_timeout", &self.connection_timeout)
            .field("retries", &self.retries)
            .field("retry_interval", &self.retry_interval)
            .field("max_duration", &self.max_duration)
            .field("max_reconnects", &self.max_reconnects)
            .field("insecure", &self.insecure)
            .field("cafile", &self.cafile)
            .field("client_identity", &self.client_identity)
            .field("tls_min_version", &self.tls_min_version)
            .field("basic_auth", &self.basic_auth)
            .field("block_size", &self.block_size)
            .field("queue_depth", &self.queue_depth)
            .field("direct_io", &self.direct_io)
            .field("head_check", &self.head_check.as_ref().map(|_| "<fn>"))
            .field("shutdown", &self.shutdown.is_some())
            .finish()
    }
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            connection_timeout: RetryPolicy::default().timeout,
            retries: RetryPolicy::default().retries,
            retry_interval: RetryPolicy::default().interval,
            max_duration: None,
            max_reconnects: 1000,
            insecure: false,
            cafile: None,
            client_identity: None,
            tls_min_version: "1.2".into(),
            basic_auth: None,
            // Measured (see `throughput_report`): 1–4 MiB blocks stream equally fast; 2 MiB × 4
            // keeps the pipeline's peak memory near 25 MiB.
            block_size: 2 << 20,
            queue_depth: 4,
            direct_io: true,
            head_check: None,
            shutdown: None,
        }
    }
}

impl DownloadOptions {
    /// IPA's three retry settings as a [`RetryPolicy`].
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            timeout: self.connection_timeout,
            retries: self.retries,
            interval: self.retry_interval,
        }
    }

    /// The outbound TLS settings.
    pub fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            insecure: self.insecure,
            cafile: self.cafile.clone(),
            min_version: self.tls_min_version.clone(),
            client_identity: self.client_identity.clone(),
        }
    }

    /// `block_size` rounded to a usable value (4 KiB multiple, 64 KiB to 64 MiB).
    pub(crate) fn effective_block_size(&self) -> usize {
        let b = self.block_size.clamp(64 << 10, 64 << 20);
        b - b % 4096
    }

    /// `queue_depth` clamped to 1..=64.
    pub(crate) fn effective_queue_depth(&self) -> usize {
        self.queue_depth.clamp(1, 64)
    }
}
