//! The field in QEMU (TCG): networks without DHCP, bonds and VLANs, virtual media and IPA's
//! configuration files, with the real minimal ramdisk.
//!
//! The guest's NICs are UDP "cables" to a userspace switch (`tests/bin/vswitch.rs`, run in a
//! network namespace the test makes; this host's kernel has no bridge or 802.1Q support) whose
//! other ports are tap devices in that namespace, where the conductor shim listens on static
//! addresses. Guest NIC ports are 802.1Q trunks; each tap is an access port of one VLAN.
//!
//! - [`x86_64_vmedia_no_dhcp_bond_vlan_tls`] — no DHCP server anywhere and nothing on the kernel
//!   command line but `boot_method=vmedia`. A USB disk labelled `ir-vfd-dev` holds
//!   `parameters.txt` (the HTTPS API URL); the virtual-media ISO (label `VMEDIA_BOOT_ISO`, as
//!   Ironic builds it) holds `openstack/latest/network_data.json` (an active-backup bond of both
//!   NICs with VLAN 100 on top, static IPv4, a default route, DNS) and Ironic's
//!   `etc/ironic-python-agent.d/ironic-tls.conf` naming the CA of the shim's private PKI. The
//!   agent looks up over the VLAN, is inspected (the inventory shows the bond and the VLAN) and
//!   the shim deploys an image onto its disk.
//! - [`x86_64_ipv6_only_static_bond_vlan`] — the same bond and VLAN, IPv6 only (static address and
//!   default route from a `config-2` config drive), the API URL on the command line: inspection,
//!   lookup, heartbeats and a deploy over IPv6.
//! - [`x86_64_cmdline_vlan_ipv6_static_untrusted_ca`] — `ipa-enable-vlan-interfaces=eth0.100,eth1`
//!   with `ipa-collect-lldp=1` on the kernel command line (VLAN 100 on eth0 by name, and on eth1
//!   because the switch announces it there by LLDP), DHCPv4 only on VLAN 100 (dnsmasq), where a
//!   plain-HTTP shim takes the inspection; a config drive (label `config-2`) gives eth1 a static
//!   IPv6 address, the only way to the HTTPS shim of the lookup. That shim's CA is not given to
//!   the agent (no `ironic-tls.conf`): lookup fails with the named certificate error, after
//!   reaching the shim over IPv6.
//!
//! Needs root (namespaces, taps), `genisoimage`, `mkfs.vfat` + `mcopy` (mtools), dnsmasq and the
//! ramdisk of `target/ramdisk/x86_64` (scripts/test.sh). A missing piece fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::qemu::{
    Arch, Firmware, Nic, Vm, VmSpec, guest_mac, report, sha256_file, sha256_range, sparse_disk,
    test_os_dir, wait_vm,
};
use e2e_tests::{Proc, bin, free_port, oracle, run, wait_for};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const ROOT_DISK: u64 = 4096 * MIB + 512 * MIB;
const BOOT: Duration = Duration::from_secs(360);
static VM_LOCK: Mutex<()> = Mutex::new(());

const VLAN: u16 = 100;
const NATIVE_VLAN: u16 = 200;
const SHIM_V4: &str = "192.0.2.1";
const GUEST_V4: &str = "192.0.2.10";
const SHIM_V6: &str = "2001:db8:200::1";
const GUEST_V6: &str = "2001:db8:200::10";

/// A tap access port of the switch, with the namespace's addresses on it.
struct TapPort {
    name: &'static str,
    vlan: u16,
    addrs: Vec<&'static str>,
}

/// The test's network namespace: taps, the userspace switch, and what runs there.
struct FieldNet {
    ns: String,
    dir: PathBuf,
    /// `(switch port, QEMU port)` of each guest NIC.
    guest_ports: Vec<(u16, u16)>,
    procs: Vec<Proc>,
}

impl FieldNet {
    /// `lldp`: the VLANs the switch announces by LLDP on its trunks (none: no LLDP).
    fn create(
        dir: &Path,
        name: &str,
        taps: &[TapPort],
        guest_nics: usize,
        lldp: &[u16],
    ) -> anyhow::Result<Self> {
        let ns = format!("iat-{name}-{}", std::process::id());
        run(&["ip", "netns", "add", &ns])?;
        let mut net = FieldNet {
            ns: ns.clone(),
            dir: dir.to_path_buf(),
            guest_ports: Vec::new(),
            procs: Vec::new(),
        };
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        for t in taps {
            run(&[
                "ip", "-n", &ns, "tuntap", "add", "dev", t.name, "mode", "tap",
            ])?;
            for a in &t.addrs {
                let mut cmd = vec!["ip", "-n", &ns, "addr", "add", a, "dev", t.name];
                if a.contains(':') {
                    cmd.push("nodad");
                }
                run(&cmd)?;
            }
            run(&["ip", "-n", &ns, "link", "set", t.name, "up"])?;
        }
        let mut cmd = net.ns_command(&bin("vswitch"));
        for i in 0..guest_nics {
            let (sw, qemu) = (free_port(), free_port());
            net.guest_ports.push((sw, qemu));
            cmd.args(["--port", &format!("udp:{sw}:{qemu},trunk,name=guest{i}")]);
        }
        for t in taps {
            cmd.args(["--port", &format!("tap:{},access={}", t.name, t.vlan)]);
        }
        cmd.args(["--native-vlan", &NATIVE_VLAN.to_string()]);
        if !lldp.is_empty() {
            let vids: Vec<String> = lldp.iter().map(u16::to_string).collect();
            cmd.args(["--lldp", &vids.join(",")]);
        }
        let sw = Proc::spawn("vswitch", cmd, &dir.join("vswitch.log"))?;
        net.procs.push(sw);
        let log = dir.join("vswitch.log");
        wait_for(Duration::from_secs(10), "the switch to be ready", || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("vswitch ready"))
        })?;
        Ok(net)
    }

    /// A command run inside the namespace.
    fn ns_command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// The guest NICs, cabled to the switch.
    fn nics(&self, macs: &[String]) -> Vec<Nic> {
        self.guest_ports
            .iter()
            .zip(macs)
            .map(|(&(sw, qemu), mac)| Nic::Udp {
                mac: mac.clone(),
                local_port: qemu,
                remote_port: sw,
            })
            .collect()
    }

    /// dnsmasq handing out IPv4 leases on `tap` (no DNS, no IPv6).
    fn dhcp(&mut self, tap: &str, range: &str) -> anyhow::Result<PathBuf> {
        let leases = self.dir.join(format!("dnsmasq-{tap}.leases"));
        let mut cmd = self.ns_command(Path::new("dnsmasq"));
        cmd.args(["--keep-in-foreground", "--conf-file=/dev/null"])
            .args(["--port=0", "--no-resolv", "--no-hosts", "--bind-interfaces"])
            .arg(format!("--interface={tap}"))
            .arg(format!("--dhcp-range={range},255.255.255.0,1h"))
            .args(["--log-dhcp", "--log-facility=-"])
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join(format!("dnsmasq-{tap}.pid")).display()
            ));
        let p = Proc::spawn("dnsmasq", cmd, &self.dir.join(format!("dnsmasq-{tap}.log")))?;
        self.procs.push(p);
        Ok(leases)
    }

    /// `conductor-shim serve` in the namespace on `[::]:port` with `flags`; waits until it
    /// answers on `scheme://127.0.0.1:port/`.
    fn shim(
        &mut self,
        name: &str,
        port: u16,
        scheme: &str,
        flags: &[&str],
    ) -> anyhow::Result<PathBuf> {
        let db = self.dir.join(format!("{name}.sqlite"));
        let mut cmd = self.ns_command(&bin("conductor-shim"));
        cmd.arg("--db")
            .arg(&db)
            .args(["serve", "--listen", &format!("[::]:{port}")])
            .args(["--heartbeat-timeout", "10"])
            .args(flags);
        let p = Proc::spawn(name, cmd, &self.dir.join(format!("{name}.log")))?;
        self.procs.push(p);
        wait_for(Duration::from_secs(20), "the shim in the namespace", || {
            Command::new("ip")
                .args(["netns", "exec", &self.ns, "curl", "-skf", "-o", "/dev/null"])
                .arg(format!("{scheme}://127.0.0.1:{port}/"))
                .status()
                .ok()
                .filter(|s| s.success())
        })?;
        Ok(db)
    }

    /// `conductor-shim --db DB [--json] ARGS` in the namespace (the CLI calls the agent).
    fn shim_cli(&self, db: &Path, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .ns_command(&bin("conductor-shim"))
            .arg("--db")
            .arg(db)
            .arg("--json")
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "conductor-shim {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn node(&self, db: &Path, name: &str) -> anyhow::Result<Value> {
        let v: Value = serde_json::from_str(&self.shim_cli(db, &["node", "show", name])?)?;
        Ok(match v.get("node") {
            Some(n) if n.is_object() => n.clone(),
            _ => v,
        })
    }

    /// `node create NAME` in `inspect wait` with the guest's MACs.
    fn create_node(&self, db: &Path, name: &str, macs: &[String]) -> anyhow::Result<()> {
        let mut args = vec!["node", "create", "--name", name, "--state", "inspect wait"];
        for mac in macs {
            args.extend(["--mac", mac.as_str()]);
        }
        self.shim_cli(db, &args).map(drop)
    }

    /// Waits for the inventory of `name`; returns its interfaces and when it came.
    fn wait_inspected(
        &self,
        vm: &mut Vm,
        db: &Path,
        name: &str,
        what: &str,
    ) -> anyhow::Result<(Vec<Value>, Duration)> {
        let n = wait_vm(vm, BOOT, what, || {
            self.node(db, name)
                .ok()
                .filter(|n| n.get("inventory").is_some_and(|i| !i.is_null()))
        })?;
        Ok((interfaces(&n["inventory"]), vm.started.elapsed()))
    }

    /// Waits for the first heartbeat of `name`'s agent; returns its `agent_url` and when.
    fn wait_heartbeat(
        &self,
        vm: &mut Vm,
        db: &Path,
        name: &str,
        what: &str,
    ) -> anyhow::Result<(String, Duration)> {
        let n = wait_vm(vm, BOOT, what, || {
            self.node(db, name).ok().filter(|n| {
                n["driver_internal_info"]["agent_heartbeat_count"]
                    .as_u64()
                    .is_some_and(|c| c >= 1)
            })
        })?;
        let url = n["driver_internal_info"]["agent_url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((url, vm.started.elapsed()))
    }

    /// Deploys the test OS image `image` (served by the shim at `api`) onto the VM's disk
    /// `root`, waits until the node is active, stops the VM and compares the partitions'
    /// bytes with the image (the GPT headers around them are rewritten when the agent moves the
    /// backup table to the end of the disk). Returns how long the deploy took.
    fn deploy_checked(
        &self,
        vm: Vm,
        db: &Path,
        name: &str,
        api: &str,
        image: &Path,
        root: &Path,
    ) -> anyhow::Result<Duration> {
        let start = std::time::Instant::now();
        let file = image
            .file_name()
            .and_then(|f| f.to_str())
            .context("image name")?;
        let url = format!("{api}/images/{file}");
        let checksum = format!("sha256:{}", sha256_file(image)?);
        let args = [
            "deploy",
            name,
            "--image",
            &url,
            "--checksum",
            &checksum,
            "--timeout",
            "600",
        ];
        if let Err(e) = self.shim_cli(db, &args) {
            bail!("deploy failed: {e:#}\nconsole:\n{}", vm.console());
        }
        let took = start.elapsed();
        let n = self.node(db, name)?;
        assert_eq!(n["provision_state"], "active", "{n}");
        drop(vm);
        let size = std::fs::metadata(image)?.len();
        assert_eq!(
            sha256_range(root, MIB, size - 2 * MIB)?,
            sha256_range(image, MIB, size - 2 * MIB)?,
            "the image on the VM's disk"
        );
        Ok(took)
    }
}

impl Drop for FieldNet {
    fn drop(&mut self) {
        self.procs.clear();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A private PKI from `conductor-shim pki`: `(ca.crt, server.crt, server.key)`.
fn pki(dir: &Path, ips: &[&str]) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let out = dir.join("pki");
    let mut cmd = Command::new(bin("conductor-shim"));
    cmd.arg("pki").arg("--out").arg(&out);
    for ip in ips {
        cmd.args(["--ip", ip]);
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("conductor-shim pki failed: {status}");
    }
    Ok((
        out.join("ca.crt"),
        out.join("server.crt"),
        out.join("server.key"),
    ))
}

/// An ISO 9660 image labelled `label` of the files `(path in the image, content)`.
fn iso(path: &Path, label: &str, files: &[(&str, Vec<u8>)]) -> anyhow::Result<PathBuf> {
    let root = path.with_extension("d");
    for (name, content) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().context("no parent")?)?;
        std::fs::write(&p, content)?;
    }
    let status = Command::new("genisoimage")
        .args(["-quiet", "-r", "-J", "-V", label, "-o"])
        .arg(path)
        .arg(&root)
        .status()
        .context("genisoimage (install it: scripts/install-ramdisk-deps.sh)")?;
    if !status.success() {
        bail!("genisoimage failed: {status}");
    }
    Ok(path.to_path_buf())
}

/// A 1.44 MB FAT image labelled `label` holding `parameters.txt`: a BMC's virtual floppy.
fn vfd(path: &Path, label: &str, parameters: &str) -> anyhow::Result<PathBuf> {
    let txt = path.with_extension("txt");
    std::fs::write(&txt, parameters)?;
    run(&[
        "mkfs.vfat",
        "-C",
        "-n",
        label,
        path.to_str().context("path")?,
        "1440",
    ])?;
    run(&[
        "mcopy",
        "-i",
        path.to_str().context("path")?,
        txt.to_str().context("path")?,
        "::parameters.txt",
    ])?;
    Ok(path.to_path_buf())
}

fn interfaces(inventory: &Value) -> Vec<Value> {
    inventory["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn by_name(ifaces: &[Value], name: &str) -> anyhow::Result<Value> {
    ifaces
        .iter()
        .find(|i| i["name"] == name)
        .cloned()
        .with_context(|| format!("no interface {name} in {ifaces:?}"))
}

/// No DHCP anywhere, configuration from virtual media only: bond + VLAN + static IPv4 from
/// network_data.json, the API URL from parameters.txt, the API's CA from ironic-tls.conf.
#[test]
fn x86_64_vmedia_no_dhcp_bond_vlan_tls() -> anyhow::Result<()> {
    let _one_at_a_time = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let mut net = FieldNet::create(
        d,
        "vmedia",
        &[TapPort {
            name: "tap0",
            vlan: VLAN,
            addrs: vec!["192.0.2.1/24"],
        }],
        2,
        &[],
    )?;
    let (ca, cert, key) = pki(d, &[SHIM_V4, SHIM_V6])?;
    let images = test_os_dir(Arch::X86_64)?;
    let image = images.join("whole-disk-uefi.img");
    let port = free_port();
    let db = net.shim(
        "shim",
        port,
        "https",
        &[
            "--tls-cert",
            cert.to_str().context("path")?,
            "--tls-key",
            key.to_str().context("path")?,
            "--images",
            images.to_str().context("path")?,
        ],
    )?;
    let api = format!("https://{SHIM_V4}:{port}");
    let macs = [guest_mac(1), guest_mac(2)];
    net.create_node(&db, "field", &macs)?;

    // Ironic's virtual-media ISO: network data, the TLS configuration and its CA.
    let network_data = json!({
        "links": [
            {"id": "port0", "type": "phy", "ethernet_mac_address": macs[0], "mtu": 1500},
            {"id": "port1", "type": "phy", "ethernet_mac_address": macs[1], "mtu": 1500},
            {"id": "bond0", "type": "bond", "bond_links": ["port0", "port1"],
             "bond_mode": "active-backup", "bond_miimon": 100,
             "ethernet_mac_address": macs[0]},
            {"id": "prov", "type": "vlan", "vlan_link": "bond0", "vlan_id": VLAN,
             "vlan_mac_address": macs[0]}
        ],
        "networks": [
            {"id": "prov-v4", "type": "ipv4", "link": "prov", "ip_address": GUEST_V4,
             "netmask": "255.255.255.0",
             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": SHIM_V4}],
             "services": [{"type": "dns", "address": "192.0.2.53"}]}
        ],
        "services": [{"type": "dns", "address": "192.0.2.53"}]
    });
    let tls_conf = "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\n";
    let iso = iso(
        &d.join("vmedia.iso"),
        "VMEDIA_BOOT_ISO",
        &[
            (
                "openstack/latest/network_data.json",
                serde_json::to_vec_pretty(&network_data)?,
            ),
            (
                "etc/ironic-python-agent.d/ironic-tls.conf",
                tls_conf.as_bytes().to_vec(),
            ),
            ("etc/ironic-python-agent/ironic.crt", std::fs::read(&ca)?),
        ],
    )?;
    let floppy = vfd(
        &d.join("vfd.img"),
        "ir-vfd-dev",
        &format!(
            "ipa-api-url={api} ipa-inspection-callback-url={api}/v1/continue_inspection \
             ipa-inspection-dhcp-wait-timeout=0\n"
        ),
    )?;

    let root = sparse_disk(&d.join("root.raw"), ROOT_DISK)?;
    let mut spec = VmSpec::new(Arch::X86_64, Firmware::Bios);
    spec.netns = Some(net.ns.clone());
    spec.nics = net.nics(&macs);
    spec.cdroms.push(iso);
    spec.usb_disks.push(floppy);
    spec.virtio_disks.push(root.clone());
    spec.append = "loglevel=4 boot_method=vmedia ironic_agent.allow_device=/dev/vda".into();
    let mut vm = Vm::start(&spec, &d.join("console.log"))?;

    let (ifaces, inspected) =
        net.wait_inspected(&mut vm, &db, "field", "inspection over the VLAN")?;
    let ctx = || format!("interfaces: {ifaces:#?}\nconsole:\n{}", vm.console());
    let bond = by_name(&ifaces, "bond0").with_context(ctx)?;
    let vlan = by_name(&ifaces, &format!("bond0.{VLAN}")).with_context(ctx)?;
    assert_eq!(vlan["ipv4_address"], GUEST_V4, "{}", ctx());
    assert_eq!(bond["mac_address"], macs[0].as_str(), "{}", ctx());
    for (i, mac) in macs.iter().enumerate() {
        let nic = by_name(&ifaces, &format!("eth{i}")).with_context(ctx)?;
        assert_eq!(
            nic["mac_address"],
            mac.as_str(),
            "bond members keep their MAC"
        );
        assert!(
            nic["ipv4_address"].is_null(),
            "a bond member has no address: {nic}"
        );
    }

    let (agent_url, first_heartbeat) =
        net.wait_heartbeat(&mut vm, &db, "field", "the first heartbeat over HTTPS")?;
    assert_eq!(agent_url, format!("https://{GUEST_V4}:9999"));
    let console = vm.console();
    assert!(
        !console.contains("udhcpc"),
        "no DHCP client may run on a statically configured network:\n{console}"
    );

    // Deploy over the VLAN (image over HTTPS from the shim, same private CA).
    let deployed = net.deploy_checked(vm, &db, "field", &api, &image, &root)?;
    field_report(
        "x86_64-field-vmedia",
        inspected,
        Some(first_heartbeat),
        Some(deployed),
    )
}

/// The IPv6-only variant of the DHCP-less site: the same bond of both NICs with VLAN 100 on top,
/// a static IPv6 address and default route from a config drive (label `config-2`), the API URL
/// on the kernel command line; lookup, inspection, heartbeats (the shim calls the agent back on
/// its IPv6 address) and a deploy, all over IPv6.
#[test]
fn x86_64_ipv6_only_static_bond_vlan() -> anyhow::Result<()> {
    let _one_at_a_time = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let mut net = FieldNet::create(
        d,
        "v6",
        &[TapPort {
            name: "tap0",
            vlan: VLAN,
            addrs: vec!["2001:db8:100::1/64"],
        }],
        2,
        &[],
    )?;
    let images = test_os_dir(Arch::X86_64)?;
    let image = images.join("whole-disk-uefi.img");
    let port = free_port();
    let db = net.shim(
        "shim",
        port,
        "http",
        &["--images", images.to_str().context("path")?],
    )?;
    let api = format!("http://[2001:db8:100::1]:{port}");
    let macs = [guest_mac(1), guest_mac(2)];
    net.create_node(&db, "v6", &macs)?;
    let network_data = json!({
        "links": [
            {"id": "port0", "type": "phy", "ethernet_mac_address": macs[0]},
            {"id": "port1", "type": "phy", "ethernet_mac_address": macs[1]},
            {"id": "bond0", "type": "bond", "bond_links": ["port0", "port1"],
             "bond_mode": "active-backup"},
            {"id": "prov", "type": "vlan", "vlan_link": "bond0", "vlan_id": VLAN}
        ],
        "networks": [
            {"id": "prov-v6", "type": "ipv6", "link": "prov", "ip_address": "2001:db8:100::10",
             "netmask": "ffff:ffff:ffff:ffff::",
             "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:100::1"}]}
        ],
        "services": [{"type": "dns", "address": "2001:db8:100::53"}]
    });
    let iso = iso(
        &d.join("config-drive.iso"),
        "config-2",
        &[(
            "openstack/latest/network_data.json",
            serde_json::to_vec(&network_data)?,
        )],
    )?;
    let root = sparse_disk(&d.join("root.raw"), ROOT_DISK)?;
    let mut spec = VmSpec::new(Arch::X86_64, Firmware::Bios);
    spec.netns = Some(net.ns.clone());
    spec.nics = net.nics(&macs);
    spec.cdroms.push(iso);
    spec.virtio_disks.push(root.clone());
    spec.append = format!(
        "loglevel=4 ipa-api-url={api} ipa-inspection-callback-url={api}/v1/continue_inspection \
         ipa-inspection-dhcp-wait-timeout=0 ironic_agent.allow_device=/dev/vda"
    );
    let mut vm = Vm::start(&spec, &d.join("console.log"))?;

    let (ifaces, inspected) = net.wait_inspected(&mut vm, &db, "v6", "inspection over IPv6")?;
    let ctx = || format!("interfaces: {ifaces:#?}\nconsole:\n{}", vm.console());
    let vlan = by_name(&ifaces, &format!("bond0.{VLAN}")).with_context(ctx)?;
    assert_eq!(vlan["ipv6_address"], "2001:db8:100::10", "{}", ctx());
    assert!(vlan["ipv4_address"].is_null(), "IPv6 only: {}", ctx());
    by_name(&ifaces, "bond0").with_context(ctx)?;

    let (agent_url, first_heartbeat) =
        net.wait_heartbeat(&mut vm, &db, "v6", "the first heartbeat over IPv6")?;
    assert_eq!(agent_url, "https://[2001:db8:100::10]:9999");
    let deployed = net.deploy_checked(vm, &db, "v6", &api, &image, &root)?;
    field_report(
        "x86_64-field-ipv6",
        inspected,
        Some(first_heartbeat),
        Some(deployed),
    )
}

/// The agent's own VLAN from the kernel command line (DHCP on it), a static IPv6-only NIC from
/// a config drive, and an HTTPS API whose CA the agent was not given.
#[test]
fn x86_64_cmdline_vlan_ipv6_static_untrusted_ca() -> anyhow::Result<()> {
    let _one_at_a_time = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let mut net = FieldNet::create(
        d,
        "vlan",
        &[
            TapPort {
                name: "tap0",
                vlan: VLAN,
                addrs: vec!["192.0.2.1/24"],
            },
            TapPort {
                name: "tap1",
                vlan: NATIVE_VLAN,
                addrs: vec!["2001:db8:200::1/64"],
            },
        ],
        2,
        &[VLAN],
    )?;
    let leases = net.dhcp("tap0", "192.0.2.50,192.0.2.99")?;
    let (_ca, cert, key) = pki(d, &[SHIM_V4, SHIM_V6])?;
    let tls_port = free_port();
    net.shim(
        "shim-tls",
        tls_port,
        "https",
        &[
            "--tls-cert",
            cert.to_str().context("path")?,
            "--tls-key",
            key.to_str().context("path")?,
        ],
    )?;
    let http_port = free_port();
    let db = net.shim("shim-http", http_port, "http", &[])?;
    let macs = [guest_mac(1), guest_mac(2)];
    net.create_node(&db, "vlan", &macs)?;
    let network_data = json!({
        "links": [{"id": "nic1", "type": "phy", "ethernet_mac_address": macs[1]}],
        "networks": [{"id": "v6", "type": "ipv6", "link": "nic1",
                      "ip_address": format!("{GUEST_V6}/64"), "routes": []}],
        "services": []
    });
    let iso = iso(
        &d.join("config-drive.iso"),
        "config-2",
        &[(
            "openstack/latest/network_data.json",
            serde_json::to_vec(&network_data)?,
        )],
    )?;

    let mut spec = VmSpec::new(Arch::X86_64, Firmware::Bios);
    spec.netns = Some(net.ns.clone());
    spec.nics = net.nics(&macs);
    spec.cdroms.push(iso);
    spec.append = format!(
        "loglevel=4 ipa-api-url=https://[{SHIM_V6}]:{tls_port} \
         ipa-inspection-callback-url=http://{SHIM_V4}:{http_port}/v1/continue_inspection \
         ipa-enable-vlan-interfaces=eth0.{VLAN},eth1 ipa-collect-lldp=1 ipa-lldp-timeout=6 \
         ipa-inspection-dhcp-wait-timeout=0"
    );
    let mut vm = Vm::start(&spec, &d.join("console.log"))?;

    let (ifaces, inspected) =
        net.wait_inspected(&mut vm, &db, "vlan", "inspection over the agent's VLAN")?;
    let ctx = || format!("interfaces: {ifaces:#?}\nconsole:\n{}", vm.console());
    let vlan = by_name(&ifaces, &format!("eth0.{VLAN}")).with_context(ctx)?;
    let vlan_v4 = vlan["ipv4_address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        vlan_v4.starts_with("192.0.2."),
        "DHCP on the VLAN: {}",
        ctx()
    );
    assert_eq!(vlan["mac_address"], macs[0].as_str());
    let eth1 = by_name(&ifaces, "eth1").with_context(ctx)?;
    assert_eq!(eth1["ipv6_address"], GUEST_V6, "{}", ctx());
    // `eth1` alone: the VLANs the switch announces there by LLDP.
    let lldp_vlan = by_name(&ifaces, &format!("eth1.{VLAN}")).with_context(ctx)?;
    assert_eq!(lldp_vlan["mac_address"], macs[1].as_str());
    // ipa-collect-lldp=1: both NICs carry the switch's LLDPDU as IPA's `[type, hex]` pairs:
    // its system name, and the 802.1 VLAN-name TLV of VLAN 100.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for nic in ["eth0", "eth1"] {
        let lldp = by_name(&ifaces, nic).with_context(ctx)?["lldp"].clone();
        let tlvs: Vec<(u64, String)> = lldp
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t[0].as_u64()?, t[1].as_str()?.to_string())))
            .collect();
        assert!(
            tlvs.contains(&(5, hex(b"vswitch"))),
            "{nic}: system name in {lldp}"
        );
        assert!(
            tlvs.iter()
                .any(|(t, v)| *t == 127 && v.starts_with(&format!("0080c203{VLAN:04x}"))),
            "{nic}: VLAN {VLAN} in {lldp}"
        );
        assert_eq!(
            tlvs.last(),
            Some(&(0, String::new())),
            "End TLV last: {lldp}"
        );
    }
    // Ironic 39's own LLDP parsing (its parse-lldp and local-link-connection hooks, run on
    // what the agent posted) decodes what the switch sent on each NIC.
    let node = net.node(&db, "vlan")?;
    let ironic = oracle::ironic_hooks(d, &oracle::posted_body(&node)?, &[])?;
    for (i, nic) in ["eth0", "eth1"].iter().enumerate() {
        let parsed = &ironic["plugin_data"]["parsed_lldp"][nic];
        assert_eq!(
            parsed,
            &json!({
                "switch_chassis_id": "02:76:73:77:00:01",
                "switch_port_id": format!("guest{i}"),
                "switch_system_name": "vswitch",
                "switch_port_untagged_vlan_id": NATIVE_VLAN,
                "switch_port_vlans": [{"id": VLAN, "name": format!("vlan{VLAN}")}],
                "switch_mgmt_addresses": ["198.51.100.254"],
            }),
            "{nic}: Ironic's parse-lldp on the posted data: {ironic:#}"
        );
    }
    for port in ironic["ports"].as_array().into_iter().flatten() {
        let i = macs
            .iter()
            .position(|m| port["address"] == m.as_str())
            .context("a port for an unknown MAC")?;
        assert_eq!(
            port["local_link_connection"],
            json!({"switch_id": "02:76:73:77:00:01", "port_id": format!("guest{i}"),
                   "switch_info": "vswitch"}),
            "{ironic:#}"
        );
    }
    let l = std::fs::read_to_string(&leases).unwrap_or_default();
    assert!(
        l.contains(&vlan_v4),
        "dnsmasq leased {vlan_v4} on VLAN {VLAN}: {l}"
    );

    // The lookup reaches the HTTPS shim over IPv6 and refuses its certificate, by name.
    let line = wait_vm(&mut vm, BOOT, "the certificate error of the lookup", || {
        vm_line(
            &d.join("console.log"),
            "TLS certificate verification failed",
        )
    })?;
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(
        line.contains("cafile") || line.contains("ipa-insecure"),
        "the error names the way out: {line}"
    );
    // The HTTPS shim saw the handshake come from the guest's static IPv6 address (its only way
    // there) and fail.
    let tls_log = std::fs::read_to_string(d.join("shim-tls.log")).unwrap_or_default();
    assert!(
        tls_log
            .lines()
            .any(|l| l.contains("TLS handshake failed") && l.contains(GUEST_V6)),
        "shim-tls log:\n{tls_log}"
    );
    assert!(
        !tls_log.contains("/v1/lookup"),
        "no lookup through an untrusted certificate: {tls_log}"
    );
    drop(vm);
    field_report("x86_64-field-vlan", inspected, None, None)
}

/// Writes the timings of a field test (x86_64, BIOS) to `target/vm-report/<name>.json`.
fn field_report(
    name: &str,
    inspected: Duration,
    first_heartbeat: Option<Duration>,
    deployed: Option<Duration>,
) -> anyhow::Result<()> {
    report(
        name,
        &json!({
            "test": name,
            "arch": "x86_64",
            "firmware": "bios",
            "inspection_s": inspected.as_secs_f64(),
            "first_heartbeat_s": first_heartbeat.map(|d| d.as_secs_f64()),
            "deploy_s": deployed.map(|d| d.as_secs_f64()),
        }),
    )
}

/// The first line of the console log at `path` containing `needle`.
fn vm_line(path: &Path, needle: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.contains(needle))
        .map(String::from)
}
