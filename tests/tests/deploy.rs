//! End-to-end deploys: the real agent writes generated images onto real loop devices (over
//! files these tests create), driven through its API and through `conductor-shim deploy`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use e2e_tests::image_server::{Fault, ImageServer};
use e2e_tests::images::{MIB, images_dir, sha256_file, whole_disk_image, zero};
use e2e_tests::{
    Proc, Shim, assert_success, free_port, http_post, loopback_agent_flags, read_range, sh,
    start_agent, wait_agent_api, wait_for,
};
use ironic_agent::testutil::LoopDevice;
use serde_json::{Value, json};

/// IPA picks the smallest disk of at least 4 GiB: test disks are sparse files just above that.
const DISK: u64 = 4096 * MIB;
const TOKEN: &str = "deploy-token-0123456789abcdefghijklmnopqrs";
const T: Duration = Duration::from_secs(120);

struct Agent {
    _proc: Proc,
    base: String,
}

impl Agent {
    fn start(dir: &Path, name: &str, allow: &[&Path]) -> anyhow::Result<Agent> {
        let port = free_port();
        let mut flags: Vec<String> = vec!["--listen".into(), format!("127.0.0.1:{port}")];
        for a in allow {
            flags.push("--allow-device".into());
            flags.push(a.display().to_string());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let proc = start_agent(
            dir,
            name,
            &format!("ipa-agent-token={TOKEN} ipa-image-download-connection-retry-interval=0"),
            &flags,
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_agent_api(&base, T)?;
        Ok(Agent { _proc: proc, base })
    }

    /// Runs a command to completion; returns the final result.
    fn run(&self, name: &str, params: Value) -> anyhow::Result<Value> {
        let body = json!({"name": name, "params": params}).to_string();
        let (s, v) = http_post(
            &format!("{}/v1/commands/?agent_token={TOKEN}&wait=true", self.base),
            &body,
        )?;
        if s != 200 {
            bail!("{name}: HTTP {s}: {v}");
        }
        Ok(v)
    }
}

fn image_info(url: &str, sha: &str, extra: Value) -> Value {
    let mut info = json!({"id": url.rsplit('/').next().unwrap_or("img"), "urls": [url],
        "os_hash_algo": "sha256", "os_hash_value": sha, "stream_raw_images": true, "disk_format": "raw"});
    if let (Some(i), Some(e)) = (info.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            i.insert(k.clone(), v.clone());
        }
    }
    info
}

#[test]
fn every_format_lands_byte_identical() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    let size = 40 * MIB;
    whole_disk_image(&raw, size, size)?;
    let r = raw.display();
    sh(&format!(
        "gzip -k -1 {r} && zstd -q -k {r} && xz -k -0 -T1 {r}"
    ))?;
    sh(&format!(
        "qemu-img convert -f raw -O qcow2 {r} {}",
        images.join("disk.qcow2").display()
    ))?;
    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 160 * MIB)?;
    let agent = Agent::start(dir.path(), "fmt", &[&lo.path])?;
    let reference = std::fs::read(&raw)?;
    let signature = format!(
        "0x{:08x}",
        u32::from_le_bytes([
            reference[440],
            reference[441],
            reference[442],
            reference[443]
        ])
    );

    for (file, disk_format) in [
        ("disk.raw", "raw"),
        ("disk.raw.gz", "raw"),
        ("disk.raw.zst", "raw"),
        ("disk.raw.xz", "raw"),
        ("disk.qcow2", "qcow2"),
    ] {
        sh(&format!(
            "dd if=/dev/urandom of={} bs=1M count=2 conv=notrunc status=none",
            lo.path.display()
        ))?;
        let url = format!("{}/{file}", server.url);
        let info = image_info(
            &url,
            &sha256_file(&images.join(file))?,
            json!({"disk_format": disk_format}),
        );
        let v = agent.run(
            "standby.prepare_image",
            json!({"image_info": info, "configdrive": null}),
        )?;
        assert_eq!(v["command_status"], "SUCCEEDED", "{file}: {v}");
        let text = v["command_result"]["result"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(&format!(
                "prepare_image: image ({file}) written to device {}",
                lo.path.display()
            )),
            "{text}"
        );
        assert_eq!(
            read_range(&lo.path, 0, size)?,
            reference,
            "{file}: disk differs from the reference"
        );
        let u = agent.run("standby.get_partition_uuids", json!({}))?;
        assert_eq!(
            u["command_result"],
            json!({"root uuid": signature}),
            "{file}"
        );
    }
    // The qcow2 spool at the end of the disk was cleared.
    let end = lo.size()?;
    assert!(
        zero(&read_range(&lo.path, end - 10 * MIB, 10 * MIB)?),
        "spool area not cleared"
    );
    drop(agent);
    Ok(())
}

#[test]
fn bad_images_fail_and_leave_no_bootable_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    let size = 24 * MIB;
    whole_disk_image(&raw, size, size)?;
    sh(&format!(
        "cd {} && qemu-img create -q -f qcow2 base.qcow2 16M && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2",
        images.display()
    ))?;
    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 64 * MIB)?;
    let agent = Agent::start(dir.path(), "bad", &[&lo.path])?;
    let sha = sha256_file(&raw)?;
    let disk_end = lo.size()?;
    let wiped = |lo: &LoopDevice| -> anyhow::Result<bool> {
        Ok(zero(&read_range(&lo.path, 0, MIB)?)
            && zero(&read_range(&lo.path, disk_end - MIB, MIB)?))
    };
    let fill = |lo: &LoopDevice| {
        sh(&format!(
            "dd if=/dev/urandom of={} bs=1M count=64 status=none",
            lo.path.display()
        ))
    };

    // Wrong checksum.
    fill(&lo)?;
    let bad = "0".repeat(64);
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": image_info(&format!("{}/disk.raw", server.url), &bad, json!({}))}),
    )?;
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(v["command_error"]["type"], "ImageChecksumError", "{v}");
    assert!(
        wiped(&lo)?,
        "partition table areas must be wiped after a checksum failure"
    );

    // A download that is always cut short.
    fill(&lo)?;
    server.set_fault("disk.raw", Fault::AlwaysTruncateAt(5 * MIB));
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": image_info(&format!("{}/disk.raw", server.url), &sha, json!({}))}),
    )?;
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert!(
        wiped(&lo)?,
        "partition table areas must be wiped after a short download"
    );
    server.clear_fault("disk.raw");

    // A qcow2 with a backing file.
    fill(&lo)?;
    let overlay = images.join("overlay.qcow2");
    let v = agent.run("standby.prepare_image", json!({"image_info": image_info(&format!("{}/overlay.qcow2", server.url), &sha256_file(&overlay)?, json!({"disk_format": "qcow2"}))}))?;
    assert_eq!(v["command_status"], "FAILED");
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap_or_default()
            .contains("backing"),
        "{v}"
    );
    assert!(wiped(&lo)?);

    // Raw bytes claiming to be qcow2.
    fill(&lo)?;
    let v = agent.run("standby.prepare_image", json!({"image_info": image_info(&format!("{}/disk.raw", server.url), &sha, json!({"disk_format": "qcow2"}))}))?;
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(v["command_error"]["type"], "InvalidImage", "{v}");
    assert!(wiped(&lo)?);

    // An image larger than its target (a 24 MiB image into a 16 MiB root partition).
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": image_info(&format!("{}/disk.raw", server.url), &sha,
        json!({"image_type": "partition", "root_mb": 16, "deploy_boot_mode": "bios"}))}),
    )?;
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert!(wiped(&lo)?);
    Ok(())
}

#[test]
fn downloads_fail_over_and_resume() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    let size = 48 * MIB;
    whole_disk_image(&raw, size, size)?;
    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 64 * MIB)?;
    let agent = Agent::start(dir.path(), "resume", &[&lo.path])?;
    let sha = sha256_file(&raw)?;

    // 404 on the first URL, good second URL.
    let mut info = image_info(&format!("{}/disk.raw", server.url), &sha, json!({}));
    info["urls"] = json!([
        format!("{}/missing.raw", server.url),
        format!("{}/disk.raw", server.url)
    ]);
    let v = agent.run("standby.prepare_image", json!({"image_info": info}))?;
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(read_range(&lo.path, 0, size)?, std::fs::read(&raw)?);

    // Connection dropped half-way: resumed with Range, not restarted.
    sh(&format!(
        "dd if=/dev/zero of={} bs=1M count=64 status=none",
        lo.path.display()
    ))?;
    let before = server.bytes_served();
    server.set_fault("disk.raw", Fault::DropOnceAfter(20 * MIB));
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": image_info(&format!("{}/disk.raw", server.url), &sha, json!({}))}),
    )?;
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let served = server.bytes_served() - before;
    assert!(
        served <= size + 8 * MIB,
        "served {served} bytes for a {size}-byte image: restarted instead of resuming"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.contains("range=Some((20971520")),
        "no Range request: {:?}",
        server.requests()
    );
    assert_eq!(read_range(&lo.path, 0, size)?, std::fs::read(&raw)?);
    Ok(())
}

#[test]
fn devices_outside_the_allow_list_are_never_written() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    whole_disk_image(&raw, 8 * MIB, 8 * MIB)?;
    let server = ImageServer::start(&images)?;
    let allowed = LoopDevice::create(&dir.path().join("allowed.img"), DISK + 32 * MIB)?;
    let other = LoopDevice::create(&dir.path().join("other.img"), 32 * MIB)?;
    sh(&format!(
        "dd if=/dev/urandom of={} bs=1M count=32 status=none",
        other.path.display()
    ))?;
    let before = std::fs::read(&other.file)?;
    let agent = Agent::start(dir.path(), "guard", &[&allowed.path])?;
    let node = json!({"uuid": "n1", "instance_info": {"root_device": {"name": other.path.display().to_string()}}});
    let step = json!({"step": "write_image", "interface": "deploy", "priority": 0,
        "args": {"image_info": image_info(&format!("{}/disk.raw", server.url), &sha256_file(&raw)?, json!({})), "configdrive": null}});
    let v = agent.run(
        "deploy.execute_deploy_step",
        json!({"step": step, "node": node, "ports": []}),
    )?;
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(
        std::fs::read(&other.file)?,
        before,
        "a device outside --allow-device was modified"
    );
    Ok(())
}

#[test]
fn partition_image_with_layout_and_uuids() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let fs = images.join("root.img");
    std::fs::File::create(&fs)?.set_len(24 * MIB)?;
    let uuid = "3f1c9a52-6d1e-4b7a-9c0e-1b2c3d4e5f60";
    sh(&format!(
        "mkfs.ext4 -q -F -U {uuid} -L root {}",
        fs.display()
    ))?;
    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 128 * MIB)?;
    let agent = Agent::start(dir.path(), "part", &[&lo.path])?;
    let info = image_info(
        &format!("{}/root.img", server.url),
        &sha256_file(&fs)?,
        json!({"image_type": "partition", "root_mb": 32, "swap_mb": 8, "deploy_boot_mode": "bios", "disk_label": "msdos"}),
    );
    let step = json!({"step": "write_image", "interface": "deploy", "args": {"image_info": info, "configdrive": null}});
    let v = agent.run(
        "deploy.execute_deploy_step",
        json!({"step": step, "node": {"uuid": "n2"}, "ports": []}),
    )?;
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(v["command_result"]["deploy_step"]["step"], "write_image");
    let u = agent.run("standby.get_partition_uuids", json!({}))?["command_result"].clone();
    assert_eq!(u["root uuid"], uuid, "{u}");
    assert_eq!(u["efi system partition uuid"], Value::Null);
    let root = PathBuf::from(u["partitions"]["root"].as_str().unwrap_or_default());
    assert!(u["partitions"]["swap"].is_string(), "{u}");
    // Root is the last partition, exactly root_mb, holding the image.
    let table: Value = serde_json::from_slice(
        &Command::new("sfdisk")
            .arg("--json")
            .arg(&lo.path)
            .output()?
            .stdout,
    )?;
    let parts = table["partitiontable"]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = parts.last().cloned().unwrap_or_default();
    assert_eq!(
        last["node"].as_str(),
        Some(root.display().to_string().as_str())
    );
    let sector = 512;
    assert_eq!(last["size"].as_u64().map(|s| s * sector), Some(32 * MIB));
    let start = last["start"].as_u64().unwrap_or(0) * sector;
    assert_eq!(read_range(&lo.path, start, 24 * MIB)?, std::fs::read(&fs)?);
    Ok(())
}

/// The shim drives a whole deploy like Ironic: lookup, heartbeats, get_deploy_steps,
/// write_image, get_partition_uuids, power_off; the disk matches the image.
#[test]
fn shim_deploys_onto_a_loop_device() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    let size = 32 * MIB;
    whole_disk_image(&raw, size, size)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 64 * MIB)?;
    let shim = Shim::start_with_images(dir.path(), &images, &[])?;
    shim.create_host_node("d1", "manageable")?;
    let port = free_port();
    let flags = loopback_agent_flags(port, &lo.path);
    let _agent = start_agent(
        dir.path(),
        "shimagent",
        &shim.lookup_cmdline(),
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    shim.wait_first_heartbeat("d1", T)?;
    let url = format!("{}/images/disk.raw", shim.url);
    let out = shim
        .deploy_command("d1", &url, &sha256_file(&raw)?, &lo.path)
        .args(["--timeout", "300"])
        .output()?;
    assert_success(&out, "deploy");
    let n = shim.cli_json(&["node", "show", "d1"])?;
    assert_eq!(n["provision_state"], "active", "{n}");
    assert_eq!(read_range(&lo.path, 0, size)?, std::fs::read(&raw)?);
    let power = dir.path().join("shimagent.power");
    wait_for(T, "the recorded power-off", || {
        std::fs::read_to_string(&power)
            .ok()
            .filter(|p| p == "poweroff\n")
    })?;
    Ok(())
}

/// A whole-disk image with a config drive: the ISO lands in a new partition in the last 64 MiB
/// of the disk, after the image's own partitions.
#[test]
fn whole_disk_image_with_config_drive() -> anyhow::Result<()> {
    use base64::Engine;
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    whole_disk_image(&raw, 16 * MIB, 16 * MIB)?;
    let content = dir.path().join("cd/openstack/latest");
    std::fs::create_dir_all(&content)?;
    std::fs::write(content.join("meta_data.json"), br#"{"uuid": "n3"}"#)?;
    let iso = dir.path().join("cd.iso");
    sh(&format!(
        "genisoimage -quiet -R -J -V config-2 -o {} {}",
        iso.display(),
        dir.path().join("cd").display()
    ))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(&iso)?)?;
    let configdrive = base64::engine::general_purpose::STANDARD.encode(gz.finish()?);

    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 64 * MIB)?;
    let agent = Agent::start(dir.path(), "cfg", &[&lo.path])?;
    let info = image_info(
        &format!("{}/disk.raw", server.url),
        &sha256_file(&raw)?,
        json!({}),
    );
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": info, "configdrive": configdrive}),
    )?;
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");

    let table: Value = serde_json::from_slice(
        &Command::new("sfdisk")
            .arg("--json")
            .arg(&lo.path)
            .output()?
            .stdout,
    )?;
    let parts = table["partitiontable"]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(parts.len(), 2, "{table}");
    let cfg = &parts[1];
    let sector = 512;
    let start = cfg["start"].as_u64().unwrap_or(0) * sector;
    let end = start + cfg["size"].as_u64().unwrap_or(0) * sector;
    let disk_end = lo.size()?;
    assert!(
        start >= disk_end - 64 * MIB && end <= disk_end,
        "config drive not in the last 64 MiB: {cfg}"
    );
    let iso_bytes = std::fs::read(&iso)?;
    assert_eq!(
        read_range(&lo.path, start, iso_bytes.len() as u64)?,
        iso_bytes,
        "config drive content differs"
    );
    // The image itself is intact (its table now also lists the config drive).
    assert_eq!(
        read_range(&lo.path, MIB, 14 * MIB)?,
        read_range(&raw, MIB, 14 * MIB)?
    );
    Ok(())
}

/// The reference image of the issue: a GPT and an ext4 root (made by sgdisk and mkfs.ext4 -d),
/// deployed raw and as qcow2 onto a larger disk. Everything but the primary GPT header lands
/// byte-identical (the header must change: the backup GPT moves to the end of the larger disk),
/// the moved GPT verifies, and the root filesystem is intact.
#[test]
fn gpt_ext4_image_raw_and_qcow2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("gpt.raw");
    let size = 48 * MIB;
    std::fs::File::create(&raw)?.set_len(size)?;
    sh(&format!(
        "sgdisk -o -n 1:2048:0 -t 1:8300 {} >/dev/null",
        raw.display()
    ))?;
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::write(root.join("etc/marker"), "deployed by ironic-agent\n")?;
    let uuid = "0d6c2d3e-1111-4222-8333-444455556666";
    let part_offset = 2048 * 512;
    let part_kib = (size - part_offset - 34 * 512) / 1024;
    sh(&format!(
        "mkfs.ext4 -q -F -U {uuid} -L root -d {} -E offset={part_offset} {} {part_kib}k",
        root.display(),
        raw.display()
    ))?;
    sh(&format!(
        "qemu-img convert -f raw -O qcow2 {} {}",
        raw.display(),
        images.join("gpt.qcow2").display()
    ))?;
    let reference = std::fs::read(&raw)?;
    let server = ImageServer::start(&images)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 128 * MIB)?;
    let agent = Agent::start(dir.path(), "gpt", &[&lo.path])?;
    for (file, fmt) in [("gpt.raw", "raw"), ("gpt.qcow2", "qcow2")] {
        sh(&format!(
            "dd if=/dev/urandom of={} bs=1M count=64 status=none",
            lo.path.display()
        ))?;
        let info = image_info(
            &format!("{}/{file}", server.url),
            &sha256_file(&images.join(file))?,
            json!({"disk_format": fmt}),
        );
        let v = agent.run("standby.prepare_image", json!({"image_info": info}))?;
        assert_eq!(v["command_status"], "SUCCEEDED", "{file}: {v}");
        let disk = read_range(&lo.path, 0, size)?;
        let backup = usize::try_from(size - 33 * 512)?;
        // The protective MBR keeps its boot code and signature; its 0xEE entry grows to the disk.
        assert_eq!(
            disk[..446],
            reference[..446],
            "{file}: MBR boot code differs"
        );
        assert_eq!(disk[510..512], reference[510..512]);
        assert_eq!(disk[446 + 4], 0xee, "{file}: not a protective MBR");
        assert_eq!(
            disk[1024..backup],
            reference[1024..backup],
            "{file}: partition entries or data differ"
        );
        let verify = Command::new("sgdisk").arg("-v").arg(&lo.path).output()?;
        let text = String::from_utf8_lossy(&verify.stdout);
        assert!(
            text.contains("No problems found"),
            "{file}: sgdisk -v: {text}"
        );
        let probe = Command::new("blkid")
            .args([
                "-p",
                "-O",
                &part_offset.to_string(),
                "-s",
                "UUID",
                "-o",
                "value",
            ])
            .arg(&lo.path)
            .output()?;
        assert_eq!(
            String::from_utf8_lossy(&probe.stdout).trim(),
            uuid,
            "{file}: ext4 root not found"
        );
    }
    Ok(())
}
