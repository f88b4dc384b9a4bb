//! End-to-end cleaning: the real shim drives the real agent over HTTP on 127.0.0.1, as
//! Ironic does, on a loop device over a file this test creates holding a GPT
//! and an ext4 filesystem. The agent may only write that device (`--allow-device`).
//!
//! 1. Manual cleaning with a step the agent does not offer fails cleanly: `clean failed`
//!    with a clear `last_error`, the CLI exits non-zero, the disk is untouched.
//! 2. `node manage`, then `node provide`: automated cleaning runs the agent's
//!    `erase_devices_metadata` (priority 99) and `erase_devices` (priority 10); the node ends
//!    `available`, `wipefs -n` finds nothing on the device and it reads back as zeros.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::{
    Shim, dii, free_port, loopback_agent_flags, read_range, sh, start_agent, wait_for,
};
use ironic_agent::testutil::LoopDevice;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const DISK: u64 = 64 * MIB;
const T: Duration = Duration::from_secs(120);

/// The signatures `wipefs -n` reports on `dev` (one line each; empty when clean).
fn wipefs(dev: &Path) -> anyhow::Result<String> {
    let out = Command::new("wipefs")
        .arg("-n")
        .arg(dev)
        .output()
        .context("running wipefs")?;
    if !out.status.success() {
        bail!("wipefs -n failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `conductor-shim ARGS` against the shim's database: (success, stdout, stderr).
fn shim_cli(shim: &Shim, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(e2e_tests::bin("conductor-shim"))
        .arg("--db")
        .arg(&shim.db)
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn shim_cleans_a_loop_device() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A GPT with one partition holding ext4, written into the file before it is attached.
    let file = dir.path().join("disk.img");
    std::fs::File::create(&file)?.set_len(DISK)?;
    sh(&format!(
        "sgdisk -o -n 1:2048:0 -t 1:8300 {} >/dev/null",
        file.display()
    ))?;
    let part_kib = (DISK - MIB - 34 * 512) / 1024;
    sh(&format!(
        "mkfs.ext4 -q -F -L old-root -E offset={MIB} {} {part_kib}k",
        file.display()
    ))?;
    let lo = LoopDevice::attach(&file)?;
    let before = wipefs(&lo.path)?;
    assert!(
        before.contains("gpt") && before.contains("PMBR"),
        "no GPT to erase: {before}"
    );
    let ext4_at = |lo: &LoopDevice| -> anyhow::Result<bool> {
        let out = Command::new("blkid")
            .args(["-p", "-O", &MIB.to_string(), "-s", "TYPE", "-o", "value"])
            .arg(&lo.path)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "ext4")
    };
    assert!(ext4_at(&lo)?, "no ext4 in the partition");

    let shim = Shim::start(dir.path(), &["--heartbeat-timeout", "4"])?;
    shim.create_host_node("c1", "manageable")?;
    let port = free_port();
    let flags = loopback_agent_flags(port, &lo.path);
    let _agent = start_agent(
        dir.path(),
        "cleanagent",
        &format!("ipa-api-url={} ipa-lookup-timeout=30", shim.url),
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    wait_for(T, "the agent's first heartbeat", || {
        shim.node("c1")
            .ok()
            .filter(|n| dii(n, "agent_url").is_some())
    })?;

    // 1. A step the agent does not offer: clean failed before anything runs.
    let (ok, _, stderr) = shim_cli(
        &shim,
        &[
            "clean",
            "c1",
            "--step",
            "erase_devices_metadata",
            "--step",
            "deploy.frobnicate",
            "--timeout",
            "120",
        ],
    )?;
    assert!(!ok, "an unknown step succeeded: {stderr}");
    assert!(
        stderr.contains("node does not support this clean step") && stderr.contains("frobnicate"),
        "{stderr}"
    );
    let n = shim.node("c1")?;
    assert_eq!(n["provision_state"], "clean failed", "{n}");
    let error = n["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does not support this clean step") && error.contains("frobnicate"),
        "{n}"
    );
    assert_eq!(wipefs(&lo.path)?, before, "the disk was touched");
    assert!(ext4_at(&lo)?);

    // 2. Automated cleaning: both erase steps by priority, then available.
    shim.cli(&["node", "manage", "c1"], true)?;
    let (ok, stdout, stderr) = shim_cli(&shim, &["node", "provide", "c1", "--timeout", "300"])?;
    assert!(ok, "provide failed:\n{stdout}{stderr}");
    assert!(
        stderr.contains("deploy.erase_devices_metadata (1/2) running on the agent")
            || stderr.contains("starting deploy.erase_devices_metadata (1/2)"),
        "{stderr}"
    );
    assert!(stderr.contains("deploy.erase_devices (2/2)"), "{stderr}");
    let n = shim.node("c1")?;
    assert_eq!(n["provision_state"], "available", "{n}");
    assert_eq!(n["last_error"], Value::Null, "{n}");
    assert_eq!(
        dii(&n, "clean_phase").and_then(Value::as_str),
        Some("done"),
        "{n}"
    );
    // Fast-track (the shim's default): the agent stays up with its session.
    assert!(dii(&n, "agent_url").is_some(), "{n}");
    let after = wipefs(&lo.path)?;
    assert!(after.is_empty(), "signatures left: {after}");
    assert!(!ext4_at(&lo)?, "ext4 left in the old partition");
    let disk = read_range(&lo.path, 0, DISK)?;
    assert!(
        disk.iter().all(|b| *b == 0),
        "erase_devices left non-zero bytes"
    );
    let log = std::fs::read_to_string(dir.path().join("cleanagent.log")).unwrap_or_default();
    assert!(
        log.contains("erase_devices"),
        "the agent log names no erase step"
    );
    Ok(())
}
