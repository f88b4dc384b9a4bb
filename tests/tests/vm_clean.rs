//! Cleaning and software RAID on emulated hardware: a UEFI x86_64 VM with two virtio disks and
//! one NVMe disk boots the real ramdisk, and the conductor shim drives manual cleaning steps
//! through the agent, as Ironic does. Between steps the host looks at the VM's disk files:
//!
//! 1. `erase_devices_metadata` leaves no signature (`wipefs -n`, `blkid -p`, also inside the
//!    old partitions);
//! 2. `create_configuration` builds RAID-1 + RAID-0 over both virtio disks (the guest's
//!    `/proc/mdstat` from the agent's log bundle, the arrays in its inventory, and `mdadm
//!    --examine` on the disk files from the host), with the mirrored ESP under UEFI;
//! 3. `erase_devices` skips the RAID members and erases the NVMe disk with NVMe format (the
//!    agent's log says so; the disk file reads back as zeros);
//! 4. a clean step sent with another hardware-manager version gets `CLEAN_VERSION_MISMATCH`;
//! 5. `delete_configuration` leaves both disks without table, signature or md superblock;
//!    then `clean_uefi_nvram` with `match_patterns` deletes the firmware's own boot entries;
//! 6. `create_configuration` again, then a deploy of the test OS's whole-disk UEFI image lands
//!    on the RAID-1 array (`/dev/md0`): the image is on both mirror halves, byte for byte,
//!    except its ESP, whose files `install_bootloader` moved into the ESP mirror; the saved
//!    UEFI variable store holds one boot entry per ESP half (`Marker OS (RAID, part<k>)`);
//!    and the two disks alone boot the test OS.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e_tests::qemu::{
    Arch, Firmware, Nic, Vm, VmSpec, boot_deployed_disk, deploy, esp_on_disk, guest_mac, report,
    sha256_hex, sparse_disk, test_os_dir, vm_shim, wait_vm,
};
use e2e_tests::{Shim, efivars, wait_for};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
/// The virtio disks: room for the 551 MiB ESP area, a 1 GiB RAID-1 and a ~124 MiB RAID-0 of
/// the rest (small, because `erase_devices` overwrites the arrays' contents, as IPA does).
const VIRTIO_DISK: u64 = 1700 * MIB;
const NVME_DISK: u64 = 256 * MIB;
const BOOT: Duration = Duration::from_secs(300);
const NAME: &str = "clean-uefi";

/// The PARTUUID of partition `n` of the GPT disk file `disk`, lower-case.
fn partuuid(disk: &Path, n: usize) -> anyhow::Result<String> {
    let t: Value = serde_json::from_str(&run("sfdisk", &["--json", &disk.to_string_lossy()])?)?;
    t["partitiontable"]["partitions"]
        .get(n - 1)
        .and_then(|p| p["uuid"].as_str())
        .map(str::to_ascii_lowercase)
        .with_context(|| format!("no partition {n} on {}", disk.display()))
}

/// Runs a host command, returning stdout; fails with stderr on a non-zero exit.
fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A read-only loop device over `[offset, offset + size)` of `file`; detached on drop.
struct Window(String);

impl Window {
    fn open(file: &Path, offset: u64, size: u64) -> anyhow::Result<Window> {
        let f = file.to_str().context("non-UTF-8 path")?;
        let dev = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--read-only",
                "--offset",
                &offset.to_string(),
                "--sizelimit",
                &size.to_string(),
                f,
            ],
        )?;
        Ok(Window(dev.trim().to_string()))
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Every signature `wipefs -n` and `blkid -p` find on `file` (empty when clean).
fn signatures(file: &Path) -> anyhow::Result<String> {
    let f = file.to_str().context("non-UTF-8 path")?;
    let mut found = run("wipefs", &["-n", "--noheadings", "-O", "TYPE,OFFSET", f])?;
    let blkid = Command::new("blkid")
        .args(["-p", "-o", "export", f])
        .output()?;
    // blkid -p exits 2 when it finds nothing.
    if blkid.status.success() {
        found.push_str(&String::from_utf8_lossy(&blkid.stdout));
    }
    Ok(found.trim().to_string())
}

/// The partitions `sfdisk --json` reads from `file`: (start, size) in bytes.
fn partitions(file: &Path) -> anyhow::Result<Vec<(u64, u64)>> {
    let out = Command::new("sfdisk").args(["--json"]).arg(file).output()?;
    if !out.status.success() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["partitiontable"]["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["start"].as_u64().unwrap_or(0) * 512,
                p["size"].as_u64().unwrap_or(0) * 512,
            )
        })
        .collect())
}

/// `mdadm --examine` of a window of `file`; `None` without a superblock.
fn examine(file: &Path, offset: u64, size: u64) -> anyhow::Result<Option<String>> {
    let w = Window::open(file, offset, size)?;
    let out = Command::new("mdadm").args(["--examine", &w.0]).output()?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The array name in `mdadm --examine` output, without a `host:` prefix.
fn md_name(examine: &str) -> &str {
    examine
        .lines()
        .find_map(|l| l.trim().strip_prefix("Name : "))
        .map(|n| n.split_whitespace().next().unwrap_or(n))
        .map(|n| n.rsplit(':').next().unwrap_or(n))
        .unwrap_or("")
}

/// Whether every byte of `file` is zero.
fn all_zero(file: &Path) -> anyhow::Result<bool> {
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

/// Writes filesystems and a partition table onto the disk files before the VM boots, so
/// there is something to erase.
fn dirty_disks(vda: &Path, vdb: &Path, nvme: &Path) -> anyhow::Result<()> {
    let a = vda.to_str().context("path")?;
    run(
        "sgdisk",
        &["-n", "1:1M:+64M", "-n", "2:0:+64M", "-t", "2:8200", a],
    )?;
    let parts = partitions(vda)?;
    for (i, (start, size)) in parts.iter().enumerate() {
        let dev = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--offset",
                &start.to_string(),
                "--sizelimit",
                &size.to_string(),
                a,
            ],
        )?;
        let dev = dev.trim().to_string();
        let made = if i == 0 {
            run("mkfs.ext4", &["-q", "-F", "-L", "old-root", &dev])
        } else {
            run("mkswap", &["-L", "old-swap", &dev])
        };
        let _ = Command::new("losetup").args(["-d", &dev]).status();
        made?;
    }
    run(
        "mkfs.ext4",
        &["-q", "-F", "-L", "old-data", vdb.to_str().context("path")?],
    )?;
    run(
        "mkswap",
        &["-L", "nvme-swap", nvme.to_str().context("path")?],
    )?;
    // Some data in the middle of the NVMe disk, for the erase to remove.
    let mut f = std::fs::OpenOptions::new().write(true).open(nvme)?;
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(100 * MIB))?;
    f.write_all(&vec![0x5a; usize::try_from(8 * MIB)?])?;
    f.sync_all()?;
    for disk in [vda, vdb, nvme] {
        if signatures(disk)?.is_empty() {
            bail!("{} has no signature to erase", disk.display());
        }
    }
    Ok(())
}

/// Manual cleaning with one step; fails with the console on error.
fn clean(shim: &Shim, vm: &Vm, step: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    if let Err(e) = shim.cli(&["clean", NAME, "--step", step, "--timeout", "900"], false) {
        bail!(
            "clean step {step} failed: {e:#}\nnode: {}\nserial console:\n{}",
            shim.node(NAME).map(|n| n.to_string()).unwrap_or_default(),
            vm.console()
        );
    }
    let n = shim.node(NAME)?;
    if n["provision_state"] != "manageable" {
        bail!(
            "after {step} the node is {} ({})",
            n["provision_state"],
            n["last_error"]
        );
    }
    Ok(t.elapsed())
}

/// The agent's `/proc/mdstat`, from its log bundle (`log.collect_system_logs`).
fn guest_mdstat(shim: &Shim, dir: &Path) -> anyhow::Result<String> {
    let r = shim.cli_json(&["agent", NAME, "log.collect_system_logs", "--wait"])?;
    let b64 = r["command_result"]["system_logs"]
        .as_str()
        .context("no system_logs in the result")?;
    let tgz = dir.join("logs.tar.gz");
    use base64::Engine;
    std::fs::write(&tgz, base64::engine::general_purpose::STANDARD.decode(b64)?)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&tgz)?));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.file_name().is_some_and(|n| n == "mdstat") {
            let mut s = String::new();
            entry.read_to_string(&mut s)?;
            return Ok(s);
        }
    }
    bail!("no mdstat in the log bundle")
}

/// The guest's disks from `poll.get_hardware_info`: (name, size).
fn guest_disks(shim: &Shim) -> anyhow::Result<Vec<(String, u64)>> {
    let r = shim.cli_json(&["agent", NAME, "poll.get_hardware_info", "--wait"])?;
    Ok(r["command_result"]["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_string(),
                d["size"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// The RAID partitions of a member disk file after create_configuration: partition 1 (md0),
/// partition 2 (md1), partition 3 (ESP half), as (start, size).
fn raid_partitions(file: &Path) -> anyhow::Result<Vec<(u64, u64)>> {
    let p = partitions(file)?;
    if p.len() != 3 {
        bail!("{} has partitions {p:?}, expected 3", file.display());
    }
    Ok(p)
}

#[test]
fn x86_64_uefi_cleaning_and_software_raid() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images)?;
    let os_image = images.join("raid.img");
    std::fs::copy(
        test_os_dir(Arch::X86_64)?.join("whole-disk-uefi.img"),
        &os_image,
    )?;
    let image = std::fs::read(&os_image)?;
    let sha = sha256_hex(&image);
    let vars = dir.path().join("vars.fd");
    let vda = sparse_disk(&dir.path().join("vda.raw"), VIRTIO_DISK)?;
    let vdb = sparse_disk(&dir.path().join("vdb.raw"), VIRTIO_DISK)?;
    let nvme = sparse_disk(&dir.path().join("nvme.raw"), NVME_DISK)?;
    dirty_disks(&vda, &vdb, &nvme)?;

    // One zero pass for erase_devices' overwrite fallback (Ironic's
    // [deploy]shred_random_overwrite_iterations = 0).
    let (shim, shim_port) = vm_shim(
        dir.path(),
        &images,
        &["--shred-random-overwrite-iterations", "0"],
    )?;
    let mac = guest_mac(3);
    shim.cli(
        &[
            "node",
            "create",
            "--name",
            NAME,
            "--state",
            "inspect wait",
            "--mac",
            &mac,
        ],
        true,
    )?;
    let raid = json!({"logical_disks": [
        {"size_gb": 1, "raid_level": "1", "controller": "software", "volume_name": "root",
         "physical_disks": [{"name": "/dev/vda"}, {"name": "/dev/vdb"}]},
        {"size_gb": "MAX", "raid_level": "0", "controller": "software",
         "physical_disks": [{"name": "/dev/vda"}, {"name": "/dev/vdb"}]}]});
    shim.cli(
        &[
            "node",
            "set",
            NAME,
            "--target-raid-config",
            &raid.to_string(),
        ],
        true,
    )?;

    let agent_port = e2e_tests::free_port();
    let conductor = format!("http://10.0.2.2:{shim_port}");
    let mut spec = VmSpec::new(Arch::X86_64, Firmware::Uefi);
    spec.vars = Some(vars.clone());
    spec.virtio_disks.push(vda.clone());
    spec.virtio_disks.push(vdb.clone());
    spec.nvme_disks.push((nvme.clone(), "NVME-CLEAN-1".into()));
    spec.nics.push(Nic::User {
        mac: mac.clone(),
        hostfwd: vec![(agent_port, 9999)],
    });
    spec.lifetime = Duration::from_secs(1800);
    spec.append = format!(
        "loglevel=4 ipa-api-url={conductor} \
         ipa-inspection-callback-url={conductor}/v1/continue_inspection \
         ipa-advertise-host=127.0.0.1 ipa-advertise-port={agent_port} \
         ironic_agent.allow_device=/dev/vda,/dev/vdb,/dev/nvme0n1"
    );
    let mut vm = Vm::start(&spec, &dir.path().join("console.log"))?;
    wait_vm(&mut vm, BOOT, "inspection and the first heartbeat", || {
        shim.node(NAME).ok().filter(|n| {
            n["provision_state"] == "manageable"
                && n["driver_internal_info"]["agent_heartbeat_count"]
                    .as_u64()
                    .is_some_and(|c| c >= 1)
        })
    })?;
    let first_heartbeat = vm.started.elapsed();
    // The builder installed the example vendor plug-in; without its config file it stays out
    // of the chain, but the agent asked it.
    let console = vm.console();
    assert!(
        console.contains("hardware-managers.d/firmware-manager"),
        "the agent did not find the firmware-manager plug-in:\n{console}"
    );

    // 1. erase_devices_metadata: nothing left for wipefs or blkid, not even in the old
    //    partitions of vda.
    let old_parts = partitions(&vda)?;
    let t_metadata = clean(&shim, &vm, "erase_devices_metadata")?;
    for disk in [&vda, &vdb, &nvme] {
        let found = signatures(disk)?;
        assert!(found.is_empty(), "{} still has: {found}", disk.display());
    }
    for (start, size) in old_parts {
        let w = Window::open(&vda, start, size)?;
        let out = Command::new("blkid").args(["-p", &w.0]).output()?;
        assert!(
            !out.status.success(),
            "old partition at {start} still has {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // 2. create_configuration: RAID-1 "root" + RAID-0 + the ESP mirror.
    let t_create = clean(&shim, &vm, "create_configuration")?;
    let mdstat = guest_mdstat(&shim, dir.path())?;
    for want in [
        "md0 : active raid1",
        "md1 : active raid0",
        "md2 : active raid1",
    ] {
        assert!(
            mdstat.contains(want),
            "guest /proc/mdstat lacks {want:?}:\n{mdstat}"
        );
    }
    let disks = guest_disks(&shim)?;
    let names: Vec<&str> = disks.iter().map(|d| d.0.as_str()).collect();
    assert!(
        names.contains(&"/dev/md0") && names.contains(&"/dev/md1"),
        "{disks:?}"
    );
    let md0 = disks.iter().find(|d| d.0 == "/dev/md0").map_or(0, |d| d.1);
    assert!(
        (1000 * MIB..=1024 * MIB).contains(&md0),
        "md0 is {md0} bytes"
    );
    let n = shim.node(NAME)?;
    assert_eq!(
        n["raid_config"]["logical_disks"], raid["logical_disks"],
        "raid_config stored from the step result: {n}"
    );
    let mut data_offset = 0;
    for disk in [&vda, &vdb] {
        let p = raid_partitions(disk)?;
        assert_eq!(
            p[0],
            (551 * MIB, 1024 * MIB),
            "{} md0 member",
            disk.display()
        );
        let e0 = examine(disk, p[0].0, p[0].1)?.context("no md superblock on partition 1")?;
        assert!(
            e0.contains("Raid Level : raid1") && md_name(&e0) == "root",
            "{e0}"
        );
        let e1 = examine(disk, p[1].0, p[1].1)?.context("no md superblock on partition 2")?;
        assert!(e1.contains("Raid Level : raid0"), "{e1}");
        let e2 = examine(disk, p[2].0, p[2].1)?.context("no md superblock on the ESP half")?;
        assert!(
            e2.contains("Version : 1.0") && md_name(&e2) == "esp",
            "{e2}"
        );
        data_offset = e0
            .lines()
            .find_map(|l| l.trim().strip_prefix("Data Offset : "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("no data offset")?
            * 512;
    }

    // 3. erase_devices: the RAID members are skipped, the NVMe disk gets NVMe format.
    let t_erase = clean(&shim, &vm, "erase_devices")?;
    let console = vm.console();
    assert!(
        console.contains("/dev/nvme0n1 with NVMe"),
        "the agent's log does not say how the NVMe disk was erased:\n{console}"
    );
    assert!(
        all_zero(&nvme)?,
        "the NVMe disk does not read back as zeros"
    );
    assert!(
        examine(&vda, 551 * MIB, 1024 * MIB)?.is_some(),
        "erase_devices touched a RAID member"
    );

    // 4. Another hardware-manager version: CLEAN_VERSION_MISMATCH, nothing runs.
    let params = json!({
        "step": {"step": "erase_devices_metadata", "interface": "deploy", "priority": 99,
                 "reboot_requested": false, "abortable": true},
        "node": {}, "ports": [],
        "clean_version": {"generic_hardware_manager": "0.9"}});
    let r = shim.cli_json(&[
        "agent",
        NAME,
        "clean.execute_clean_step",
        "--params",
        &params.to_string(),
        "--wait",
    ])?;
    assert_eq!(r["command_status"], "CLEAN_VERSION_MISMATCH", "{r}");
    assert_eq!(r["command_error"]["type"], "VersionMismatch", "{r}");
    assert!(
        examine(&vda, 551 * MIB, 1024 * MIB)?.is_some(),
        "the mismatched step ran"
    );

    // 5. delete_configuration: no array, table, signature or superblock remains.
    let members = raid_partitions(&vda)?;
    let t_delete = clean(&shim, &vm, "delete_configuration")?;
    assert_eq!(
        guest_mdstat(&shim, dir.path())?
            .matches(" : active")
            .count(),
        0
    );
    for disk in [&vda, &vdb] {
        assert_eq!(
            partitions(disk)?,
            vec![],
            "{} still has partitions",
            disk.display()
        );
        let found = signatures(disk)?;
        assert!(found.is_empty(), "{} still has: {found}", disk.display());
        for (start, size) in &members {
            assert!(
                examine(disk, *start, *size)?.is_none(),
                "{} keeps an md superblock at {start}",
                disk.display()
            );
        }
    }
    let n = shim.node(NAME)?;
    assert!(
        n["raid_config"].get("logical_disks").is_none(),
        "raid_config not cleared: {n}"
    );

    // 5b. clean_uefi_nvram with match_patterns: the firmware's own entries (UEFI shell, setup
    // menu: FvFile device paths) are deleted in the guest's NVRAM; checked in the saved
    // variable store after the deploy below (no reboot in between).
    let nvram_step = json!({"interface": "deploy", "step": "clean_uefi_nvram",
                            "args": {"match_patterns": ["FvFile\\("]}})
    .to_string();
    clean(&shim, &vm, &nvram_step)?;
    assert!(
        vm.console().contains("deleting UEFI boot entry"),
        "clean_uefi_nvram deleted nothing:\n{}",
        vm.console()
    );

    // 6. Again, then deploy onto the RAID-1 array.
    clean(&shim, &vm, "create_configuration")?;
    let t_deploy = Instant::now();
    let url = format!("{conductor}/images/raid.img");
    deploy(&shim, &vm, NAME, &url, &sha)?;
    let deploy_time = t_deploy.elapsed();
    assert_eq!(shim.node(NAME)?["provision_state"], "active");
    let console = vm.console();
    assert!(
        console.contains("/dev/md0"),
        "the deploy did not target /dev/md0:\n{console}"
    );
    vm.wait_poweroff(Duration::from_secs(120))?;
    wait_for(Duration::from_secs(30), "power state off", || {
        shim.node(NAME)
            .ok()
            .filter(|n| n["power_state"] == "power off")
    })?;
    let console = vm.console();
    drop(vm);
    // The image is on both md0 halves, except inside its ESP, which wipefs cleared after the
    // files were copied into the ESP mirror, and the GPT headers and protective MBR, which
    // change when the backup GPT moves to the end of md0.
    let (esp_start, esp_end) = esp_on_disk(&os_image)?.range;
    let backup_gpt = image.len() as u64 - 33 * 512;
    for disk in [&vda, &vdb] {
        let out = Command::new("cmp")
            .arg("-l")
            .arg("-n")
            .arg(image.len().to_string())
            .arg("-i")
            .arg(format!("0:{}", 551 * MIB + data_offset))
            .arg(&os_image)
            .arg(disk)
            .output()?;
        let differing: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .map(|at| at - 1)
            .collect();
        let outside: Vec<&u64> = differing
            .iter()
            .filter(|&&at| at >= 1024 && at < backup_gpt && (at < esp_start || at >= esp_end))
            .collect();
        assert!(
            outside.is_empty() && differing.iter().any(|&at| at >= esp_start && at < esp_end),
            "{}: the md0 half differs from the image outside its ESP at {outside:?} (or the \
             image's ESP was not wiped: {} differing bytes)",
            disk.display(),
            differing.len()
        );
    }
    // One boot entry per ESP half, on that half's partition; the firmware entries
    // clean_uefi_nvram deleted are gone.
    let (entries, order) = efivars::read_boot_entries(&vars)?;
    let shown: Vec<String> = entries.iter().map(ToString::to_string).collect();
    assert!(
        !entries.iter().any(|e| e.device_path.contains("FvFile(")),
        "clean_uefi_nvram left FvFile entries: {shown:#?}"
    );
    for (k, disk) in [&vda, &vdb].into_iter().enumerate() {
        let half = partuuid(disk, 3)?;
        let label = format!("Marker OS (RAID, part{k})");
        let e = entries
            .iter()
            .find(|e| e.description == label)
            .with_context(|| format!("no boot entry {label:?}: {shown:#?}\n{console}"))?;
        assert_eq!(e.partition_guid().as_deref(), Some(half.as_str()), "{e}");
        assert_eq!(
            e.file().as_deref(),
            Some("\\EFI\\marker\\grubx64.efi"),
            "{e}"
        );
        assert!(order.contains(&e.number), "{e} not in BootOrder {order:?}");
    }
    // The two disks alone boot the test OS from an ESP half.
    let (marker, disk_boot) = boot_deployed_disk(
        Arch::X86_64,
        Firmware::Uefi,
        &[vda.clone(), vdb.clone()],
        Some(&vars),
        &dir.path().join("disk-boot.log"),
    )?;
    assert!(marker.contains("marker.case=whole-disk-uefi"), "{marker}");

    let timings = json!({
        "test": "x86_64-uefi-clean-raid",
        "first_heartbeat_s": first_heartbeat.as_secs_f64(),
        "erase_devices_metadata_s": t_metadata.as_secs_f64(),
        "create_configuration_s": t_create.as_secs_f64(),
        "erase_devices_s": t_erase.as_secs_f64(),
        "delete_configuration_s": t_delete.as_secs_f64(),
        "deploy_on_md0_s": deploy_time.as_secs_f64(),
        "raid_disk_boot_s": disk_boot.as_secs_f64(),
    });
    eprintln!("VM timings: {timings}");
    report("x86_64-uefi-clean-raid", &timings)?;
    Ok(())
}
