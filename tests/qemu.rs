//! The QEMU test bench: boots the project's minimal ramdisk (kernel + initramfs built by
//! `ramdisk-elements/build-initramfs.sh`) under TCG with user networking, virtio and NVMe
//! disks, SMBIOS strings and optionally UEFI firmware (OVMF / AAVMF).
//!
//! The guest reaches the host's 127.0.0.1 as 10.0.2.2; forwarded guest ports are bound to
//! 127.0.0.1 only. QEMU is started under `timeout` so a hung guest cannot outlive its test, and
//! is killed when the [`Vm`] is dropped; on a failing test the serial console is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Proc, workspace_root};

/// The guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `qemu-system-x86_64 -M q35`.
    X86_64,
    /// `qemu-system-aarch64 -M virt -cpu cortex-a57`.
    Aarch64,
}

impl Arch {
    /// The name used in artifact paths (`target/ramdisk/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The serial console device name the kernel writes to.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

/// How the guest firmware boots the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (x86_64) or QEMU's direct boot (aarch64, no DMI then).
    Bios,
    /// OVMF (x86_64) or AAVMF (aarch64), loading the kernel through fw_cfg.
    Uefi,
}

/// Where the kernel and initramfs for `arch` are expected.
pub fn ramdisk_dir(arch: Arch) -> PathBuf {
    std::env::var_os("IRONIC_AGENT_RAMDISK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("ramdisk"))
        .join(arch.name())
}

/// The kernel and initramfs of `arch`, or a loud error saying how to build them.
pub fn ramdisk(arch: Arch) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = ramdisk_dir(arch);
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initramfs.img");
    if !kernel.is_file() || !initrd.is_file() {
        bail!(
            "no {} ramdisk in {}: build it with `scripts/build-static.sh {a} && \
             ramdisk-elements/build-initramfs.sh --arch {a} --agent target/static/{a}/ironic-agent \
             --out {}` (scripts/test.sh does this)",
            arch.name(),
            dir.display(),
            dir.display(),
            a = arch.name()
        );
    }
    Ok((kernel, initrd))
}

/// A NIC of the guest.
#[derive(Debug, Clone)]
pub enum Nic {
    /// QEMU user networking (slirp, IPv4 10.0.2.0/24 and IPv6) with guest ports forwarded
    /// from 127.0.0.1: `(host port, guest port)`.
    User {
        /// The guest NIC's MAC.
        mac: String,
        /// Forwarded ports.
        hostfwd: Vec<(u16, u16)>,
    },
    /// A UDP "cable" to a userspace switch (`tests/bin/vswitch.rs`): each Ethernet frame is one
    /// datagram from 127.0.0.1:`local_port` to 127.0.0.1:`remote_port`.
    Udp {
        /// The guest NIC's MAC.
        mac: String,
        /// QEMU's own port.
        local_port: u16,
        /// The switch's port.
        remote_port: u16,
    },
    /// A tap device that already exists (in the network namespace QEMU runs in).
    Tap {
        /// The guest NIC's MAC.
        mac: String,
        /// The tap interface name.
        ifname: String,
    },
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Guest architecture.
    pub arch: Arch,
    /// Firmware.
    pub firmware: Firmware,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Raw files attached as virtio disks (vda, vdb, ...).
    pub virtio_disks: Vec<PathBuf>,
    /// Raw files attached as NVMe namespaces: `(file, controller serial)`.
    pub nvme_disks: Vec<(PathBuf, String)>,
    /// ISO images attached as SATA CD-ROM drives (sr0, sr1, ...; a BMC's virtual CD).
    pub cdroms: Vec<PathBuf>,
    /// Raw files attached as USB mass-storage disks behind an xHCI controller (a BMC's virtual
    /// floppy or USB stick).
    pub usb_disks: Vec<PathBuf>,
    /// Raw files attached as SATA disks on the q35 AHCI controller (x86_64 only), on the ports
    /// after the CD-ROMs.
    pub sata_disks: Vec<PathBuf>,
    /// `-smbios` arguments, e.g. `type=1,manufacturer=Acme`.
    pub smbios: Vec<String>,
    /// More QEMU arguments, appended as given (e.g. an emulated BMC's devices).
    pub extra_args: Vec<String>,
    /// Uncompressed cpio archives put before the ramdisk's initramfs (the kernel unpacks
    /// them, then the ramdisk; an uncompressed archive after a zstd one is not found): files
    /// a test adds to the guest, under names the ramdisk does not use.
    pub initrd_overlays: Vec<PathBuf>,
    /// Host directories shared with the guest over virtio-9p: `(host path, mount tag,
    /// read-only)`.
    pub shares: Vec<(PathBuf, String, bool)>,
    /// NICs in PCI order (eth0, eth1, ...).
    pub nics: Vec<Nic>,
    /// Kernel command line (the console is added).
    pub append: String,
    /// Run QEMU inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// Hard limit on the VM's life (QEMU runs under `timeout`).
    pub lifetime: Duration,
    /// Boot from the disks alone (firmware boot order, no `-kernel`): the deployed OS.
    pub boot_from_disk: bool,
    /// The UEFI variable store to use and keep (made from the firmware's template when
    /// missing); `None`: a fresh copy that is thrown away.
    pub vars: Option<PathBuf>,
}

impl VmSpec {
    /// A spec with one user-networking NIC and no disks.
    pub fn new(arch: Arch, firmware: Firmware) -> VmSpec {
        VmSpec {
            arch,
            firmware,
            memory_mib: 1024,
            virtio_disks: Vec::new(),
            nvme_disks: Vec::new(),
            cdroms: Vec::new(),
            usb_disks: Vec::new(),
            sata_disks: Vec::new(),
            smbios: Vec::new(),
            extra_args: Vec::new(),
            initrd_overlays: Vec::new(),
            shares: Vec::new(),
            nics: Vec::new(),
            append: String::new(),
            netns: None,
            lifetime: Duration::from_secs(900),
            boot_from_disk: false,
            vars: None,
        }
    }
}

/// A running guest.
pub struct Vm {
    /// The QEMU process; its log is the serial console plus QEMU's own messages.
    pub proc: Proc,
    /// When QEMU was started.
    pub started: Instant,
    /// QEMU's own pid (the child process is `timeout`, QEMU its child).
    pidfile: PathBuf,
    /// Kept alive for the VM's life (firmware variable store copies).
    _scratch: tempfile::TempDir,
}

fn firmware_files(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        Arch::Aarch64 => (
            "/usr/share/AAVMF/AAVMF_CODE.fd",
            "/usr/share/AAVMF/AAVMF_VARS.fd",
        ),
    }
}

impl Vm {
    /// Boots `spec`; the serial console goes to `log`.
    pub fn start(spec: &VmSpec, log: &Path) -> anyhow::Result<Vm> {
        let scratch = tempfile::tempdir()?;
        let qemu = spec.arch.qemu();
        if which(qemu).is_none() {
            bail!("{qemu} is not installed: run scripts/install-ramdisk-deps.sh");
        }
        let mut cmd = match &spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "timeout"]);
                c
            }
            None => Command::new("timeout"),
        };
        cmd.args(["-s", "KILL", &format!("{}", spec.lifetime.as_secs()), qemu]);
        match spec.arch {
            Arch::X86_64 => cmd.args(["-M", "q35", "-cpu", "max"]),
            Arch::Aarch64 => cmd.args(["-M", "virt", "-cpu", "cortex-a57"]),
        };
        let pidfile = scratch.path().join("qemu.pid");
        cmd.arg("-pidfile").arg(&pidfile);
        cmd.args(["-accel", "tcg", "-smp", "1"])
            .args(["-m", &spec.memory_mib.to_string()])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-no-reboot", "-no-user-config", "-nodefaults"]);
        if !spec.boot_from_disk {
            let (kernel, mut initrd) = ramdisk(spec.arch)?;
            if !spec.initrd_overlays.is_empty() {
                // Concatenated archives: the kernel unpacks each in turn.
                let combined = scratch.path().join("initrd-with-overlays");
                let mut out = std::fs::File::create(&combined)?;
                for part in spec.initrd_overlays.iter().chain(std::iter::once(&initrd)) {
                    let mut f = std::fs::File::open(part)
                        .with_context(|| format!("initrd part {}", part.display()))?;
                    std::io::copy(&mut f, &mut out)?;
                }
                initrd = combined;
            }
            cmd.arg("-kernel")
                .arg(&kernel)
                .arg("-initrd")
                .arg(&initrd)
                .args([
                    "-append",
                    &format!("console={} {}", spec.arch.console(), spec.append),
                ]);
        }
        if spec.firmware == Firmware::Uefi {
            let (code, vars) = firmware_files(spec.arch);
            for f in [code, vars] {
                if !Path::new(f).is_file() {
                    bail!("UEFI firmware {f} is missing: run scripts/install-ramdisk-deps.sh");
                }
            }
            let vars_copy = match &spec.vars {
                Some(kept) => kept.clone(),
                None => scratch.path().join("vars.fd"),
            };
            if !vars_copy.is_file() {
                std::fs::copy(vars, &vars_copy).context("copying the UEFI variable store")?;
            }
            cmd.arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={code}"
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    vars_copy.display()
                ));
        }
        for (i, disk) in spec.virtio_disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=vd{i},format=raw,cache=unsafe,discard=unmap",
                disk.display()
            ));
            cmd.arg("-device")
                .arg(format!("virtio-blk-pci,drive=vd{i},serial=VIRTIO-{i}"));
        }
        for (i, (disk, serial)) in spec.nvme_disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=nv{i},format=raw,cache=unsafe",
                disk.display()
            ));
            cmd.arg("-device")
                .arg(format!("nvme,drive=nv{i},serial={serial}"));
        }
        for (i, iso) in spec.cdroms.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=cd{i},format=raw,media=cdrom,readonly=on",
                iso.display()
            ));
            match spec.arch {
                // q35's AHCI controller has six ports: ide.0 ... ide.5.
                Arch::X86_64 => cmd
                    .arg("-device")
                    .arg(format!("ide-cd,drive=cd{i},bus=ide.{i}")),
                Arch::Aarch64 => cmd
                    .arg("-device")
                    .arg(format!("virtio-scsi-pci,id=scsi{i}"))
                    .arg("-device")
                    .arg(format!("scsi-cd,drive=cd{i},bus=scsi{i}.0")),
            };
        }
        if !spec.sata_disks.is_empty() && spec.arch != Arch::X86_64 {
            bail!("SATA disks are attached to q35's AHCI controller: x86_64 only");
        }
        for (i, disk) in spec.sata_disks.iter().enumerate() {
            let port = spec.cdroms.len() + i;
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=sd{i},format=raw,cache=unsafe",
                disk.display()
            ));
            cmd.arg("-device")
                .arg(format!("ide-hd,drive=sd{i},bus=ide.{port},serial=SATA-{i}"));
        }
        if !spec.usb_disks.is_empty() {
            cmd.args(["-device", "qemu-xhci,id=xhci"]);
        }
        for (i, disk) in spec.usb_disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=usb{i},format=raw",
                disk.display()
            ));
            cmd.arg("-device")
                .arg(format!("usb-storage,bus=xhci.0,drive=usb{i},removable=on"));
        }
        for s in &spec.smbios {
            cmd.args(["-smbios", s]);
        }
        for (i, (path, tag, readonly)) in spec.shares.iter().enumerate() {
            cmd.arg("-fsdev").arg(format!(
                "local,id=fs{i},path={},security_model=none{}",
                path.display(),
                if *readonly { ",readonly=on" } else { "" }
            ));
            cmd.arg("-device")
                .arg(format!("virtio-9p-pci,fsdev=fs{i},mount_tag={tag}"));
        }
        cmd.args(&spec.extra_args);
        for (i, nic) in spec.nics.iter().enumerate() {
            let (netdev, mac) = match nic {
                Nic::User { mac, hostfwd } => {
                    let mut nd = format!("user,id=n{i},ipv4=on,ipv6=on");
                    for (host, guest) in hostfwd {
                        nd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
                    }
                    (nd, mac)
                }
                Nic::Udp {
                    mac,
                    local_port,
                    remote_port,
                } => (
                    format!(
                        "socket,id=n{i},udp=127.0.0.1:{remote_port},localaddr=127.0.0.1:{local_port}"
                    ),
                    mac,
                ),
                Nic::Tap { mac, ifname } => (
                    format!("tap,id=n{i},ifname={ifname},script=no,downscript=no"),
                    mac,
                ),
            };
            cmd.args(["-netdev", &netdev]);
            // No iPXE option ROM: the kernel is loaded directly, and initialising the ROM costs
            // seconds under TCG (most of all with OVMF).
            cmd.args([
                "-device",
                &format!("virtio-net-pci,netdev=n{i},mac={mac},romfile="),
            ]);
        }
        let started = Instant::now();
        let proc = Proc::spawn(qemu, cmd, log)?;
        Ok(Vm {
            proc,
            started,
            pidfile,
            _scratch: scratch,
        })
    }

    /// The serial console so far.
    pub fn console(&self) -> String {
        self.proc.output()
    }

    /// Fails with the console printed when QEMU has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.proc.child.try_wait()? {
            bail!(
                "QEMU exited early ({status}); serial console:\n{}",
                self.console()
            );
        }
        Ok(())
    }

    /// Waits until QEMU exits by itself (the guest powered off); returns the time it took.
    pub fn wait_poweroff(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let code = self.proc.wait_exit(timeout).with_context(|| {
            format!(
                "the guest did not power off; serial console:\n{}",
                self.console()
            )
        })?;
        if code != Some(0) {
            bail!(
                "QEMU exited with {code:?} (not a clean guest power-off); serial console:\n{}",
                self.console()
            );
        }
        Ok(t0.elapsed())
    }
}

impl Drop for Vm {
    /// Stops QEMU for good: SIGKILL on the `timeout` wrapper (what dropping the [`Proc`] does)
    /// would leave QEMU running, so QEMU itself is killed first, by the pid it wrote.
    fn drop(&mut self) {
        // While `timeout` runs, QEMU's pid cannot have been reused (it is `timeout`'s child,
        // alive or not yet reaped); once `timeout` is gone, so is QEMU.
        if matches!(self.proc.child.try_wait(), Ok(None))
            && let Ok(pid) = std::fs::read_to_string(&self.pidfile)
        {
            let pid = pid.trim();
            if !pid.is_empty() && Path::new("/proc").join(pid).exists() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = self.proc.wait_exit(Duration::from_secs(10));
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(prog))
            .find(|p| p.is_file())
    })
}

/// A fresh locally administered MAC for a guest NIC (QEMU's 52:54:00 prefix).
pub fn guest_mac(n: u8) -> String {
    format!("52:54:00:1a:{:02x}:{:02x}", std::process::id() % 251, n)
}

/// A sparse file of `size` bytes, for a guest disk.
pub fn sparse_disk(path: &Path, size: u64) -> anyhow::Result<PathBuf> {
    std::fs::File::create(path)
        .and_then(|f| f.set_len(size))
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a whole-disk raw image of `size` bytes to `path` and returns it: an msdos table with
/// one Linux partition and patterned data (the last quarter left as zeros, like image holes).
pub fn whole_disk_image(path: &Path, size: u64) -> anyhow::Result<Vec<u8>> {
    let mut img = vec![0u8; usize::try_from(size)?];
    let sectors = u32::try_from(size / 512)?;
    let mbr = &mut img[..512];
    mbr[440..444].copy_from_slice(&0x0a1c_3dd3u32.to_le_bytes());
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors - 2048).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut block = Sha256::digest(b"vm-image").to_vec();
    let mut at = usize::try_from(1u64 << 20)?;
    // Leave the last quarter sparse (zeros): whole-disk images have holes.
    let end = img.len() * 3 / 4;
    while at < end {
        block = Sha256::digest(&block).to_vec();
        let n = block.len().min(end - at);
        img[at..at + n].copy_from_slice(&block[..n]);
        at += n;
    }
    std::fs::write(path, &img)?;
    Ok(img)
}

/// Writes a VM test's timings to `target/vm-report/<name>.json` (for scripts/ramdisk-report.sh).
pub fn report(name: &str, value: &Value) -> anyhow::Result<()> {
    let dir = workspace_root().join("target").join("vm-report");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(value)?,
    )?;
    Ok(())
}

/// Polls `f` while checking that QEMU still runs (fails fast, with the console, if it died).
pub fn wait_vm<T>(
    vm: &mut Vm,
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let result = crate::poll(timeout, Duration::from_millis(250), f, || {
        vm.check_running()
    });
    result.map_err(|e| {
        e.context(format!(
            "waiting for {what} (up to {timeout:?}); serial console:\n{}",
            vm.console()
        ))
    })
}

/// The shim for a VM test: serving `images`, with a short heartbeat timeout and `extra`
/// flags; returns it with its port (the guest reaches it at 10.0.2.2:PORT).
pub fn vm_shim(dir: &Path, images: &Path, extra: &[&str]) -> anyhow::Result<(crate::Shim, String)> {
    let mut args = vec![
        "--images",
        images.to_str().context("non-UTF-8 temp dir")?,
        "--heartbeat-timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    let shim = crate::Shim::start(dir, &args)?;
    let port = shim.url.rsplit(':').next().unwrap_or_default().to_string();
    Ok((shim, port))
}

/// `conductor-shim deploy NODE` of `url` (sha256 `sha`), waiting up to 600 s; a failure carries
/// the VM's serial console.
pub fn deploy(shim: &crate::Shim, vm: &Vm, node: &str, url: &str, sha: &str) -> anyhow::Result<()> {
    deploy_with(shim, vm, node, url, sha, &[])
}

/// [`deploy`] with more `conductor-shim deploy` flags (`--image-type partition`, ...).
pub fn deploy_with(
    shim: &crate::Shim,
    vm: &Vm,
    node: &str,
    url: &str,
    sha: &str,
    extra: &[&str],
) -> anyhow::Result<()> {
    let checksum = format!("sha256:{sha}");
    let mut args = vec![
        "deploy",
        node,
        "--image",
        url,
        "--checksum",
        &checksum,
        "--timeout",
        "600",
    ];
    args.extend_from_slice(extra);
    if let Err(e) = shim.cli(&args, false) {
        bail!("deploy failed: {e:#}\nserial console:\n{}", vm.console());
    }
    Ok(())
}

/// The EFI system partition of a GPT disk (or image) file, from `sfdisk --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspOnDisk {
    /// Its PARTUUID, lower-case.
    pub partuuid: String,
    /// `[start, end)` in bytes.
    pub range: (u64, u64),
}

/// The first ESP-typed partition of the GPT disk file `disk`.
pub fn esp_on_disk(disk: &Path) -> anyhow::Result<EspOnDisk> {
    let out = Command::new("sfdisk").arg("--json").arg(disk).output()?;
    let t: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("sfdisk --json {}", disk.display()))?;
    let p = t["partitiontable"]["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"))
        })
        .with_context(|| format!("no ESP on {}: {t}", disk.display()))?;
    let start = p["start"].as_u64().context("no start")? * 512;
    Ok(EspOnDisk {
        partuuid: p["uuid"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .context("no uuid")?,
        range: (start, start + p["size"].as_u64().context("no size")? * 512),
    })
}

/// The line the test OS's init prints once the deployed disk booted it.
pub const TEST_OS_MARKER: &str = "IRONIC-AGENT-TEST-OS: booted cmdline=";

/// The test OS images of `arch` (built by `tests/images/build-test-os.sh`): its directory,
/// holding `whole-disk-uefi.img` and (x86_64) `partition.img`.
pub fn test_os_dir(arch: Arch) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("IRONIC_AGENT_TEST_OS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("test-os"))
        .join(arch.name());
    if !dir.join("whole-disk-uefi.img").is_file() {
        bail!(
            "no test OS images in {}: build them with `tests/images/build-test-os.sh --arch {a} \
             --agent target/static/{a}/ironic-agent --out {}` (scripts/test.sh does this)",
            dir.display(),
            dir.display(),
            a = arch.name()
        );
    }
    Ok(dir)
}

/// Lower-case hex SHA-256 of the file at `path`, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    sha256_range(path, 0, u64::MAX)
}

/// Lower-case hex SHA-256 of (at most) `len` bytes of the file at `path` from `offset`.
pub fn sha256_range(path: &Path, offset: u64, len: u64) -> anyhow::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut f = f.take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Boots `disks` alone (no `-kernel`, firmware boot order; `vars` is the UEFI variable store
/// the deploy left) and waits until the test OS prints its marker and powers off. Returns the
/// marker line and the time it took.
pub fn boot_deployed_disk(
    arch: Arch,
    firmware: Firmware,
    disks: &[PathBuf],
    vars: Option<&Path>,
    log: &Path,
) -> anyhow::Result<(String, Duration)> {
    let mut spec = VmSpec::new(arch, firmware);
    spec.boot_from_disk = true;
    spec.memory_mib = 512;
    spec.virtio_disks = disks.to_vec();
    spec.vars = vars.map(Path::to_path_buf);
    spec.lifetime = Duration::from_secs(420);
    let mut vm = Vm::start(&spec, log)?;
    // The test OS prints its marker and powers off at once.
    vm.wait_poweroff(Duration::from_secs(400))
        .context("booting the deployed disk")?;
    let took = vm.started.elapsed();
    let console = vm.console();
    let line = vm_console_line(&console, TEST_OS_MARKER).with_context(|| {
        format!("the deployed disk did not boot the test OS; serial console:\n{console}")
    })?;
    Ok((line, took))
}

/// The first console line containing `marker` (from the marker on).
fn vm_console_line(console: &str, marker: &str) -> Option<String> {
    console
        .lines()
        .find_map(|l| l.find(marker).map(|at| l[at..].trim_end().to_string()))
}
