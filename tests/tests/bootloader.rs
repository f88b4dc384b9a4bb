//! `image.install_bootloader` through the real shim and agent on this machine: a partition
//! image whose own `grub-install` fails is deployed onto a loop device (legacy BIOS, GRUB
//! enabled by the shim at lookup). The agent mounts the image's root, binds /dev, /proc and
//! /run, mounts sysfs and runs the image's `grub-install` in a chroot for real.
//!
//! * Without `ignore_bootloader_failure` the deploy fails and `last_error` carries the tool's
//!   stderr.
//! * With it (the agent's `ipa-ignore-bootloader-failure`) the deploy succeeds and the
//!   failure is kept as a deploy warning.
//!
//! Either way nothing stays mounted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::{Shim, free_port, loopback_agent_flags, start_agent, wait_for};
use ironic_agent::testutil::LoopDevice;
use serde_json::Value;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const T: Duration = Duration::from_secs(120);
const BROKEN: &str = "grub-install: error: the test image's GRUB is broken on purpose.";

/// An ext4 image of a tiny root: static busybox (for `sh`, `mount`, `umount`) and a
/// `grub-install` that prints [`BROKEN`] and fails.
fn broken_grub_image(dir: &Path) -> anyhow::Result<PathBuf> {
    let tree = dir.join("tree");
    for d in [
        "bin",
        "usr/sbin",
        "etc",
        "dev",
        "proc",
        "run",
        "sys",
        "boot/grub",
    ] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: install busybox-static (scripts/install-ramdisk-deps.sh)");
    }
    std::fs::copy(busybox, tree.join("bin/busybox"))?;
    for applet in ["sh", "mount", "umount", "cat"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet))?;
    }
    let script = format!("#!/bin/sh\necho \"{BROKEN}\" >&2\nexit 1\n");
    let gi = tree.join("usr/sbin/grub-install");
    std::fs::write(&gi, script)?;
    std::fs::set_permissions(&gi, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::write(tree.join("etc/fstab"), "")?;
    let img = dir.join("images").join("root.img");
    std::fs::create_dir_all(img.parent().context("no parent")?)?;
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "broken-root", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("16M")
        .output()?;
    if !out.status.success() {
        bail!("mke2fs failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(img)
}

fn sha256_file(p: &Path) -> anyhow::Result<String> {
    Ok(Sha256::digest(std::fs::read(p)?)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The strings of a JSON array (none for anything else).
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Mounts the agent with process id `pid` left behind (it names its mount points
/// `ironic-agent-<purpose>-<pid>-<n>`; the other test's agent may be mounting at the same
/// time, so only this agent's count).
fn leftover_mounts(pid: u32) -> Vec<String> {
    let ours = [
        format!("ironic-agent-root-{pid}-"),
        format!("ironic-agent-esp-{pid}-"),
    ];
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| ours.iter().any(|o| l.contains(o.as_str())))
        .map(str::to_string)
        .collect()
}

/// Deploys the broken image with or without the agent ignoring bootloader failures; returns
/// the node, the agent's log, the target disk, the `conductor-shim logs` answer (failed
/// deploys) and the agent's process id.
fn deploy_broken(ignore: bool) -> anyhow::Result<(Value, String, PathBuf, Value, u32)> {
    let dir = tempfile::tempdir()?;
    let img = broken_grub_image(dir.path())?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), 4096 * MIB + 64 * MIB)?;
    let shim = Shim::start_with_images(
        dir.path(),
        &dir.path().join("images"),
        &["--enable-bios-bootloader-install"],
    )?;
    shim.create_host_node("b1", "manageable")?;
    let port = free_port();
    let lo_path = lo.path.display().to_string();
    let flags = loopback_agent_flags(port, &lo.path);
    let cmdline = format!(
        "ipa-api-url={} ipa-lookup-timeout=30{}",
        shim.url,
        if ignore {
            " ipa-ignore-bootloader-failure=true"
        } else {
            ""
        }
    );
    let agent = start_agent(
        dir.path(),
        "bootagent",
        &cmdline,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    wait_for(T, "the agent's first heartbeat", || {
        shim.cli_json(&["node", "show", "b1"])
            .ok()
            .filter(|n| n["driver_internal_info"]["agent_url"].is_string())
    })?;
    let url = format!("{}/images/root.img", shim.url);
    let checksum = format!("sha256:{}", sha256_file(&img)?);
    let hint = format!("name={lo_path}");
    let out = Command::new(e2e_tests::bin("conductor-shim"))
        .arg("--db")
        .arg(&shim.db)
        .args([
            "deploy",
            "b1",
            "--image",
            &url,
            "--checksum",
            &checksum,
            "--image-type",
            "partition",
            "--root-mb",
            "32",
            "--boot-mode",
            "bios",
            "--disk-label",
            "msdos",
            "--root-hint",
            &hint,
            "--timeout",
            "300",
        ])
        .output()?;
    let node = shim.cli_json(&["node", "show", "b1"])?;
    if out.status.success() == (node["provision_state"] != "active") {
        bail!(
            "the CLI's exit status does not match the node's state {}: {}",
            node["provision_state"],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The field view of a failed deploy (the agent still runs; after a successful one the
    // shim forgets the agent, as Ironic): `conductor-shim logs` shows the last error and
    // fetches the bundle.
    let mut logs = Value::Null;
    if node["provision_state"] == "deploy failed" {
        let bundle = dir.path().join("b1-logs.tar.gz");
        logs = shim.cli_json(&["logs", "b1", "--out", &bundle.display().to_string()])?;
        if !bundle.is_file() {
            bail!("conductor-shim logs wrote no bundle: {logs}");
        }
        // The bundle the shim stored when the step failed (it lives in `dir`, gone on return):
        // its commands.json.
        if let Some(stored) = logs["stored"].get(0).and_then(Value::as_str) {
            let out = Command::new("tar")
                .args(["-xzOf", stored, "commands.json"])
                .output()?;
            if !out.status.success() {
                bail!("{stored}: {}", String::from_utf8_lossy(&out.stderr));
            }
            logs["stored_commands"] = serde_json::from_slice(&out.stdout)?;
        }
    }
    Ok((
        node,
        agent.output(),
        lo.path.clone(),
        logs,
        agent.child.id(),
    ))
}

#[test]
fn a_failing_grub_install_fails_the_deploy_with_its_stderr() -> anyhow::Result<()> {
    let (node, log, disk, logs, pid) = deploy_broken(false)?;
    assert_eq!(node["provision_state"], "deploy failed", "{node}");
    let error = node["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(BROKEN)
            && error.contains(&format!("`grub-install {}`", disk.display()))
            && error.contains("Failed to install a bootloader"),
        "last_error: {error}"
    );
    assert_eq!(logs["provision_state"], "deploy failed", "{logs}");
    assert!(
        logs["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(BROKEN)),
        "{logs}"
    );
    let files = strings(&logs["files"]);
    assert!(
        [
            "ironic-agent.log",
            "inventory.json",
            "commands.json",
            "dmesg",
            "lsblk",
            "ip_addr",
            "mount"
        ]
        .iter()
        .all(|f| files.contains(f)),
        "bundle files: {files:?}"
    );
    // The shim collected the ramdisk's logs when the step failed (Ironic's
    // deploy_logs_collect=on_failure), named as Ironic names them.
    let stored = strings(&logs["stored"]);
    assert_eq!(stored.len(), 1, "stored bundles: {logs}");
    let name = Path::new(stored[0])
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        name.contains("_b1_") && name.ends_with(".tar.gz"),
        "bundle name {name}"
    );
    let commands = &logs["stored_commands"];
    let bootloader = commands
        .as_array()
        .and_then(|c| {
            c.iter()
                .rev()
                .find(|c| c["command_name"] == "image.install_bootloader")
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(bootloader["command_status"], "FAILED", "{commands}");
    assert!(
        bootloader["command_error"]["details"]
            .as_str()
            .is_some_and(|d| d.contains(BROKEN)),
        "{bootloader}"
    );
    let started = bootloader["started_at"].as_f64().unwrap_or(f64::MAX);
    assert!(
        bootloader["finished_at"]
            .as_f64()
            .is_some_and(|f| f >= started),
        "{bootloader}"
    );
    // The chroot ran for real: the agent mounted the image and bound the system directories.
    assert!(log.contains("mounting"), "agent log:\n{log}");
    assert!(
        leftover_mounts(pid).is_empty(),
        "{:?}",
        leftover_mounts(pid)
    );
    Ok(())
}

#[test]
fn ignore_bootloader_failure_turns_it_into_a_warning() -> anyhow::Result<()> {
    let (node, log, _, _, pid) = deploy_broken(true)?;
    assert_eq!(node["provision_state"], "active", "{node}");
    let warnings = strings(&node["driver_internal_info"]["deploy_warnings"]);
    assert!(
        warnings.iter().any(|w| w.contains(BROKEN)),
        "deploy warnings: {warnings:?}"
    );
    assert!(
        log.contains("ignoring the bootloader failure"),
        "agent log:\n{log}"
    );
    assert!(
        leftover_mounts(pid).is_empty(),
        "{:?}",
        leftover_mounts(pid)
    );
    Ok(())
}
