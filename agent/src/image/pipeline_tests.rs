//! End-to-end tests of the image pipeline against a local HTTP server with fault injection,
//! writing to temp files and to loop devices over temp files.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use super::checksum::{ExpectedChecksum, HashAlgo, resolve_checksum};
use super::decompress::Compression;
use super::error::ImageError;
use super::hash::Hasher;
use super::head::Head;
use super::info::ImageInfo;
use super::options::{DownloadOptions, HeadCheck};
use super::pipeline::{StreamOutcome, Target, download_to_target, stream_to_target};
use super::progress::Progress;
use super::sink::HOLD_BACK;
use super::testserver::{Faults, TestServer};
use crate::testutil::LoopDevice;

const MIB: u64 = 1 << 20;

/// A deterministic, partly compressible image with an unaligned length.
fn image(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let text = b"ironic-agent writes images to disks quickly and correctly. ";
    (0..len)
        .map(|i| {
            if (i / 8192) % 2 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                text[i % text.len()]
            }
        })
        .collect()
}

fn digest(algo: HashAlgo, data: &[u8]) -> ExpectedChecksum {
    let mut h = Hasher::new(algo);
    h.update(data);
    ExpectedChecksum {
        algo,
        hex: h.finish_hex(),
    }
}

fn opts() -> DownloadOptions {
    DownloadOptions {
        connection_timeout: Duration::from_secs(3),
        retries: 2,
        retry_interval: Duration::from_millis(20),
        ..Default::default()
    }
}

fn info(urls: Vec<String>) -> ImageInfo {
    ImageInfo {
        id: "test-image".into(),
        urls,
        disk_format: Some("raw".into()),
        stream_raw_images: true,
        ..Default::default()
    }
}

/// A temp file of `len` bytes of 0xAA, so writes and wipes are visible.
fn disk(dir: &Path, len: u64) -> anyhow::Result<Target> {
    let path = dir.join("disk.img");
    std::fs::write(&path, vec![0xAAu8; len as usize])?;
    Ok(Target {
        path,
        offset: 0,
        max_len: None,
    })
}

fn all(data: &[u8], v: u8) -> bool {
    data.iter().all(|&b| b == v)
}

fn gz(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    e.finish()
}

fn run(
    srv_info: &ImageInfo,
    expected: &ExpectedChecksum,
    t: &Target,
    o: &DownloadOptions,
) -> Result<StreamOutcome, ImageError> {
    stream_to_target(srv_info, expected, t, o, &Progress::new())
}

#[test]
fn raw_image_lands_identical_in_a_file_with_any_block_size() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((3 * MIB) as usize + 4567);
    srv.route("/img.raw", data.clone(), Faults::default());
    for (block, direct) in [(4 << 20, true), (128 << 10, true), (1 << 20, false)] {
        let dir = tempfile::tempdir()?;
        let t = disk(dir.path(), 8 * MIB)?;
        let o = DownloadOptions {
            block_size: block,
            direct_io: direct,
            ..opts()
        };
        let progress = Progress::new();
        let out = stream_to_target(
            &info(vec![srv.url("/img.raw")]),
            &digest(HashAlgo::Sha256, &data),
            &t,
            &o,
            &progress,
        )?;
        assert_eq!(out.bytes_downloaded, data.len() as u64);
        assert_eq!(out.bytes_written, data.len() as u64);
        assert_eq!(out.compression, Compression::None);
        let disk = std::fs::read(&t.path)?;
        assert_eq!(&disk[..data.len()], &data[..], "block {block}");
        assert!(all(&disk[data.len()..], 0xAA), "nothing past the image");
        let snap = progress.snapshot();
        assert_eq!(snap.bytes_downloaded, data.len() as u64);
        assert_eq!(snap.bytes_written, data.len() as u64);
        assert_eq!(snap.total_bytes, Some(data.len() as u64));
    }
    Ok(())
}

#[test]
fn raw_image_lands_identical_on_a_loop_device_and_bad_checksum_wipes_it() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((3 * MIB) as usize + 100);
    srv.route("/img.raw", data.clone(), Faults::default());
    let dir = tempfile::tempdir()?;
    let size = 8 * MIB;
    let lo = LoopDevice::create(&dir.path().join("backing"), size)?;
    let t = Target {
        path: lo.path.clone(),
        offset: 0,
        max_len: None,
    };
    let i = info(vec![srv.url("/img.raw")]);
    let out = run(&i, &digest(HashAlgo::Sha512, &data), &t, &opts())?;
    assert_eq!(out.bytes_written, data.len() as u64);
    let mut back = vec![0u8; data.len()];
    std::fs::File::open(&lo.path)?.read_exact(&mut back)?;
    ensure!(back == data, "loop device content differs from the image");

    // Fill the end of the device, then fail the checksum: first and last MiB end up zero.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lo.path)
        .and_then(|mut f| {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(size - MIB))?;
            f.write_all(&vec![0x55u8; MIB as usize])?;
            f.sync_all()
        })?;
    let wrong = digest(HashAlgo::Sha256, b"another image");
    let err = run(&i, &wrong, &t, &opts()).err().context("must fail")?;
    assert_eq!(err.class().name(), "ImageChecksumError");
    let mut all_dev = Vec::new();
    std::fs::File::open(&lo.path)?.read_to_end(&mut all_dev)?;
    assert!(all(&all_dev[..MIB as usize], 0), "first MiB wiped");
    assert!(all(&all_dev[(size - MIB) as usize..], 0), "last MiB wiped");
    Ok(())
}

#[test]
fn compressed_variants_land_identical_to_the_raw_reference() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((2 * MIB) as usize + 999);
    let zst = zstd::stream::encode_all(&data[..], 3)?;
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&data)?;
        e.finish()?
    };
    let variants = [
        ("/img.gz", gz(&data)?, Compression::Gzip),
        ("/img.zst", zst, Compression::Zstd),
        ("/img.xz", xz, Compression::Xz),
    ];
    for (path, packed, kind) in variants {
        srv.route(path, packed.clone(), Faults::default());
        let dir = tempfile::tempdir()?;
        let t = disk(dir.path(), 4 * MIB)?;
        let o = DownloadOptions {
            block_size: 256 << 10,
            ..opts()
        };
        // The checksum is over the bytes as served (compressed).
        let out = run(
            &info(vec![srv.url(path)]),
            &digest(HashAlgo::Sha256, &packed),
            &t,
            &o,
        )?;
        assert_eq!(out.compression, kind);
        assert_eq!(out.bytes_downloaded, packed.len() as u64);
        assert_eq!(out.bytes_written, data.len() as u64);
        let disk = std::fs::read(&t.path)?;
        ensure!(disk[..data.len()] == data[..], "{path}: content differs");
        assert!(all(&disk[data.len()..], 0xAA));
    }
    Ok(())
}

#[test]
fn wrong_checksum_fails_at_once_and_wipes_both_ends() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((3 * MIB) as usize);
    srv.route("/img.raw", data.clone(), Faults::default());
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 8 * MIB)?;
    let o = DownloadOptions { ..opts() };
    let wrong = digest(HashAlgo::Sha256, b"not the image");
    let err = run(&info(vec![srv.url("/img.raw")]), &wrong, &t, &o)
        .err()
        .context("must fail")?;
    assert!(matches!(err, ImageError::Checksum { .. }), "{err}");
    assert_eq!(err.message(), "Error verifying image checksum");
    assert!(err.details().contains(&wrong.hex));
    assert!(err.details().contains(&digest(HashAlgo::Sha256, &data).hex));
    assert_eq!(
        srv.stats("/img.raw").requests,
        1,
        "a checksum mismatch is not retried"
    );
    let disk = std::fs::read(&t.path)?;
    let mib = MIB as usize;
    assert!(all(&disk[..mib], 0), "first MiB");
    assert!(all(&disk[disk.len() - mib..], 0), "last MiB of the target");
    assert!(
        all(&disk[2 * mib..3 * mib], 0),
        "last MiB of the written image"
    );
    Ok(())
}

#[test]
fn truncated_downloads_fail_after_retries_and_wipe() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((3 * MIB) as usize);
    srv.route(
        "/img.raw",
        data.clone(),
        Faults {
            truncate_at: Some(2 * MIB + 5),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 6 * MIB)?;
    let o = DownloadOptions {
        retries: 1,
        block_size: 512 << 10,
        ..opts()
    };
    let err = run(
        &info(vec![srv.url("/img.raw")]),
        &digest(HashAlgo::Sha256, &data),
        &t,
        &o,
    )
    .err()
    .context("must fail")?;
    assert_eq!(err.class().name(), "ImageDownloadError", "{err}");
    assert!(err.details().contains("img.raw"), "{err}");
    // One attempt (no restart of the whole download): one full request, then `retries + 1`
    // resumes that get nothing.
    let st = srv.stats("/img.raw");
    assert_eq!(st.requests, 3, "{st:?}");
    let disk = std::fs::read(&t.path)?;
    let mib = MIB as usize;
    assert!(all(&disk[..mib], 0));
    assert!(all(&disk[disk.len() - mib..], 0));
    Ok(())
}

#[test]
fn a_404_first_url_fails_over_to_a_good_second() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((MIB as usize) + 1);
    srv.route("/good", data.clone(), Faults::default());
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 4 * MIB)?;
    let i = info(vec![srv.url("/missing"), srv.url("/good")]);
    run(&i, &digest(HashAlgo::Sha256, &data), &t, &opts())?;
    assert_eq!(srv.stats("/missing").requests, 1, "a 4xx is not retried");
    assert_eq!(&std::fs::read(&t.path)?[..data.len()], &data[..]);
    Ok(())
}

#[test]
fn every_url_refused_is_fatal_and_leaves_the_disk_alone() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    srv.route(
        "/forbidden",
        vec![1],
        Faults {
            status: Some(403),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 2 * MIB)?;
    let o = DownloadOptions { ..opts() };
    let i = info(vec![srv.url("/missing"), srv.url("/forbidden")]);
    let err = run(&i, &digest(HashAlgo::Sha256, b"x"), &t, &o)
        .err()
        .context("must fail")?;
    assert_eq!(err.class().name(), "ImageDownloadFatalError");
    let d = err.details();
    assert!(d.contains("404") && d.contains("403"), "{d}");
    assert_eq!(srv.stats("/missing").requests, 1);
    assert!(all(&std::fs::read(&t.path)?, 0xAA), "nothing written");
    Ok(())
}

#[test]
fn server_errors_are_retried_on_the_same_url() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image(100_000);
    srv.route(
        "/img",
        data.clone(),
        Faults {
            status_first: Some((503, 2)),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), MIB)?;
    run(
        &info(vec![srv.url("/img")]),
        &digest(HashAlgo::Sha256, &data),
        &t,
        &opts(),
    )?;
    assert_eq!(srv.stats("/img").requests, 3);
    assert_eq!(&std::fs::read(&t.path)?[..data.len()], &data[..]);
    Ok(())
}

#[test]
fn a_dropped_connection_resumes_with_range_instead_of_restarting() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((3 * MIB) as usize + 333);
    let cut = 1_500_017;
    srv.route(
        "/img",
        data.clone(),
        Faults {
            drop_after: Some((cut, 1)),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 4 * MIB)?;
    let o = DownloadOptions {
        block_size: 1 << 20,
        ..opts()
    };
    let out = run(
        &info(vec![srv.url("/img")]),
        &digest(HashAlgo::Sha256, &data),
        &t,
        &o,
    )?;
    assert_eq!(out.bytes_downloaded, data.len() as u64);
    let st = srv.stats("/img");
    assert_eq!(st.requests, 2, "{st:?}");
    assert_eq!(st.ranges[0], None);
    let resumed_at: u64 = st.ranges[1]
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .context("second request must carry Range: bytes=N-")?;
    assert!(
        resumed_at > 0 && resumed_at <= cut,
        "resumed at {resumed_at}"
    );
    assert!(
        st.bytes <= data.len() as u64 + MIB,
        "served {} bytes for a {}-byte image",
        st.bytes,
        data.len()
    );
    assert_eq!(&std::fs::read(&t.path)?[..data.len()], &data[..]);
    Ok(())
}

#[test]
fn a_stalled_connection_times_out_and_resumes() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((2 * MIB) as usize);
    srv.route(
        "/img",
        data.clone(),
        Faults {
            stall: Some((MIB, Duration::from_millis(1500), 1)),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 4 * MIB)?;
    let o = DownloadOptions {
        connection_timeout: Duration::from_millis(300),
        ..opts()
    };
    let started = Instant::now();
    run(
        &info(vec![srv.url("/img")]),
        &digest(HashAlgo::Sha256, &data),
        &t,
        &o,
    )?;
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "did not wait out the stall"
    );
    let st = srv.stats("/img");
    assert_eq!(st.requests, 2);
    assert!(st.ranges[1].is_some());
    assert_eq!(&std::fs::read(&t.path)?[..data.len()], &data[..]);
    Ok(())
}

#[test]
fn a_server_ignoring_range_is_skipped_not_duplicated() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((2 * MIB) as usize + 1);
    srv.route(
        "/img",
        data.clone(),
        Faults {
            drop_after: Some((700_001, 1)),
            ignore_range: true,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 4 * MIB)?;
    let out = run(
        &info(vec![srv.url("/img")]),
        &digest(HashAlgo::Md5, &data),
        &t,
        &opts(),
    );
    let out = out?;
    assert_eq!(out.bytes_written, data.len() as u64);
    assert_eq!(srv.stats("/img").requests, 2);
    assert_eq!(&std::fs::read(&t.path)?[..data.len()], &data[..]);
    Ok(())
}

#[test]
fn the_download_time_cap_gives_a_408_timeout() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image((2 * MIB) as usize);
    srv.route(
        "/img",
        data.clone(),
        Faults {
            stall: Some((MIB, Duration::from_millis(700), 1)),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 4 * MIB)?;
    let o = DownloadOptions {
        max_duration: Some(Duration::from_millis(300)),
        ..opts()
    };
    let err = run(
        &info(vec![srv.url("/img")]),
        &digest(HashAlgo::Sha256, &data),
        &t,
        &o,
    )
    .err()
    .context("must fail")?;
    assert_eq!(err.class().name(), "ImageDownloadTimeoutError");
    assert_eq!(err.code(), 408);
    assert_eq!(srv.stats("/img").requests, 1, "a timeout is not retried");
    Ok(())
}

#[test]
fn an_image_larger_than_the_region_is_refused_and_nothing_beyond_is_touched() -> anyhow::Result<()>
{
    let srv = TestServer::start()?;
    let data = image((3 * MIB) as usize);
    let packed = gz(&data)?;
    srv.route("/img.raw", data.clone(), Faults::default());
    srv.route("/img.gz", packed.clone(), Faults::default());
    let o = DownloadOptions {
        block_size: 256 << 10,
        ..opts()
    };
    for (path, sum, written_before_error) in [
        ("/img.raw", digest(HashAlgo::Sha256, &data), false),
        ("/img.gz", digest(HashAlgo::Sha256, &packed), true),
    ] {
        let dir = tempfile::tempdir()?;
        let mut t = disk(dir.path(), 8 * MIB)?;
        t.offset = MIB;
        t.max_len = Some(2 * MIB);
        let err = run(&info(vec![srv.url(path)]), &sum, &t, &o)
            .err()
            .context("must fail")?;
        assert!(
            matches!(err, ImageError::TooLarge { capacity, .. } if capacity == 2 * MIB),
            "{err}"
        );
        assert!(
            err.to_string().contains("image larger than target"),
            "{err}"
        );
        let disk = std::fs::read(&t.path)?;
        let (a, b) = (MIB as usize, 3 * MIB as usize);
        assert!(all(&disk[..a], 0xAA), "{path}: before the region");
        assert!(all(&disk[b..], 0xAA), "{path}: after the region");
        if written_before_error {
            assert!(all(&disk[a..b], 0), "{path}: region wiped");
        } else {
            assert!(all(&disk[a..b], 0xAA), "{path}: refused before writing");
        }
    }
    Ok(())
}

#[test]
fn the_head_check_rejects_before_anything_is_written() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let mut fake_qcow = b"QFI\xfb\x00\x00\x00\x03".to_vec();
    fake_qcow.extend(image(300_000));
    let packed = gz(&fake_qcow)?;
    srv.route("/img.gz", packed.clone(), Faults::default());
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 2 * MIB)?;
    let check: HeadCheck = Arc::new(|head: &Head<'_>| {
        if head.bytes.starts_with(b"QFI\xfb") {
            Err(ImageError::InvalidImage(
                "qcow2 image on the raw path".into(),
            ))
        } else {
            Ok(())
        }
    });
    let o = DownloadOptions {
        head_check: Some(check),
        ..opts()
    };
    let err = run(
        &info(vec![srv.url("/img.gz")]),
        &digest(HashAlgo::Sha256, &packed),
        &t,
        &o,
    )
    .err()
    .context("must fail")?;
    assert_eq!(err.class().name(), "InvalidImage");
    assert!(all(&std::fs::read(&t.path)?, 0xAA));
    Ok(())
}

#[test]
fn empty_and_corrupt_images_are_invalid() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    srv.route("/empty", Vec::new(), Faults::default());
    let mut bad = gz(&image(200_000))?;
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0x5a);
    srv.route("/bad.gz", bad.clone(), Faults::default());
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 2 * MIB)?;
    for (path, body) in [("/empty", Vec::new()), ("/bad.gz", bad)] {
        let err = run(
            &info(vec![srv.url(path)]),
            &digest(HashAlgo::Sha256, &body),
            &t,
            &opts(),
        )
        .err()
        .context("must fail")?;
        assert_eq!(err.class().name(), "InvalidImage", "{path}: {err}");
    }
    Ok(())
}

#[test]
fn checksum_file_url_credentials_and_spool_region() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let data = image(500_000);
    let sum = digest(HashAlgo::Sha512, &data);
    srv.route("/images/disk.img", data.clone(), Faults::default());
    srv.route(
        "/images/SHA512SUMS",
        format!("{}  other.img\n{}  disk.img\n", "0".repeat(128), sum.hex).into_bytes(),
        Faults::default(),
    );
    let mut i = info(vec![srv.url("/images/disk.img")]);
    i.checksum = Some(srv.url("/images/SHA512SUMS"));
    i.image_server_auth_strategy = Some("http_basic".into());
    i.image_server_user = Some("u".into());
    i.image_server_password = Some("p".into());
    let expected = resolve_checksum(&i, false, &opts())?;
    assert_eq!(expected, sum);

    // download_to_target: the spool path, into a region at an offset.
    let dir = tempfile::tempdir()?;
    let mut t = disk(dir.path(), 4 * MIB)?;
    t.offset = 2 * MIB;
    t.max_len = Some(2 * MIB);
    let progress = Progress::new();
    download_to_target(&i, &expected, &t, &opts(), &progress)?;
    let disk = std::fs::read(&t.path)?;
    let off = (2 * MIB) as usize;
    assert_eq!(&disk[off..off + data.len()], &data[..]);
    assert!(all(&disk[..off], 0xAA));
    // Basic credentials went with both requests ("u:p").
    for path in ["/images/disk.img", "/images/SHA512SUMS"] {
        assert_eq!(
            srv.stats(path).auth,
            vec![Some("Basic dTpw".to_string())],
            "{path}"
        );
    }
    // The OCI-style token is sent verbatim.
    i.image_request_authorization = Some("QmVhcmVyIHNlY3JldA==".into());
    run(&i, &expected, &t, &opts())?;
    let auth = srv.stats("/images/disk.img").auth;
    assert_eq!(auth.last(), Some(&Some("Bearer secret".to_string())));
    Ok(())
}

#[test]
fn hold_back_covers_small_images() -> anyhow::Result<()> {
    ensure!(HOLD_BACK == MIB);
    let srv = TestServer::start()?;
    let data = image(5000);
    srv.route("/tiny", data.clone(), Faults::default());
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), MIB / 2)?;
    run(
        &info(vec![srv.url("/tiny")]),
        &digest(HashAlgo::Md5, &data),
        &t,
        &opts(),
    )?;
    let disk = std::fs::read(&t.path)?;
    if disk[..data.len()] != data[..] {
        bail!("tiny image differs");
    }
    assert_eq!(disk.len(), (MIB / 2) as usize);
    Ok(())
}

/// Raw images smaller than the first MiB (down to one sector) are written byte-exact to a
/// loop device through the raw path's own head check; the rest of the device is handled as
/// for any image.
#[test]
fn small_raw_images_are_written_to_a_loop_device() -> anyhow::Result<()> {
    let srv = TestServer::start()?;
    let dir = tempfile::tempdir()?;
    let size = 4 * MIB;
    let backing = dir.path().join("backing");
    for len in [512, 4096, 100 << 10, MIB as usize - 1] {
        std::fs::write(&backing, vec![0xAAu8; size as usize])?;
        let lo = LoopDevice::attach(&backing)?;
        let data = image(len);
        let path = format!("/small-{len}.raw");
        srv.route(&path, data.clone(), Faults::default());
        let t = Target {
            path: lo.path.clone(),
            offset: 0,
            max_len: None,
        };
        let check = super::head::raw_head_check(Some("raw".into()), vec!["raw".into()]);
        let o = DownloadOptions {
            head_check: Some(check),
            ..opts()
        };
        let out = run(
            &info(vec![srv.url(&path)]),
            &digest(HashAlgo::Sha256, &data),
            &t,
            &o,
        )
        .with_context(|| format!("{len}-byte image"))?;
        assert_eq!(out.bytes_written, len as u64);
        let mut back = vec![0u8; size as usize];
        std::fs::File::open(&lo.path)?.read_exact(&mut back)?;
        ensure!(
            back[..len] == data[..],
            "{len}: the image differs on the device"
        );
        // As for any image, the rest of the first MiB (the old partition table) is zeroed.
        let mib = MIB as usize;
        ensure!(all(&back[len..mib], 0), "{len}: first MiB not cleared");
        ensure!(
            all(&back[mib..], 0xAA),
            "{len}: bytes after the first MiB changed"
        );
    }
    Ok(())
}

/// IPA's three settings with small values, and everything else at its default (so that a
/// second retry layer on top, if any, would show).
fn quick_retries(timeout: Duration, retries: u32, interval: Duration) -> DownloadOptions {
    DownloadOptions {
        connection_timeout: timeout,
        retries,
        retry_interval: interval,
        ..Default::default()
    }
}

#[test]
fn refused_schemes_fail_at_once_with_the_fatal_class() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), MIB)?;
    let o = quick_retries(Duration::from_secs(2), 5, Duration::from_secs(2));
    for url in ["file:///etc/hostname", "ftp://127.0.0.1:9/img.raw"] {
        let started = Instant::now();
        let err = run(
            &info(vec![url.into()]),
            &digest(HashAlgo::Sha256, b"x"),
            &t,
            &o,
        )
        .err()
        .context("must fail")?;
        assert_eq!(
            err.class().name(),
            "ImageDownloadFatalError",
            "{url}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url}: took {:?}",
            started.elapsed()
        );
    }
    assert!(all(&std::fs::read(&t.path)?, 0xAA), "nothing written");
    Ok(())
}

#[test]
fn a_redirect_to_a_file_url_fails_at_once() -> anyhow::Result<()> {
    let (url, requests) = crate::testutil::raw_server(
        "HTTP/1.1 302 Found\r\nLocation: file:///etc/hostname\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
            .into(),
        Duration::ZERO,
    )?;
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), MIB)?;
    let o = quick_retries(Duration::from_secs(2), 5, Duration::from_secs(2));
    let started = Instant::now();
    let err = run(
        &info(vec![format!("{url}/img.raw")]),
        &digest(HashAlgo::Sha256, b"x"),
        &t,
        &o,
    )
    .err()
    .context("must fail")?;
    assert_eq!(err.class().name(), "ImageDownloadFatalError", "{err}");
    assert!(err.details().contains("file://"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn a_server_that_stalls_after_the_headers_fails_within_the_retry_budget() -> anyhow::Result<()> {
    // Headers, then nothing: every attempt waits the timeout for data, then the interval.
    let (url, requests) = crate::testutil::raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".into(),
        Duration::from_secs(60),
    )?;
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 2 * MIB)?;
    let (timeout, retries, interval) = (Duration::from_secs(1), 2, Duration::from_millis(500));
    let o = quick_retries(timeout, retries, interval);
    let started = Instant::now();
    let err = run(
        &info(vec![format!("{url}/img.raw")]),
        &digest(HashAlgo::Sha256, b"x"),
        &t,
        &o,
    )
    .err()
    .context("must fail")?;
    let took = started.elapsed();
    // IPA raises ImageDownloadError for a read that times out (its ImageDownloadTimeoutError
    // is only for image_download_max_duration).
    assert_eq!(err.class().name(), "ImageDownloadError", "{err}");
    assert!(err.details().contains("no data for 1 s"), "{err}");
    let budget = (timeout + interval) * (retries + 1) + Duration::from_secs(2);
    assert!(took < budget, "took {took:?}, budget {budget:?}");
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        retries + 1,
        "one request per attempt, no restart of the whole download"
    );
    assert!(all(&std::fs::read(&t.path)?, 0xAA), "nothing written");
    Ok(())
}

#[test]
fn a_shutdown_stops_the_download_at_once_and_wipes() -> anyhow::Result<()> {
    // 3 MiB announced, 2 MiB sent (past the held-back first MiB), then silence.
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
        3 * MIB,
        "z".repeat((2 * MIB) as usize)
    );
    let (url, _) = crate::testutil::raw_server(head, Duration::from_secs(60))?;
    let dir = tempfile::tempdir()?;
    let t = disk(dir.path(), 4 * MIB)?;
    let shutdown = crate::shutdown::Shutdown::default();
    let o = DownloadOptions {
        shutdown: Some(shutdown.clone()),
        block_size: 256 << 10,
        ..quick_retries(Duration::from_secs(30), 5, Duration::from_secs(5))
    };
    let trigger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        shutdown.request();
        Instant::now()
    });
    let err = run(
        &info(vec![format!("{url}/img.raw")]),
        &digest(HashAlgo::Sha256, b"x"),
        &t,
        &o,
    )
    .err()
    .context("must fail")?;
    let stopped_at = Instant::now();
    let requested_at = trigger
        .join()
        .map_err(|_| anyhow::anyhow!("trigger thread panicked"))?;
    assert_eq!(err, ImageError::Stopped);
    assert_eq!(err.class().name(), "CommandExecutionError");
    assert!(
        stopped_at.duration_since(requested_at) < Duration::from_secs(2),
        "stopped {:?} after the request",
        stopped_at.duration_since(requested_at)
    );
    let disk = std::fs::read(&t.path)?;
    assert!(all(&disk[..MIB as usize], 0), "first MiB wiped");
    Ok(())
}
