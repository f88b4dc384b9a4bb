//! `image_info`: the `image_info` parameter of `standby.prepare_image` / `write_image` —
//! IPA's validator ([`validate_image_info`]) with its lenient field parsers, the redacting
//! `Debug`, the expected-digest resolution (`os_hash_*`, a digest, or a checksum file whose
//! text is part of the input) and the inline config drive decoder (base64 + gzip).
//!
//! Input: the `image_info` JSON; when the input holds a NUL byte, what follows the first one is
//! served as the checksum file for a `checksum` URL.
//!
//! Checked: no panic; an accepted `image_info` serialises and parses back to the same value;
//! `Debug` never shows the image server password or the authorization token; a resolved digest
//! is lowercase hex of its algorithm's length (or of the declared `os_hash_value`).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ironic_agent::disk::configdrive;
use ironic_agent::image::checksum::{self, HashAlgo};
use ironic_agent::image::error::ImageError;
use ironic_agent::image::info::{ImageInfo, validate_image_info};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Where inline config drives are decoded (tmpfs when there is one); each file is removed when
/// its handle drops.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    })
}

fn check_accepted(info: &ImageInfo, md5: bool, checksum_file: Option<&str>) {
    // The canonical form parses back to the same value.
    let v = serde_json::to_value(info).expect("ImageInfo serialises");
    let back: ImageInfo = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("serialised image_info does not parse back ({e}): {v}"));
    assert!(back == *info, "round trip changed image_info: {v}");

    let shown = format!("{info:?}");
    for secret in [
        &info.image_server_password,
        &info.image_request_authorization,
    ]
    .into_iter()
    .flatten()
    .filter(|s| s.len() >= 4)
    {
        assert!(
            !shown.contains(&format!("{secret:?}")),
            "secret {secret:?} in Debug: {shown}"
        );
    }
    let _ = info.is_partition_image();
    let _ = info.streams_raw();

    let fetched = |_: &str| -> Result<String, ImageError> {
        checksum_file
            .map(String::from)
            .ok_or_else(|| ImageError::ChecksumSpec("no checksum file in this input".into()))
    };
    if let Ok(expected) = checksum::resolve_with(info, md5, fetched) {
        assert!(
            expected
                .hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "digest is not lowercase hex: {:?}",
            expected.hex
        );
        let declared = info.os_hash_value.as_deref().map(str::trim).unwrap_or("");
        assert!(
            expected.hex.len() == expected.algo.hex_len()
                || expected.hex.eq_ignore_ascii_case(declared),
            "{:?} digest of length {}",
            expected.algo,
            expected.hex.len()
        );
        assert!(
            md5 || expected.algo != HashAlgo::Md5,
            "MD5 digest while MD5 is disabled"
        );
    }
    if let Some(first) = info.urls.first() {
        let name = checksum::url_basename(first);
        if let Some(text) = checksum_file {
            let _ = checksum::parse_checksum_file(text, &name);
        }
    }
    if let Some(cd) = info.configdrive.as_deref()
        && !cd.starts_with("http://")
        && !cd.starts_with("https://")
        && let Ok(file) = configdrive::decode_inline(cd, scratch())
    {
        // Dropping `file` removes it.
        assert!(file.size() > 0 && file.size() <= configdrive::MAX_CONFIGDRIVE_BYTES);
    }
}

fuzz_target!(|data: &[u8]| {
    let (json, checksum_file) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], std::str::from_utf8(&data[nul + 1..]).ok()),
        None => (data, None),
    };
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    for md5 in [false, true] {
        if let Ok(info) = validate_image_info(&v, md5) {
            check_accepted(&info, md5, checksum_file);
        }
    }
    if let Some(text) = checksum_file {
        let _ = checksum::parse_checksum_file(text, "img.raw");
        if let Some(first) = text.lines().next() {
            let _ = checksum::algo_by_length(first.trim(), true);
        }
    }
});
