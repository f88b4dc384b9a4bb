//! Whole-system tests in QEMU (TCG): the real minimal ramdisk boots, the agent in it is
//! inspected by the conductor shim on the host, looks up, heartbeats, and the shim deploys a
//! test OS (`tests/images/build-test-os.sh`: the same Debian kernel and a busybox init that
//! prints a marker line) onto the VM's virtio disk: the whole-disk UEFI image under OVMF and
//! AAVMF, the partition image under SeaBIOS. The agent installs the bootloader (UEFI boot
//! entry from the ESP's CSV; GRUB from the image in a chroot) and powers off. The test then
//! checks the boot entry in the saved UEFI variable store and boots the disk alone (no
//! `-kernel`, same variable store) until the test OS prints its marker.
//!
//! The BIOS boot is also the field-inspection boot: an emulated BMC (OpenIPMI's `ipmi_sim`
//! behind QEMU's `ipmi-bmc-extern` on KCS) whose LAN channel the agent's `ipmitool` reads, every
//! inspection collector, a SATA disk beside the virtio and NVMe ones (`by_path` without udev
//! for both), and a deploy sent to the virtio disk by a `by_path` root device hint where the
//! no-hints rule would pick the SATA disk.
//!
//! Needs the ramdisks of `target/ramdisk/<arch>`, the test OS of `target/test-os/<arch>`
//! (scripts/test.sh builds both) and QEMU with OVMF/AAVMF (scripts/install-ramdisk-deps.sh).
//! A missing piece fails the test; nothing skips. The VMs run one at a time (2 cores, TCG).
//! Each test writes its timings to `target/vm-report/<test>.json` for
//! `scripts/ramdisk-report.sh`.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e_tests::guest_ipa;
use e2e_tests::inventory_diff;
use e2e_tests::ipmi_sim::{BmcLan, IpmiSim};
use e2e_tests::qemu::{
    Arch, Firmware, Nic, Vm, VmSpec, boot_deployed_disk, deploy_with, esp_on_disk, guest_mac,
    report, sha256_file, sparse_disk, test_os_dir, vm_shim, wait_vm,
};
use e2e_tests::{Shim, efivars, free_port, oracle, run, wait_for};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
/// The deploy target: just above IPA's 4 GiB minimum for a root device (sparse on the host).
const ROOT_DISK: u64 = 4096 * MIB + 512 * MIB;
/// A second, smaller disk on NVMe: listed in the inventory, never picked as root device.
const NVME_DISK: u64 = 1024 * MIB;
/// Boot + inspection budget under TCG.
const BOOT: Duration = Duration::from_secs(300);

/// One VM at a time: each keeps a core busy under TCG.
static VM_LOCK: Mutex<()> = Mutex::new(());

struct Expect {
    boot_mode: &'static str,
    vendor: &'static str,
    /// Field inspection in the same boot: an emulated BMC on KCS, a SATA disk the no-hints
    /// rule would pick, every inspection collector, and a deploy whose `by_path` root device
    /// hint names the virtio disk instead.
    field: bool,
}

/// The SATA disk of a field boot: above 4 GiB and smaller than the virtio disk, so the
/// no-hints rule picks it and only the `by_path` hint sends the deploy to the virtio disk.
const SATA_DISK: u64 = 4096 * MIB + 256 * MIB;

/// How long IPA 13 may take to list the guest's hardware (Python under TCG, over 9p).
const IPA_IN_GUEST: Duration = Duration::from_secs(300);

/// What the emulated BMC's LAN channel 1 reports.
const BMC_LAN: BmcLan = BmcLan {
    ip: "192.0.2.200",
    mac: "52:54:00:be:ef:01",
    netmask: "255.255.255.0",
    gateway: "192.0.2.1",
};

/// Every collector IPA 13 ships but `lldp` (there is no switch behind QEMU's user networking;
/// vm_field.rs covers LLDP).
const FIELD_COLLECTORS: &str =
    "default,logs,pci-devices,numa-topology,dmi-decode,usb-devices,extra-hardware";

/// Checks a field boot's inspection: the BMC's addresses, every collector's data, both disks
/// with a `by_path`; returns the virtio disk's `by_path`.
fn check_field_inspection(dir: &Path, node: &Value) -> anyhow::Result<String> {
    let inv = &node["inventory"];
    if inv["bmc_address"] != BMC_LAN.ip || inv["bmc_mac"] != BMC_LAN.mac {
        bail!(
            "the BMC's LAN channel is not in the inventory: bmc_address {} bmc_mac {} \
             bmc_v6address {}",
            inv["bmc_address"],
            inv["bmc_mac"],
            inv["bmc_v6address"]
        );
    }
    let data = &node["inspection_data"];
    if !data["error"].is_null() {
        bail!("a collector failed: {}", data["error"]);
    }
    for key in [
        "pci_devices",
        "numa_topology",
        "dmi",
        "usb_devices",
        "data",
        "logs",
    ] {
        if data[key].is_null() {
            bail!("no {key} in the inspection data: keys {:?}", keys(data));
        }
    }
    let disk = |name: &str| {
        inv["disks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["name"] == name)
            .cloned()
            .with_context(|| format!("no {name} in {}", inv["disks"]))
    };
    let sda = disk("/dev/sda")?;
    if sda["size"] != SATA_DISK || sda["serial"] != "SATA-0" {
        bail!("the SATA disk: {sda}");
    }
    let vda = disk("/dev/vda")?;
    let by_path = vda["by_path"].as_str().unwrap_or_default().to_string();
    for d in [&sda, &vda] {
        if !d["by_path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/dev/disk/by-path/pci-0000:00:"))
        {
            bail!("no by_path without udev: {d}");
        }
    }
    if sda["by_path"] == vda["by_path"] {
        bail!("two disks, one by_path: {sda} {vda}");
    }
    // Ironic 39's hooks over what was posted: none raises; extra-hardware's facts become the
    // nested `extra`, the PCI devices reach the accelerators hook, the node properties follow
    // the inventory.
    let ironic = oracle::ironic_hooks(dir, &oracle::posted_body(node)?, &[])?;
    let plugin = &ironic["plugin_data"];
    if !plugin["extra"]["cpu"].is_object() || !plugin["extra"]["system"].is_object() {
        bail!(
            "extra-hardware gave no cpu/system in `extra`: {}",
            plugin["extra"]
        );
    }
    let props = &ironic["node"]["properties"];
    if !props["accelerators"].is_array() || props["cpu_arch"] != "x86_64" {
        bail!("node properties after Ironic's hooks: {props}");
    }
    if props["memory_mb"] != inv["memory"]["physical_mb"] {
        bail!("memory_mb {} for {}", props["memory_mb"], inv["memory"]);
    }
    Ok(by_path)
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn check_inventory(inv: &Value, mac: &str, nvme_serial: &str, e: &Expect) -> anyhow::Result<()> {
    let disks: Vec<(&str, u64, &str)> = inv["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or(""),
                d["size"].as_u64().unwrap_or(0),
                d["serial"].as_str().unwrap_or(""),
            )
        })
        .collect();
    if !disks.iter().any(|d| d.0 == "/dev/vda" && d.1 == ROOT_DISK) {
        bail!("inventory lacks /dev/vda of {ROOT_DISK} bytes: {disks:?}");
    }
    if !disks
        .iter()
        .any(|d| d.0 == "/dev/nvme0n1" && d.1 == NVME_DISK && d.2 == nvme_serial)
    {
        bail!("inventory lacks /dev/nvme0n1 ({NVME_DISK} bytes, serial {nvme_serial}): {disks:?}");
    }
    let nics: Vec<(&str, &str)> = inv["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["mac_address"].as_str().unwrap_or(""),
                i["ipv4_address"].as_str().unwrap_or(""),
            )
        })
        .collect();
    if !nics.contains(&(mac, "10.0.2.15")) {
        bail!("inventory lacks NIC {mac} with the DHCP address 10.0.2.15: {nics:?}");
    }
    let sv = &inv["system_vendor"];
    if sv["manufacturer"] != e.vendor
        || sv["product_name"] != "Bench-1"
        || sv["serial_number"] != "SN-0042"
    {
        bail!("DMI strings not in the inventory: {sv}");
    }
    if inv["boot"]["current_boot_mode"] != e.boot_mode {
        bail!(
            "boot mode {} (expected {})",
            inv["boot"]["current_boot_mode"],
            e.boot_mode
        );
    }
    Ok(())
}

/// What the shim deploys, and how the deployed disk must boot afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// The test OS's whole-disk UEFI image: its loader is reachable only through the boot
    /// entry the agent creates from the ESP's `BOOT*.CSV` ("Marker OS").
    WholeDiskUefi,
    /// The test OS's partition image (legacy BIOS, msdos): the agent runs the image's
    /// `grub-install` and `grub-mkconfig` in a chroot.
    PartitionBios,
    /// The same partition image under UEFI (GPT, the agent's empty ESP): `grub-install` and
    /// `grub-install --removable` onto the ESP in the chroot, then a boot entry for the
    /// fallback loader GRUB put there ("ironic1").
    PartitionUefi,
}

impl Payload {
    fn partition(self) -> bool {
        matches!(self, Payload::PartitionBios | Payload::PartitionUefi)
    }
}

/// The boot entry the agent made: labelled `label`, on the disk's ESP, loading `loader`, and
/// first in `BootOrder`.
fn check_nvram(vars: &Path, disk: &Path, label: &str, loader: &str) -> anyhow::Result<String> {
    let (entries, order) = efivars::read_boot_entries(vars)?;
    let shown: Vec<String> = entries.iter().map(ToString::to_string).collect();
    let marker: Vec<&efivars::BootEntry> =
        entries.iter().filter(|e| e.description == label).collect();
    if marker.len() != 1 {
        bail!("expected exactly one {label:?} boot entry, got: {shown:#?}");
    }
    let e = marker[0];
    if !e.file().is_some_and(|f| f.eq_ignore_ascii_case(loader)) {
        bail!("the boot entry does not load {loader}: {e}");
    }
    let esp = esp_on_disk(disk)?.partuuid;
    if e.partition_guid().as_deref() != Some(esp.as_str()) {
        bail!("the boot entry is not on the deployed ESP {esp}: {e}");
    }
    if order.first() != Some(&e.number) {
        bail!("the boot entry is not first in BootOrder {order:04X?}: {shown:#?}");
    }
    Ok(e.to_string())
}

/// Boot, inspect, look up, heartbeat, deploy `payload` (the agent installs the bootloader and
/// powers off), check the UEFI boot entry in the saved variable store, then boot the disk
/// alone and wait for the test OS.
fn boot_inspect_deploy(
    name: &str,
    arch: Arch,
    firmware: Firmware,
    payload: Payload,
    e: Expect,
) -> anyhow::Result<()> {
    let _one_at_a_time = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let images = test_os_dir(arch)?;
    let image_name = match payload {
        Payload::WholeDiskUefi => "whole-disk-uefi.img",
        Payload::PartitionBios | Payload::PartitionUefi => "partition.img",
    };
    let image = images.join(image_name);
    let image_size = std::fs::metadata(&image)
        .with_context(|| format!("{} is missing", image.display()))?
        .len();
    let sha = sha256_file(&image)?;

    let shim_flags: &[&str] = if payload.partition() {
        &["--enable-bios-bootloader-install"]
    } else {
        &[]
    };
    let (shim, shim_port) = vm_shim(dir.path(), &images, shim_flags)?;
    let mac = guest_mac(1);
    shim.cli(
        &[
            "node",
            "create",
            "--name",
            name,
            "--state",
            "inspect wait",
            "--mac",
            &mac,
        ],
        true,
    )?;

    let root = sparse_disk(&dir.path().join("root.raw"), ROOT_DISK)?;
    let nvme = sparse_disk(&dir.path().join("nvme.raw"), NVME_DISK)?;
    let vars = dir.path().join("vars.fd");
    let nvme_serial = "NVME-BENCH-7";
    let agent_port = free_port();
    let conductor = format!("http://10.0.2.2:{shim_port}");
    let mut spec = VmSpec::new(arch, firmware);
    spec.vars = Some(vars.clone());
    spec.virtio_disks.push(root.clone());
    spec.nvme_disks.push((nvme, nvme_serial.into()));
    spec.smbios.push(format!(
        "type=1,manufacturer={},product=Bench-1,serial=SN-0042",
        e.vendor
    ));
    spec.nics.push(Nic::User {
        mac: mac.clone(),
        hostfwd: vec![(agent_port, 9999)],
    });
    spec.append = format!(
        "loglevel=4 ipa-api-url={conductor} \
         ipa-inspection-callback-url={conductor}/v1/continue_inspection \
         ipa-advertise-host=127.0.0.1 ipa-advertise-port={agent_port} \
         ironic_agent.allow_device=/dev/vda"
    );
    let ipa_out = dir.path().join("ipa-out");
    let _bmc = if e.field {
        // IPA 13 runs in the guest beside the agent (tests/guest_ipa.rs).
        std::fs::create_dir_all(&ipa_out)?;
        let overlay_dir = dir.path().join("ipa-overlay");
        std::fs::create_dir_all(&overlay_dir)?;
        spec.initrd_overlays.push(guest_ipa::overlay(&overlay_dir)?);
        spec.shares.extend(guest_ipa::shares(&ipa_out));
        let bmc = IpmiSim::start(&dir.path().join("bmc"), &BMC_LAN)?;
        spec.extra_args.extend(bmc.qemu_args.iter().cloned());
        spec.sata_disks
            .push(sparse_disk(&dir.path().join("sata.raw"), SATA_DISK)?);
        // Both disks may be written: the no-hints rule would pick the SATA disk.
        spec.append = spec
            .append
            .replace("allow_device=/dev/vda", "allow_device=/dev/vda,/dev/sda");
        spec.append
            .push_str(&format!(" ipa-inspection-collectors={FIELD_COLLECTORS}"));
        Some(bmc)
    } else {
        None
    };
    let mut vm = Vm::start(&spec, &dir.path().join("console.log"))?;

    // Inspection: the node moves to manageable with the VM's hardware in its inventory.
    let n = wait_vm(&mut vm, BOOT, "inspection data in the shim", || {
        shim.node(name)
            .ok()
            .filter(|n| n.get("inventory").is_some_and(|i| !i.is_null()))
    })?;
    let inspected = vm.started.elapsed();
    check_inventory(&n["inventory"], &mac, nvme_serial, &e)
        .with_context(|| format!("serial console:\n{}", vm.console()))?;
    assert_eq!(n["provision_state"], "manageable");
    let root_hint = if e.field {
        let by_path = check_field_inspection(dir.path(), &n)
            .with_context(|| format!("serial console:\n{}", vm.console()))?;
        Some(format!("by_path={by_path}"))
    } else {
        None
    };

    // Lookup and the first heartbeat.
    let n = wait_vm(&mut vm, BOOT, "the first heartbeat", || {
        shim.node(name).ok().filter(|n| {
            n["driver_internal_info"]["agent_heartbeat_count"]
                .as_u64()
                .is_some_and(|c| c >= 1)
        })
    })?;
    let first_heartbeat = vm.started.elapsed();
    let agent_url = n["driver_internal_info"]["agent_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(agent_url, format!("https://127.0.0.1:{agent_port}"));
    if e.field {
        // IPA 13's inventory of this guest against ours, taken now (the network settled).
        let ipa = guest_ipa::wait_inventory(&ipa_out, &mut vm, IPA_IN_GUEST)?;
        let r = shim.cli_json(&["agent", name, "poll.get_hardware_info", "--wait"])?;
        assert_eq!(r["command_status"], "SUCCEEDED", "{r}");
        let ours = &r["command_result"];
        let diffs = inventory_diff::unexplained("guest", &ipa, ours, true);
        if !diffs.is_empty() {
            let text: Vec<String> = diffs
                .iter()
                .map(|d| format!("  {}: IPA {} / ours {}", d.path, d.ipa, d.ours))
                .collect();
            bail!(
                "the guest's inventory differs from IPA 13's:\n{}",
                text.join("\n")
            );
        }
        // What IPA sees through the same devices, so the comparison had something to see.
        if ipa["bmc_address"] != BMC_LAN.ip || ipa["system_vendor"]["serial_number"] != "SN-0042" {
            bail!("IPA saw another machine: {ipa:#}");
        }
    }

    // Deploy through the shim (blocks until active or deploy failed); the shim calls
    // get_partition_uuids and install_bootloader, then powers the node off.
    let t_deploy = Instant::now();
    let url = format!("{conductor}/images/{image_name}");
    let root_mb = (image_size.div_ceil(MIB) + 16).to_string();
    let extra: Vec<&str> = match payload {
        Payload::WholeDiskUefi => vec![],
        Payload::PartitionBios => vec![
            "--image-type",
            "partition",
            "--root-mb",
            &root_mb,
            "--boot-mode",
            "bios",
            "--disk-label",
            "msdos",
        ],
        Payload::PartitionUefi => vec![
            "--image-type",
            "partition",
            "--root-mb",
            &root_mb,
            "--boot-mode",
            "uefi",
        ],
    };
    let mut extra = extra;
    if let Some(hint) = &root_hint {
        extra.extend(["--root-hint", hint.as_str()]);
    }
    deploy_with(&shim, &vm, name, &url, &sha, &extra)?;
    let deploy_time = t_deploy.elapsed();
    let n = shim.node(name)?;
    assert_eq!(n["provision_state"], "active", "{n}");
    if let Some(w) = n["driver_internal_info"]["deploy_warnings"].as_array()
        && !w.is_empty()
    {
        bail!("the deploy left warnings: {w:?}");
    }
    let root_uuid = n["driver_internal_info"]["root_uuid_or_disk_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let poweroff = vm.wait_poweroff(Duration::from_secs(120))?;
    let n = wait_for(Duration::from_secs(30), "power state off", || {
        shim.node(name)
            .ok()
            .filter(|n| n["power_state"] == "power off")
    })?;
    assert_eq!(n["power_state"], "power off");
    let console = vm.console();
    drop(vm);

    let entry = match payload {
        Payload::WholeDiskUefi => {
            // The image landed: everything between the primary GPT header and the backup GPT
            // (the agent moves the backup GPT to the end of the larger disk, which also
            // rewrites the primary header).
            let out = Command::new("cmp")
                .args(["-i", "1024", "-n"])
                .arg((image_size - 1024 - 33 * 512).to_string())
                .arg(&image)
                .arg(&root)
                .output()?;
            if !out.status.success() {
                bail!(
                    "the VM disk differs from the image: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            let loader = match arch {
                Arch::X86_64 => "\\EFI\\marker\\grubx64.efi",
                Arch::Aarch64 => "\\EFI\\marker\\grubaa64.efi",
            };
            Some(
                check_nvram(&vars, &root, "Marker OS", loader)
                    .with_context(|| format!("deploy console:\n{console}"))?,
            )
        }
        Payload::PartitionUefi => Some(
            check_nvram(&vars, &root, "ironic1", "\\EFI\\BOOT\\BOOTX64.EFI")
                .with_context(|| format!("deploy console:\n{console}"))?,
        ),
        Payload::PartitionBios => None,
    };

    // The disk alone boots the test OS: no -kernel, the same variable store.
    let (marker, second_boot) = boot_deployed_disk(
        arch,
        firmware,
        std::slice::from_ref(&root),
        (firmware == Firmware::Uefi).then_some(vars.as_path()),
        &dir.path().join("disk-boot.log"),
    )
    .with_context(|| format!("deploy console:\n{console}"))?;
    match payload {
        Payload::WholeDiskUefi => {
            assert!(marker.contains("marker.case=whole-disk-uefi"), "{marker}")
        }
        Payload::PartitionBios | Payload::PartitionUefi => {
            assert!(marker.contains("marker.case=partition"), "{marker}");
            // grub-mkconfig ran in the image for this root filesystem.
            assert!(
                !root_uuid.is_empty() && marker.contains(&format!("root=UUID={root_uuid}")),
                "root UUID {root_uuid} not on the kernel command line: {marker}"
            );
        }
    }

    let timings = json!({
        "test": name,
        "arch": arch.name(),
        "firmware": format!("{firmware:?}").to_lowercase(),
        "payload": format!("{payload:?}"),
        "inspection_s": inspected.as_secs_f64(),
        "first_heartbeat_s": first_heartbeat.as_secs_f64(),
        "deploy_s": deploy_time.as_secs_f64(),
        "poweroff_wait_s": poweroff.as_secs_f64(),
        "disk_boot_s": second_boot.as_secs_f64(),
        "image_mib": image_size / MIB,
        "boot_entry": entry,
        "marker": marker,
    });
    eprintln!("VM timings: {timings}");
    report(name, &timings)
}

#[test]
fn x86_64_bios_boot_inspect_deploy() -> anyhow::Result<()> {
    boot_inspect_deploy(
        "x86_64-bios",
        Arch::X86_64,
        Firmware::Bios,
        Payload::PartitionBios,
        Expect {
            boot_mode: "bios",
            vendor: "AcmeBios",
            field: true,
        },
    )
}

#[test]
fn x86_64_uefi_boot_inspect_deploy() -> anyhow::Result<()> {
    boot_inspect_deploy(
        "x86_64-uefi",
        Arch::X86_64,
        Firmware::Uefi,
        Payload::WholeDiskUefi,
        Expect {
            boot_mode: "uefi",
            vendor: "AcmeUefi",
            field: false,
        },
    )
}

#[test]
fn x86_64_uefi_partition_image_grub_boots() -> anyhow::Result<()> {
    boot_inspect_deploy(
        "x86_64-uefi-partition",
        Arch::X86_64,
        Firmware::Uefi,
        Payload::PartitionUefi,
        Expect {
            boot_mode: "uefi",
            vendor: "AcmeGrub",
            field: false,
        },
    )
}

#[test]
fn aarch64_uefi_boot_inspect_deploy() -> anyhow::Result<()> {
    boot_inspect_deploy(
        "aarch64-uefi",
        Arch::Aarch64,
        Firmware::Uefi,
        Payload::WholeDiskUefi,
        Expect {
            boot_mode: "uefi",
            vendor: "AcmeArm",
            field: false,
        },
    )
}

/// A network namespace of the test's own, with a tap device for the guest's second NIC and
/// dnsmasq serving DHCPv4, DHCPv6 and router advertisements on it. (The host kernel has no
/// 802.1Q support, so the network side cannot terminate a VLAN: the guest's VLAN interface is
/// created and listed, but gets no lease.) Everything is torn down on drop.
struct ProvisioningNet {
    ns: String,
    dnsmasq: Option<e2e_tests::Proc>,
    leases: std::path::PathBuf,
}

const VLAN: u16 = 42;
const NET_V4: &str = "192.168.42.1";
const NET_V6: &str = "fd42:42::1";

impl ProvisioningNet {
    fn create(dir: &Path) -> anyhow::Result<ProvisioningNet> {
        let ns = format!("iat-vm-{}", std::process::id());
        run(&["ip", "netns", "add", &ns])?;
        let mut net = ProvisioningNet {
            ns: ns.clone(),
            dnsmasq: None,
            leases: dir.join("dnsmasq.leases"),
        };
        let lan_if = "tap1";
        for cmd in [
            vec!["ip", "-n", &ns, "link", "set", "lo", "up"],
            vec![
                "ip", "-n", &ns, "tuntap", "add", "dev", "tap1", "mode", "tap",
            ],
            vec![
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                "192.168.42.1/24",
                "dev",
                &lan_if,
            ],
            vec![
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                "fd42:42::1/64",
                "dev",
                &lan_if,
                "nodad",
            ],
            vec!["ip", "-n", &ns, "link", "set", &lan_if, "up"],
        ] {
            run(&cmd)?;
        }
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
        ])
        .args(["--port=0", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .arg(format!("--interface={lan_if}"))
        .arg("--dhcp-range=192.168.42.50,192.168.42.99,255.255.255.0,1h")
        .arg("--dhcp-range=fd42:42::50,fd42:42::99,64,1h")
        .args(["--enable-ra", "--log-dhcp", "--log-facility=-"])
        .arg(format!("--dhcp-leasefile={}", net.leases.display()))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
        net.dnsmasq = Some(e2e_tests::Proc::spawn(
            "dnsmasq",
            cmd,
            &dir.join("dnsmasq.log"),
        )?);
        Ok(net)
    }

    fn leases(&self) -> String {
        std::fs::read_to_string(&self.leases).unwrap_or_default()
    }
}

impl Drop for ProvisioningNet {
    fn drop(&mut self) {
        self.dnsmasq.take();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Networking as operators need it: DHCP on every NIC with a carrier (slirp on the first,
/// dnsmasq on the second), DHCPv6 + router advertisements on the second, a VLAN interface from
/// `ipa-enable-vlan-interfaces`, the conductor reached over the second NIC (lookup and
/// heartbeats over IPv4, inspection over IPv6), and the advertise address chosen as the route
/// towards the conductor (the second NIC's address, which the shim then calls without any port
/// forwarding).
#[test]
fn x86_64_networking_second_nic_vlan_ipv6() -> anyhow::Result<()> {
    let _one_at_a_time = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let net = ProvisioningNet::create(dir.path())?;

    // The shim runs inside the namespace, on both IPv4 and IPv6 of the VLAN.
    let port = free_port();
    let db = dir.path().join("shim.sqlite");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.ns])
        .arg(e2e_tests::bin("conductor-shim"))
        .arg("--db")
        .arg(&db)
        .args([
            "serve",
            "--listen",
            &format!("[::]:{port}"),
            "--heartbeat-timeout",
            "10",
        ]);
    let proc = e2e_tests::Proc::spawn("conductor-shim", cmd, &dir.path().join("shim.log"))?;
    let shim = Shim {
        proc,
        url: format!("http://{NET_V4}:{port}"),
        db,
    };
    wait_for(Duration::from_secs(20), "the shim in the namespace", || {
        Command::new("ip")
            .args(["netns", "exec", &net.ns, "curl", "-sf", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .status()
            .ok()
            .filter(|s| s.success())
    })?;
    let mac0 = guest_mac(1);
    let mac1 = guest_mac(2);
    shim.cli(
        &[
            "node",
            "create",
            "--name",
            "net",
            "--state",
            "inspect wait",
            "--mac",
            &mac0,
            "--mac",
            &mac1,
        ],
        true,
    )?;

    let mut spec = VmSpec::new(Arch::X86_64, Firmware::Bios);
    spec.netns = Some(net.ns.clone());
    spec.nics.push(Nic::User {
        mac: mac0.clone(),
        hostfwd: vec![],
    });
    spec.nics.push(Nic::Tap {
        mac: mac1.clone(),
        ifname: "tap1".into(),
    });
    spec.append = format!(
        "loglevel=4 ipa-api-url=http://{NET_V4}:{port} \
         ipa-inspection-callback-url=http://[{NET_V6}]:{port}/v1/continue_inspection \
         ipa-enable-vlan-interfaces=eth1.{VLAN} ipa-inspection-dhcp-wait-timeout=30"
    );
    let mut vm = Vm::start(&spec, &dir.path().join("console.log"))?;

    let n = wait_vm(&mut vm, BOOT, "inspection over IPv6", || {
        shim.node("net")
            .ok()
            .filter(|n| n.get("inventory").is_some_and(|i| !i.is_null()))
    })?;
    let inspected = vm.started.elapsed();

    let ifaces: Vec<Value> = n["inventory"]["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let by_name = |name: &str| ifaces.iter().find(|i| i["name"] == name).cloned();
    let eth0 = by_name("eth0").with_context(|| format!("no eth0 in {ifaces:?}"))?;
    assert_eq!(eth0["mac_address"], mac0.as_str());
    assert_eq!(eth0["ipv4_address"], "10.0.2.15", "DHCP on the first NIC");
    let eth1 = by_name("eth1").with_context(|| format!("no eth1 in {ifaces:?}"))?;
    let eth1_v4 = eth1["ipv4_address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(eth1_v4.starts_with("192.168.42."), "DHCPv4 on eth1: {eth1}");
    let vlan = by_name(&format!("eth1.{VLAN}"))
        .with_context(|| format!("no VLAN interface eth1.{VLAN} in {ifaces:?}"))?;
    assert_eq!(
        vlan["mac_address"],
        mac1.as_str(),
        "a VLAN shares its parent's MAC"
    );

    // Lookup + heartbeat over eth1; the agent advertises its eth1 address (the route towards
    // the conductor), and the shim reaches it there directly.
    let n = wait_vm(&mut vm, BOOT, "a heartbeat over eth1", || {
        shim.node("net").ok().filter(|n| {
            n["driver_internal_info"]["agent_heartbeat_count"]
                .as_u64()
                .is_some_and(|c| c >= 1)
        })
    })?;
    let first_heartbeat = vm.started.elapsed();

    assert_eq!(
        n["driver_internal_info"]["agent_url"],
        format!("https://{eth1_v4}:9999").as_str()
    );
    // The shim reaches the agent at the advertised eth1 address (its CLI runs in the
    // namespace, like the shim).
    // DHCPv6 may finish after inspection: ask the agent for fresh hardware info until eth1
    // shows its DHCPv6 address (bounded).
    let get_hardware_info = || -> anyhow::Result<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &net.ns])
            .arg(e2e_tests::bin("conductor-shim"))
            .arg("--db")
            .arg(&shim.db)
            .args(["--json", "agent", "net", "poll.get_hardware_info"])
            .output()?;
        let status: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "agent net poll.get_hardware_info: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if status["command_status"] != "SUCCEEDED" {
            bail!("poll.get_hardware_info: {status}");
        }
        Ok(status)
    };
    let mut eth1_v6 = String::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let status = get_hardware_info().with_context(|| format!("console:\n{}", vm.console()))?;
        let found = status["command_result"]["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["name"] == "eth1")
            .and_then(|i| i["ipv6_address"].as_str())
            .unwrap_or_default()
            .to_string();
        if found.starts_with("fd42:42:") {
            eth1_v6 = found;
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    if eth1_v6.is_empty() {
        bail!(
            "eth1 got no DHCPv6 address; dnsmasq:\n{}\nconsole:\n{}",
            std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap_or_default(),
            vm.console()
        );
    }

    let leases = net.leases();
    assert!(
        leases.contains(&eth1_v4),
        "dnsmasq handed out no DHCPv4 lease for {eth1_v4}: {leases}"
    );
    eprintln!(
        "network: eth0 {} / {}, eth1 {eth1_v4} / {eth1_v6}, first heartbeat after {:.1} s",
        eth0["ipv4_address"],
        eth0["ipv6_address"],
        first_heartbeat.as_secs_f64()
    );
    drop(vm);
    report(
        "x86_64-network",
        &json!({
            "test": "x86_64-network",
            "arch": "x86_64",
            "firmware": "bios",
            "inspection_s": inspected.as_secs_f64(),
            "first_heartbeat_s": first_heartbeat.as_secs_f64(),
            "deploy_s": null,
        }),
    )
}
