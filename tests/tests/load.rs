//! Load: waves of 1,000 concurrent status/commands requests against the real agent while it
//! streams an image onto a loop device. Every request must succeed and the image must land
//! intact. (The throughput ratio against the write alone is measured by
//! `agent/bench/load.py`, not here: this test asserts correctness under load, not timing.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::image_server::ImageServer;
use e2e_tests::images::{MIB, images_dir, sha256_file};
use e2e_tests::loadgen::{self, Load};
use e2e_tests::{free_port, http_get, http_post, read_range, sh, start_agent, wait_agent_api};
use ironic_agent::testutil::LoopDevice;
use serde_json::{Value, json};
const TOKEN: &str = "load-token-0123456789abcdefghijklmnopqrstu";
const CONCURRENCY: usize = 1000;

#[test]
fn a_thousand_concurrent_requests_while_streaming_an_image() -> anyhow::Result<()> {
    loadgen::raise_open_files();
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let image = images.join("disk.raw");
    let size = 128 * MIB;
    // Random data behind an msdos table (a whole-disk image must have partitions).
    sh(&format!(
        "dd if=/dev/urandom of={0} bs=1M count={1} status=none && \
         printf 'label: dos\\n,,L\\n' | sfdisk -q {0}",
        image.display(),
        size / MIB
    ))?;
    let sha = sha256_file(&image)?;
    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), 4096 * MIB + 64 * MIB)?;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let lo_path = lo.path.display().to_string();
    let agent = start_agent(
        dir.path(),
        "loadagent",
        &format!("ipa-agent-token={TOKEN}"),
        &["--listen", &listen, "--allow-device", &lo_path],
    )?;
    let base = format!("http://{listen}");
    wait_agent_api(&base, Duration::from_secs(60))?;

    let info = json!({"id": "disk.raw", "urls": [format!("{}/disk.raw", server.url)],
        "os_hash_algo": "sha256", "os_hash_value": sha, "stream_raw_images": true,
        "disk_format": "raw"});
    let (status, started) = http_post(
        &format!("{base}/v1/commands/?agent_token={TOKEN}"),
        &json!({"name": "standby.prepare_image", "params": {"image_info": info}}).to_string(),
    )?;
    if status != 200 || started["command_status"] != "RUNNING" {
        bail!("prepare_image did not start: {status} {started}");
    }
    let id = started["id"].as_str().context("no command id")?.to_string();

    // A watcher records the command's end; the waves go on until it ended and at least three
    // waves ran.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let url = format!("{base}/v1/commands/{id}?agent_token={TOKEN}");
        std::thread::spawn(move || -> anyhow::Result<Value> {
            for _ in 0..3000 {
                let (s, v) = http_get(&url)?;
                if s == 200 && v["command_status"] != "RUNNING" {
                    done.store(true, Ordering::SeqCst);
                    return Ok(v);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            done.store(true, Ordering::SeqCst);
            bail!("prepare_image still running after 300 s")
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let addr = listen.parse()?;
    let mut reports = Vec::new();
    let mut waves_while_running = 0;
    loop {
        let running = !done.load(Ordering::SeqCst);
        let report = runtime.block_on(loadgen::run(
            Load {
                addr,
                token: TOKEN.into(),
                concurrency: CONCURRENCY,
                waves: Some(1),
            },
            Arc::new(AtomicBool::new(false)),
        ));
        if running {
            waves_while_running += 1;
        }
        reports.push(report);
        if done.load(Ordering::SeqCst) && reports.len() >= 3 {
            break;
        }
    }
    let result = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))??;

    let errors: usize = reports.iter().map(|r| r.errors).sum();
    let requests: usize = reports.iter().map(|r| r.requests).sum();
    eprintln!(
        "load: {requests} requests in {} waves ({waves_while_running} while streaming), {errors} errors, p99 per wave {:?} ms",
        reports.len(),
        reports.iter().map(|r| r.p99_ms.round()).collect::<Vec<_>>()
    );
    assert!(
        waves_while_running >= 1,
        "no wave ran while the image was streaming"
    );
    assert_eq!(
        errors,
        0,
        "failed requests: {:?}",
        reports
            .iter()
            .flat_map(|r| r.error_examples.iter())
            .take(10)
            .collect::<Vec<_>>()
    );
    assert_eq!(requests, reports.len() * CONCURRENCY);
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    assert!(
        read_range(&lo.path, 0, size)? == std::fs::read(&image)?,
        "the disk does not hold the image"
    );
    // Still serving normally afterwards.
    let (s, v) = http_get(&format!("{base}/v1/commands/?agent_token={TOKEN}"))?;
    assert_eq!(s, 200);
    assert_eq!(v["commands"].as_array().map(Vec::len), Some(1), "{v}");
    drop(agent);
    Ok(())
}
