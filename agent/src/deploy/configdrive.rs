//! The config drive value of `prepare_image` / `write_image`: an `http(s)://` URL is
//! downloaded through [`crate::fetch`] (the agent's TLS settings, IPA's 60 s timeout, a size
//! bound), anything else is inline data. Decoding and writing are
//! [`crate::disk::configdrive`]'s.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use crate::disk::configdrive::{self, ConfigDriveFile};
use crate::disk::{DiskError, MIB};
use crate::fetch::{self, ClientSettings, FetchError, RetryPolicy, TlsSettings};

/// Largest download accepted (base64 of a gzip of at most 64 MiB, with slack).
pub const MAX_DOWNLOAD_BYTES: u64 = 96 * MIB;
/// Download timeout (IPA: 60 s), for connecting and for the whole request; one attempt.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads a config drive from an `http(s)://` URL with the agent's TLS settings (4xx/5xx
/// are errors), then decodes it ([`configdrive::decode_downloaded`]) into a temp file in
/// `tmpdir`. `stop` (the agent's shutdown) ends the wait early.
pub fn download(
    url: &str,
    tls: &TlsSettings,
    tmpdir: &Path,
    stop: Option<watch::Receiver<bool>>,
) -> Result<ConfigDriveFile, DiskError> {
    let client = ClientSettings::new(tls.clone(), DOWNLOAD_TIMEOUT);
    let once = RetryPolicy::once(DOWNLOAD_TIMEOUT);
    let raw =
        fetch::get_bytes(url, &client, &once, MAX_DOWNLOAD_BYTES, stop).map_err(|e| match e {
            FetchError::TooLarge { size, limit } => {
                DiskError::ConfigDriveTooLarge { size, max: limit }
            }
            other => DiskError::ConfigDriveDownload {
                url: crate::image::info::redact_url(url),
                message: other.to_string(),
            },
        })?;
    configdrive::decode_downloaded(&raw, tmpdir)
}

/// Decodes `value` as Ironic sends it: an `http(s)://` URL is downloaded, anything else is an
/// inline gzip+base64 value (so a path or a `file://` URL is refused as bad base64, and no
/// local file is ever read).
pub fn prepare(
    value: &str,
    tls: &TlsSettings,
    tmpdir: &Path,
    stop: Option<watch::Receiver<bool>>,
) -> Result<ConfigDriveFile, DiskError> {
    let trimmed = value.trim();
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        download(trimmed, tls, tmpdir, stop)
    } else {
        configdrive::decode_inline(value, tmpdir)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::disk::testing::vfat_image;

    fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data)?;
        Ok(e.finish()?)
    }

    fn config_drive_image(dir: &Path) -> anyhow::Result<Vec<u8>> {
        let p = vfat_image(dir, "cd-src.img", 2 << 20, "config-2")?;
        Ok(std::fs::read(p)?)
    }

    #[test]
    fn local_paths_and_other_schemes_are_never_read() -> anyhow::Result<()> {
        // Only http(s):// is fetched; anything else must be inline data, so a path or a
        // file:// URL is decoded as (bad) base64 and refused; no local file is opened.
        let dir = tempfile::tempdir()?;
        for value in [
            "file:///etc/passwd",
            "/etc/passwd",
            "../../../../etc/shadow",
            "ftp://127.0.0.1/cd.iso",
            " file:///dev/vda",
        ] {
            let e = prepare(value, &TlsSettings::default(), dir.path(), None).err();
            assert!(
                matches!(e, Some(DiskError::ConfigDriveInvalid(_))),
                "{value}: {e:?}"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0, "temp files left");
        // The decoded drive is a private file of the temp directory.
        use std::os::unix::fs::PermissionsExt as _;
        let image = config_drive_image(dir.path())?;
        let file = prepare(
            &STANDARD.encode(gzip(&image)?),
            &TlsSettings::default(),
            dir.path(),
            None,
        )?;
        assert_eq!(file.path().parent(), Some(dir.path()));
        assert_eq!(
            std::fs::metadata(file.path())?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }

    #[test]
    fn downloads_base64_raw_gzip_and_raw_image() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let img = config_drive_image(dir.path())?;
        let gz = gzip(&img)?;
        let b64 = STANDARD.encode(&gz);
        let base = crate::testutil::serve_routes(HashMap::from([
            ("/b64", (200, b64.into_bytes())),
            ("/gz", (200, gz.clone())),
            ("/raw", (200, img.clone())),
            ("/boom", (500, b"oops".to_vec())),
        ]))?;
        let tls = TlsSettings::default();
        for path in ["/b64", "/gz", "/raw"] {
            let cd = prepare(&format!("{base}{path}"), &tls, dir.path(), None)?;
            assert_eq!(std::fs::read(cd.path())?, img, "{path}");
        }
        for path in ["/missing", "/boom"] {
            let e = prepare(&format!("{base}{path}"), &tls, dir.path(), None).err();
            assert!(
                matches!(e, Some(DiskError::ConfigDriveDownload { .. })),
                "{path}: {e:?}"
            );
        }
        // From a blocking task of a tokio runtime, as the command executor calls it.
        let rt = tokio::runtime::Runtime::new()?;
        let url = format!("{base}/b64");
        let tmp = dir.path().to_path_buf();
        let got = rt.block_on(async move {
            tokio::task::spawn_blocking(move || {
                prepare(&url, &TlsSettings::default(), &tmp, None)
                    .map(|cd| std::fs::read(cd.path()))
            })
            .await
        })???;
        assert_eq!(got, img);
        Ok(())
    }
}
