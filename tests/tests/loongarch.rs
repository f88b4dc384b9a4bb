//! loongarch64 end to end, in user mode: the static loongarch64 agent
//! (`target/static/loongarch64/ironic-agent`, from `scripts/build-static.sh`) runs under
//! `qemu-loongarch64-static` against the real conductor shim on 127.0.0.1. There is no
//! loong64 kernel to boot, so this is the main job of `scripts/demo.sh` with an emulated CPU
//! and the host's kernel: inspection, lookup, heartbeats, a command sent by the shim, and a raw
//! whole-disk deploy driven by `conductor-shim deploy` onto a loop device, checked byte for
//! byte. A missing binary or emulator fails the test (it never skips).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use e2e_tests::{
    Shim, assert_success, dii, free_port, host_macs, loopback_agent_flags, read_range, sh,
    start_agent_with, wait_for,
};
use ironic_agent::testutil::LoopDevice;
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// IPA picks the smallest disk of at least 4 GiB: the target is a sparse file just above that.
const DISK: u64 = 4096 * MIB;
/// The image: big enough to stream through the whole pipeline, small enough for TCG.
const IMAGE: u64 = 48 * MIB;
const QEMU: &str = "qemu-loongarch64-static";
/// Emulated, everything is slower than native: generous waits.
const T: Duration = Duration::from_secs(90);

/// The static loongarch64 agent, or a clear error saying how to build it.
fn agent_binary() -> anyhow::Result<PathBuf> {
    let bin = e2e_tests::workspace_root().join("target/static/loongarch64/ironic-agent");
    if !bin.is_file() {
        bail!(
            "{} is missing: build it with `scripts/build-static.sh loongarch64` \
             (after `scripts/install-ramdisk-deps.sh` as root)",
            bin.display()
        );
    }
    warn_if_stale(&bin);
    Ok(bin)
}

/// Warns (does not fail) when agent sources are newer than the prebuilt binary.
fn warn_if_stale(bin: &Path) {
    fn newest(dir: &Path, best: &mut Option<(SystemTime, PathBuf)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                newest(&path, best);
            } else if let Ok(m) = entry.metadata().and_then(|m| m.modified())
                && best.as_ref().is_none_or(|(t, _)| m > *t)
            {
                *best = Some((m, path));
            }
        }
    }
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return;
    };
    let root = e2e_tests::workspace_root();
    let mut best = None;
    for d in ["agent/src", "hardware-managers/src"] {
        newest(&root.join(d), &mut best);
    }
    if let Some((t, path)) = best
        && t > built
    {
        eprintln!(
            "warning: {} is newer than {}: rerun `scripts/build-static.sh loongarch64` to test \
             the current code",
            path.display(),
            bin.display()
        );
    }
}

/// `qemu-loongarch64-static` on PATH (version 8 or later: older ones die on LSX), or a clear
/// error saying how to install it.
fn qemu() -> anyhow::Result<PathBuf> {
    let hint = "install QEMU 10 user mode with `scripts/install-ramdisk-deps.sh` (as root; \
                qemu-user-static from bookworm-backports)";
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(QEMU))
        .find(|p| p.is_file())
        .with_context(|| format!("{QEMU} is not on PATH: {hint}"))?;
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "qemu-loongarch64 version 10.0.2 (Debian ...)"
    let major = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= 8 => Ok(path),
        _ => bail!(
            "{} is too old or unrecognised ({}): LSX needs QEMU 8 or later; {hint}",
            path.display(),
            text.trim()
        ),
    }
}

/// A whole-disk raw image with an msdos table (one Linux partition) full of random data.
/// Built with shell tools: hashing tens of MiB in this debug-built test would take longer than
/// the emulated deploy.
fn whole_disk_image(path: &Path, size: u64) -> anyhow::Result<()> {
    let p = path.display();
    sh(&format!(
        "truncate -s {size} {p} && printf 'label: dos\\n,,L\\n' | sfdisk -q {p} && \
         dd if=/dev/urandom of={p} bs=1M seek=1 count={} conv=notrunc status=none",
        size / MIB - 2
    ))
}

/// `sha256sum FILE`.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 64 => Ok(h.to_string()),
        _ => bail!("sha256sum {} failed: {text}", path.display()),
    }
}

/// The first IPv4 address of `ifname` as `ip` reports it (the agent reads it with getifaddrs,
/// i.e. netlink, which QEMU translates).
fn ip_v4(ifname: &str) -> anyhow::Result<Option<String>> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", ifname])
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip addr show dev {ifname}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string))
}

#[test]
fn loongarch64_agent_under_qemu_user_inspects_heartbeats_and_deploys() -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = agent_binary()?;
    let qemu = qemu()?;
    let out = Command::new(&qemu).arg(&bin).arg("--version").output()?;
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && version.trim() == format!("ironic-agent {}", env!("CARGO_PKG_VERSION")),
        "{} {} --version: {} {version}{}",
        qemu.display(),
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir()?;
    let images = e2e_tests::images::images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    whole_disk_image(&raw, IMAGE)?;
    let reference = std::fs::read(&raw)?;
    let sha = sha256_file(&raw)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 64 * MIB)?;
    // The disk starts with garbage, so a deploy that writes nothing cannot pass.
    let lo_path = lo.path.display().to_string();
    sh(&format!(
        "dd if=/dev/urandom of={lo_path} bs=1M count=4 conv=notrunc status=none"
    ))?;

    let phase = |what: &str| eprintln!("[{:5.1} s] {what}", started.elapsed().as_secs_f64());
    phase("image and loop device ready");
    let shim = Shim::start_with_images(dir.path(), &images, &[])?;
    shim.create_host_node("la1", "inspect wait")?;
    phase("shim up, node enrolled");

    // Auto-TLS stays on (the shim's default requires it): ring and rcgen run emulated too.
    let port = free_port();
    let flags = loopback_agent_flags(port, &lo.path);
    let cmdline = format!(
        "ipa-api-url={u} ipa-inspection-callback-url={u}/v1/continue_inspection \
         ipa-inspection-dhcp-wait-timeout=5 ipa-lookup-timeout=60",
        u = shim.url
    );
    let mut under_qemu = Command::new(&qemu);
    under_qemu.arg(&bin);
    let agent = start_agent_with(
        under_qemu,
        dir.path(),
        "la-agent",
        &cmdline,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;

    // Inspection: inventory stored, the node moved on to manageable. The inventory comes from
    // the loongarch64 code (architecture) reading the host's /proc and /sys.
    let n = wait_for(T, "inspection data in the shim", || {
        shim.node("la1")
            .ok()
            .filter(|n| n.get("inventory").is_some_and(|i| !i.is_null()))
    })?;
    assert_eq!(
        n["provision_state"], "manageable",
        "inspect wait → manageable"
    );
    phase("inspected");
    let inv = &n["inventory"];
    assert_eq!(inv["cpu"]["architecture"], "loongarch64", "{}", inv["cpu"]);
    assert!(
        inv["memory"]["total"].as_u64().unwrap_or(0) > 0,
        "{}",
        inv["memory"]
    );
    // The NICs (by MAC) with their IPv4 address: getifaddrs runs on QEMU's netlink translation.
    let interfaces = inv["interfaces"].as_array().cloned().unwrap_or_default();
    for m in &host_macs()? {
        let iface = interfaces
            .iter()
            .find(|i| i["mac_address"] == m.as_str())
            .with_context(|| format!("inventory lacks NIC {m}: {interfaces:?}"))?;
        let name = iface["name"].as_str().unwrap_or_default();
        assert_eq!(
            iface["ipv4_address"].as_str().map(str::to_string),
            ip_v4(name)?,
            "IPv4 address of {name}"
        );
    }
    let disks: Vec<&str> = inv["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        disks.contains(&lo_path.as_str()),
        "the allowed loop device is not in the inventory's disks: {disks:?}"
    );
    assert!(
        n["inspection_data"]["error"].is_null(),
        "{}",
        n["inspection_data"]
    );

    // Lookup, then heartbeats (the shim checks token, version and callback URL).
    let n = wait_for(T, "three heartbeats", || {
        shim.node("la1").ok().filter(|n| {
            dii(n, "agent_heartbeat_count")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                >= 3
        })
    })?;
    let log = agent.output();
    assert!(
        log.contains("lookup succeeded"),
        "no lookup in the agent log"
    );
    assert_eq!(
        dii(&n, "agent_url"),
        Some(&Value::String(format!("https://127.0.0.1:{port}"))),
        "auto-TLS callback URL"
    );
    assert_eq!(
        dii(&n, "agent_version"),
        Some(&Value::String(env!("CARGO_PKG_VERSION").into()))
    );
    assert!(
        dii(&n, "agent_verify_ca").is_some(),
        "auto-TLS certificate not sent"
    );

    // A command sent by the shim through the agent's API (over the agent's TLS).
    let r = shim.cli_json(&["agent", "la1", "poll.get_hardware_info", "--wait"])?;
    assert_eq!(r["command_status"], "SUCCEEDED", "{r}");
    assert_eq!(r["command_name"], "get_hardware_info");
    assert_eq!(
        r["command_result"]["cpu"]["architecture"], "loongarch64",
        "{r}"
    );

    // The whole deploy, as Ironic drives it: get_deploy_steps, write_image (raw, streamed),
    // get_partition_uuids, power off.
    let deploy_started = Instant::now();
    let out = shim
        .deploy_command(
            "la1",
            &format!("{}/images/disk.raw", shim.url),
            &sha,
            &lo.path,
        )
        .args(["--timeout", "150"])
        .output()?;
    assert_success(&out, "deploy");
    phase(&format!(
        "deployed {} MiB in {:.1} s",
        IMAGE / MIB,
        deploy_started.elapsed().as_secs_f64()
    ));
    let n = shim.node("la1")?;
    assert_eq!(n["provision_state"], "active", "{n}");
    assert!(
        read_range(&lo.path, 0, IMAGE)? == reference,
        "{lo_path} differs from the image"
    );
    let power = dir.path().join("la-agent.power");
    wait_for(T, "the recorded power-off", || {
        std::fs::read_to_string(&power)
            .ok()
            .filter(|p| p == "poweroff\n")
    })?;
    // Anything the agent warned about, and what QEMU could not emulate (with QEMU_LOG=unimp in
    // the environment QEMU logs unsupported calls into the agent's log).
    for line in agent.output().lines().filter(|l| {
        l.contains(" WARN ")
            || l.contains(" ERROR ")
            || l.contains("Unsupported")
            || l.contains("nimplemented")
    }) {
        eprintln!("agent: {line}");
    }
    drop(agent);
    phase("done");
    Ok(())
}
