//! The inspection data our agent posts goes through Ironic 39's own inspection hooks.
//!
//! The agent runs on this host inside a network namespace made here, whose only NIC is one
//! end of a veth pair; the other end, in a second namespace (the "switch"), sends LLDP frames
//! every second (chassis ID MAC, port ID interface name, system name, 802.1 port VLAN ID and
//! VLAN names, an IPv4 management address: all from [`SWITCH`]). The agent inspects with
//! `ipa-collect-lldp=1` and the collectors [`COLLECTORS`] towards a conductor shim on the
//! namespace's loopback, and the body the shim stored is fed to `tests/oracle/ironic_hooks.py`,
//! which runs Ironic's default hook chain plus the node-property, collector, LLDP and port hooks
//! on a real Ironic node in an in-memory database. No hook may raise, and the node properties,
//! the port's `local_link_connection`/`physical_network`/`pxe_enabled` and Ironic's decoded
//! LLDP (`plugin_data.parsed_lldp`) must be what the inventory and the frames say.
//!
//! A veth has no `device` link in sysfs, so the agent (as IPA) would not list it: the agent's
//! mount namespace gets a `/sys/class/net` of its own holding the veth's real sysfs files plus
//! a `device` link to an empty directory. Needs root and the oracle venv (fails without).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use e2e_tests::{Proc, Shim, free_port, oracle, poll, start_agent_with};
use hardware_managers::lldp::{LldpTlv, lldp_frame, tlv_type, vlan_name_tlv};
use serde_json::{Value, json};

/// The collectors the agent runs: every one IPA 13 ships but `dmi-decode`, which fails on
/// this host as IPA's does (no DMI tables, `dmidecode` exits 1), and would post an `error`
/// that makes Ironic's ramdisk-error hook fail the inspection. The VM test (tests/vm.rs)
/// runs it where there are DMI tables.
const COLLECTORS: &str = "default,logs,lldp,extra-hardware,pci-devices,numa-topology,usb-devices";

/// Hooks that must have run: Ironic 39's `[inspector] default_hooks`, then the ones reading
/// what the agent sends (the driver runs a few more).
const REQUIRED_HOOKS: [&str; 14] = [
    "ramdisk-error",
    "validate-interfaces",
    "ports",
    "architecture",
    "cpu-capabilities",
    "boot-mode",
    "memory",
    "root-device",
    "extra-hardware",
    "pci-devices",
    "accelerators",
    "parse-lldp",
    "local-link-connection",
    "physical-network",
];

/// The agent's NIC (in the agent's namespace) and its MAC; the switch's end of the veth.
const NIC: &str = "ihk0";
const NIC_MAC: &str = "52:54:00:16:0e:01";
const SWITCH_NIC: &str = "ihk0sw";
/// The agent NIC's address, and the `[inspector] physical_network_cidr_map` entry matching it.
const NIC_ADDR: &str = "192.0.2.10/24";
const CIDR_MAP: (&str, &str) = ("192.0.2.0/24", "physnet-hooks");

/// What the switch announces.
struct Switch {
    chassis_mac: [u8; 6],
    port_id: &'static str,
    system_name: &'static str,
    /// The port VLAN ID (802.1 subtype 1); also the first announced VLAN.
    pvid: u16,
    /// The VLANs announced by name (802.1 subtype 3), named `vlan<ID>`.
    vlans: [u16; 2],
    mgmt_ipv4: Ipv4Addr,
}

const SWITCH: Switch = Switch {
    chassis_mac: [0x02, 0x5e, 0x1f, 0x39, 0x00, 0x2a],
    port_id: "swp17",
    system_name: "tor-hooks-1",
    pvid: 142,
    vlans: [142, 310],
    mgmt_ipv4: Ipv4Addr::new(198, 51, 100, 7),
};

/// The IEEE 802.1 OUI of the organisationally specific TLVs.
const IEEE_8021_OUI: [u8; 3] = [0x00, 0x80, 0xc2];
/// The management address TLV type (IEEE 802.1AB table 8-1).
const TLV_MANAGEMENT_ADDRESS: u8 = 8;

impl Switch {
    fn chassis_mac_text(&self) -> String {
        self.chassis_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The whole Ethernet frame the switch sends.
    fn frame(&self) -> anyhow::Result<Vec<u8>> {
        let tlv = |tlv_type: u8, value: Vec<u8>| LldpTlv { tlv_type, value };
        let mut chassis = vec![4u8]; // subtype 4: MAC address
        chassis.extend_from_slice(&self.chassis_mac);
        let mut port = vec![5u8]; // subtype 5: interface name
        port.extend_from_slice(self.port_id.as_bytes());
        let mut pvid = IEEE_8021_OUI.to_vec();
        pvid.push(1); // subtype 1: port VLAN ID
        pvid.extend_from_slice(&self.pvid.to_be_bytes());
        // Management address: length of subtype + address, subtype 1 (IPv4), the address,
        // interface numbering subtype 2 (ifIndex), interface number 1, no OID.
        let mut mgmt = vec![5u8, 1];
        mgmt.extend_from_slice(&self.mgmt_ipv4.octets());
        mgmt.extend_from_slice(&[2, 0, 0, 0, 1, 0]);
        let mut tlvs = vec![
            tlv(tlv_type::CHASSIS_ID, chassis),
            tlv(tlv_type::PORT_ID, port),
            tlv(tlv_type::TTL, 120u16.to_be_bytes().to_vec()),
            tlv(tlv_type::SYSTEM_NAME, self.system_name.as_bytes().to_vec()),
            tlv(TLV_MANAGEMENT_ADDRESS, mgmt),
            tlv(tlv_type::ORG_SPECIFIC, pvid),
        ];
        tlvs.extend(
            self.vlans
                .iter()
                .map(|v| vlan_name_tlv(*v, &format!("vlan{v}"))),
        );
        Ok(lldp_frame(self.chassis_mac, &tlvs)?)
    }
}

/// A network namespace, deleted on drop (after the processes in it, dropped before it).
struct NetNs(String);

impl NetNs {
    fn new(role: &str) -> anyhow::Result<NetNs> {
        let name = format!("ihooks-{role}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        e2e_tests::run(&["ip", "netns", "add", &name])
            .context("creating a network namespace (needs root)")?;
        Ok(NetNs(name))
    }

    /// `ip -n NS ARGS` (`args` split at spaces).
    fn ip(&self, args: &str) -> anyhow::Result<()> {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend(args.split_whitespace());
        e2e_tests::run(&all)
    }

    /// Moves the calling thread into this namespace.
    fn enter(&self) -> anyhow::Result<()> {
        let path = format!("/var/run/netns/{}", self.0);
        let ns = std::fs::File::open(&path).with_context(|| path.clone())?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs in the agent's fresh mount namespace (`ip netns exec` remounted `/sys` for the
/// namespace): `$1` is a directory to build the replacement `/sys/class/net` in, with `NIC`'s
/// real sysfs entries and a `device` link; then it execs the rest of its arguments.
const SYSFS_SHIM: &str = r#"set -eu
fake="$1"; nic="$2"; shift 2
real=$(readlink -f "/sys/class/net/$nic")
mkdir -p "$fake/net/$nic" "$fake/virtual-nic"
for f in "$real"/*; do ln -s "$f" "$fake/net/$nic/"; done
ln -s "$fake/virtual-nic" "$fake/net/$nic/device"
mount --bind "$fake/net" /sys/class/net
exec "$@"
"#;

/// The frame sender: `$1` the interface, `$2` the frame in hex, sent every second.
const SENDER: &str = r"import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frame = bytes.fromhex(sys.argv[2])
while True:
    s.send(frame)
    time.sleep(1)
";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The oracle is not vacuous: an error posted by the ramdisk fails Ironic's `ramdisk-error`
/// hook, reported for that hook alone.
#[test]
fn the_oracle_reports_a_failing_hook() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let body = json!({
        "inventory": {
            "interfaces": [{"name": NIC, "mac_address": NIC_MAC}],
            "cpu": {"architecture": "x86_64", "count": 1},
            "memory": {"physical_mb": 1024},
            "disks": [],
        },
        "error": "a collector failed",
    });
    let input = dir.path().join("posted.json");
    std::fs::write(&input, body.to_string())?;
    let out = oracle::run_json("ironic_hooks.py", &[], Some(&input))?;
    let errors = out["errors"].as_array().context("errors")?;
    ensure!(errors.len() == 1, "{errors:#?}");
    assert_eq!(errors[0]["hook"], "ramdisk-error");
    assert_eq!(errors[0]["phase"], "preprocess");
    let text = errors[0]["error"].as_str().unwrap_or_default();
    ensure!(text.contains("a collector failed"), "{text}");
    Ok(())
}

/// The checks of the optional collectors' data (run by the main test once [`COLLECTORS`]
/// names them) hold for a body in the shapes Ironic's hooks read.
#[test]
fn collector_checks_hold_for_ironic_shaped_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dev = |bus: &str, product: &str| {
        json!({"vendor_id": "1af4", "product_id": product, "class": "020000",
               "revision": "00", "bus": bus})
    };
    let body = json!({
        "inventory": {
            "interfaces": [{"name": NIC, "mac_address": NIC_MAC}],
            "cpu": {"architecture": "x86_64", "count": 1},
            "memory": {"physical_mb": 1024},
            "disks": [],
        },
        "pci_devices": [dev("0000:00:03.0", "1000"), dev("0000:00:04.0", "1001"),
                        dev("0000:00:05.0", "1000")],
        "data": [["cpu", "logical", "number", "1"], ["system", "product", "name", "vm"]],
        "error": null,
    });
    let collectors = "default,pci-devices,extra-hardware";
    let input = dir.path().join("posted.json");
    std::fs::write(&input, body.to_string())?;
    let (alias, count) = pci_alias(collectors, &body)?.context("no alias")?;
    assert_eq!(count, 2);
    let out = oracle::run_json("ironic_hooks.py", &["--pci-alias", &alias], Some(&input))?;
    let errors = out["errors"].as_array().context("errors")?;
    ensure!(errors.is_empty(), "{errors:#?}");
    assert_eq!(out["plugin_data"]["extra"]["cpu"]["logical"]["number"], 1);
    check_collectors(collectors, &body, &out, Some(count))
}

/// The agent, inspecting in a namespace whose NIC hears the switch, posts data that goes
/// through Ironic's hooks without an error and with the expected node, port and LLDP results.
#[test]
fn posted_inspection_data_passes_ironic_hooks() -> anyhow::Result<()> {
    // Build (and find the oracle) before entering the namespace.
    let agent_bin = e2e_tests::bin("ironic-agent");
    let python = oracle::python()?;
    let dir = tempfile::tempdir()?;
    let agent_ns = NetNs::new("agent")?;
    let switch_ns = NetNs::new("switch")?;
    agent_ns.ip(&format!(
        "link add {NIC} address {NIC_MAC} type veth peer name {SWITCH_NIC} netns {}",
        switch_ns.0
    ))?;
    agent_ns.ip(&format!("addr add {NIC_ADDR} dev {NIC}"))?;
    for ns in [&agent_ns, &switch_ns] {
        ns.ip("link set lo up")?;
    }
    agent_ns.ip(&format!("link set {NIC} up"))?;
    switch_ns.ip(&format!("link set {SWITCH_NIC} up"))?;

    let mut sender = Command::new("ip");
    sender
        .args(["netns", "exec", &switch_ns.0])
        .arg(&python)
        .args(["-c", SENDER, SWITCH_NIC, &hex(&SWITCH.frame()?)]);
    let sender = Proc::spawn("lldp-sender", sender, &dir.path().join("sender.log"))?;

    // The shim, the agent and this test's HTTP client live in the agent's namespace: run
    // them from a thread that entered it (processes it starts inherit the namespace). The
    // shared HTTP client's runtime thread is born there too, on its first use: no other test
    // of this file may use it.
    let posted = std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<Value> {
            agent_ns.enter()?;
            inspect(dir.path(), &agent_ns, &agent_bin)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the inspection thread panicked"))?
    })?;
    drop(sender);
    std::fs::write(dir.path().join("posted.json"), serde_json::to_vec(&posted)?)?;

    let cidr_map = format!("{}:{}", CIDR_MAP.0, CIDR_MAP.1);
    let mut args = vec!["--cidr-map", &cidr_map];
    let alias = pci_alias(COLLECTORS, &posted)?;
    if let Some((json, _)) = &alias {
        args.extend(["--pci-alias", json]);
    }
    let out = oracle::run_json(
        "ironic_hooks.py",
        &args,
        Some(&dir.path().join("posted.json")),
    )?;
    check(&posted, &out)?;
    check_collectors(COLLECTORS, &posted, &out, alias.as_ref().map(|(_, n)| *n))?;
    check_root_device_hints(&posted, &dir.path().join("posted.json"), &out)
}

/// Root device hints naming the posted root disk by its name, size, rotational flag and
/// (when known) serial: Ironic's `root-device` hook must pick that disk from the inventory
/// (its own hint matching reads our disk fields) and compute the same `local_gb`.
fn check_root_device_hints(posted: &Value, input: &Path, plain: &Value) -> anyhow::Result<()> {
    let Some(root) = posted["root_disk"].as_object() else {
        return Ok(());
    };
    let mut hints = json!({
        "name": root["name"],
        "size": root["size"].as_u64().unwrap_or(0) >> 30,
        "rotational": root["rotational"],
    });
    if let Some(serial) = root.get("serial").filter(|s| s.is_string()) {
        hints["serial"] = serial.clone();
    }
    let hints = hints.to_string();
    let out = oracle::run_json(
        "ironic_hooks.py",
        &["--root-device-hints", &hints],
        Some(input),
    )?;
    let errors = out["errors"].as_array().context("errors")?;
    ensure!(errors.is_empty(), "with hints {hints}: {errors:#?}");
    let disk = posted["inventory"]["disks"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == root["name"]))
        .context("the root disk is not among the inventory disks")?;
    assert_eq!(&out["plugin_data"]["root_disk"], disk, "hints {hints}");
    assert_eq!(
        out["node"]["properties"]["local_gb"],
        plain["node"]["properties"]["local_gb"]
    );
    Ok(())
}

/// The capability name given to the first posted PCI device's vendor/product.
const PCI_ALIAS_NAME: &str = "hooks_pci_alias";

/// With the `pci-devices` collector: an `[inspector] pci_device_alias` entry for the first
/// posted device's vendor and product, and how many posted devices it matches.
fn pci_alias(collectors: &str, posted: &Value) -> anyhow::Result<Option<(String, usize)>> {
    if !collectors.split(',').any(|c| c == "pci-devices") {
        return Ok(None);
    }
    let devices = posted["pci_devices"]
        .as_array()
        .context("pci_devices is not a list")?;
    let Some(first) = devices.first() else {
        return Ok(None);
    };
    let id = |d: &Value| (d["vendor_id"].clone(), d["product_id"].clone());
    let count = devices.iter().filter(|d| id(d) == id(first)).count();
    let alias = json!({
        "vendor_id": first["vendor_id"],
        "product_id": first["product_id"],
        "name": PCI_ALIAS_NAME,
    });
    Ok(Some((alias.to_string(), count)))
}

/// What the hooks made of the optional collectors' data, for those in `collectors`
/// ([`COLLECTORS`]).
fn check_collectors(
    collectors: &str,
    posted: &Value,
    out: &Value,
    pci_count: Option<usize>,
) -> anyhow::Result<()> {
    let has = |name: &str| collectors.split(',').any(|c| c == name);
    let plugin = &out["plugin_data"];
    let props = &out["node"]["properties"];
    if has("extra-hardware") {
        // extra-hardware turns the `data` facts into the nested `extra`, dropping `data`;
        // data of another shape is only warned about and left in place.
        ensure!(
            plugin["extra"].as_object().is_some_and(|e| !e.is_empty()),
            "extra-hardware made no `extra` of {}",
            posted["data"]
        );
        ensure!(plugin.get("data").is_none(), "`data` was not converted");
    }
    if has("pci-devices") {
        for d in posted["pci_devices"].as_array().into_iter().flatten() {
            for key in ["vendor_id", "product_id", "class", "revision", "bus"] {
                ensure!(d[key].is_string(), "pci device without {key}: {d}");
            }
        }
        // The accelerators hook ran over them (an empty list: no known accelerator here).
        ensure!(props["accelerators"].is_array(), "{props}");
        if let Some(count) = pci_count {
            let caps = props["capabilities"].as_str().unwrap_or_default();
            let want = format!("{PCI_ALIAS_NAME}:{count}");
            ensure!(caps.split(',').any(|c| c == want), "{want} not in {caps}");
        }
    }
    Ok(())
}

/// Starts the shim and the agent (in the agent's namespace), waits for the inspection data
/// and returns the body as posted: `inventory` plus the plugin data.
fn inspect(dir: &Path, ns: &NetNs, agent_bin: &Path) -> anyhow::Result<Value> {
    let shim = Shim::start(dir, &["--no-require-tls", "--heartbeat-timeout", "10"])?;
    shim.cli(
        &[
            "node",
            "create",
            "--name",
            "hooks",
            "--state",
            "inspect wait",
            "--mac",
            NIC_MAC,
        ],
        true,
    )?;
    let port = free_port();
    let cmdline = format!(
        "BOOT_IMAGE=/vmlinuz ipa-api-url={u} ipa-inspection-callback-url={u}/v1/continue_inspection \
         ipa-inspection-collectors={COLLECTORS} ipa-collect-lldp=1 ipa-lldp-timeout=20 \
         ipa-inspection-dhcp-wait-timeout=0 ipa-lookup-timeout=30 BOOTIF=01-{bootif}",
        u = shim.url,
        bootif = NIC_MAC.replace(':', "-"),
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0, "sh", "-c", SYSFS_SHIM, "sysfs-shim"])
        .arg(dir.join("sysfs"))
        .arg(NIC)
        .arg(agent_bin);
    let mut agent = start_agent_with(
        cmd,
        dir,
        "agent",
        &cmdline,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
        ],
    )?;
    let node = poll(
        Duration::from_secs(90),
        Duration::from_millis(200),
        || {
            shim.node("hooks")
                .ok()
                .filter(|n| n.get("inventory").is_some_and(|i| !i.is_null()))
        },
        || match agent.child.try_wait()? {
            Some(status) => bail!("the agent exited ({status}):\n{}", agent.output()),
            None => Ok(()),
        },
    )
    .with_context(|| {
        format!(
            "no inspection data in the shim; agent log:\n{}",
            agent.output()
        )
    })?;
    agent.sigkill()?;
    let mut posted = node["inspection_data"].clone();
    let body = posted
        .as_object_mut()
        .context("inspection_data is not an object")?;
    body.insert("inventory".into(), node["inventory"].clone());
    Ok(posted)
}

/// Asserts Ironic's result `out` against the posted body and [`SWITCH`].
fn check(posted: &Value, out: &Value) -> anyhow::Result<()> {
    let ctx = || format!("Ironic's result:\n{out:#}");
    let inv = &posted["inventory"];
    ensure!(
        posted["configuration"]["collectors"] == json!(COLLECTORS.split(',').collect::<Vec<_>>()),
        "collectors: {}",
        posted["configuration"]
    );
    ensure!(
        posted["error"].is_null(),
        "the agent posted an error: {}",
        posted["error"]
    );
    ensure!(out["schema_error"].is_null(), "{}", ctx());
    let errors = out["errors"].as_array().context("errors")?;
    ensure!(errors.is_empty(), "hooks raised: {errors:#?}");
    for hook in REQUIRED_HOOKS {
        ensure!(
            out["hooks"]
                .as_array()
                .is_some_and(|h| h.contains(&json!(hook))),
            "hook {hook} did not run: {}",
            out["hooks"]
        );
    }

    // Node properties as the inventory implies.
    let props = &out["node"]["properties"];
    assert_eq!(props["cpu_arch"], inv["cpu"]["architecture"], "{}", ctx());
    assert_eq!(props["cpu_arch"], std::env::consts::ARCH);
    assert_eq!(props["cpus"], inv["cpu"]["count"], "{}", ctx());
    assert_eq!(
        props["memory_mb"],
        inv["memory"]["physical_mb"],
        "{}",
        ctx()
    );
    ensure!(props["memory_mb"].as_u64().unwrap_or(0) > 0, "{}", ctx());
    // Ironic's root-device hook: whole GiB of the root disk, less 1 GiB for partitioning.
    let gib = posted["root_disk"]["size"].as_u64().unwrap_or(0) >> 30;
    let local_gb = gib.saturating_sub(1);
    assert_eq!(props["local_gb"], json!(local_gb), "{}", ctx());
    let boot_mode = inv["boot"]["current_boot_mode"]
        .as_str()
        .context("boot mode")?;
    let efi = Path::new("/sys/firmware/efi").exists();
    assert_eq!(boot_mode, if efi { "uefi" } else { "bios" });
    let caps: Vec<&str> = props["capabilities"]
        .as_str()
        .context("capabilities")?
        .split(',')
        .collect();
    ensure!(
        caps.contains(&format!("boot_mode:{boot_mode}").as_str()),
        "capabilities {caps:?}"
    );
    // cpu-capabilities read the flags (Ironic's default map has aes -> cpu_aes).
    let aes = inv["cpu"]["flags"]
        .as_array()
        .is_some_and(|f| f.contains(&json!("aes")));
    assert_eq!(caps.contains(&"cpu_aes:true"), aes, "capabilities {caps:?}");

    // The port: created for the PXE (BOOTIF) NIC, linked to the switch.
    let ports = out["ports"].as_array().context("ports")?;
    ensure!(ports.len() == 1, "{}", ctx());
    let port = &ports[0];
    assert_eq!(port["address"], NIC_MAC);
    assert_eq!(port["pxe_enabled"], true);
    assert_eq!(port["physical_network"], CIDR_MAP.1);
    assert_eq!(
        port["local_link_connection"],
        json!({
            "switch_id": SWITCH.chassis_mac_text(),
            "port_id": SWITCH.port_id,
            "switch_info": SWITCH.system_name,
        })
    );

    // What parse-lldp decoded from the frames the agent received.
    let parsed = &out["plugin_data"]["parsed_lldp"][NIC];
    let vlans: Vec<Value> = SWITCH
        .vlans
        .iter()
        .map(|v| json!({"id": v, "name": format!("vlan{v}")}))
        .collect();
    assert_eq!(
        parsed,
        &json!({
            "switch_chassis_id": SWITCH.chassis_mac_text(),
            "switch_port_id": SWITCH.port_id,
            "switch_system_name": SWITCH.system_name,
            "switch_port_untagged_vlan_id": SWITCH.pvid,
            "switch_port_vlans": vlans,
            "switch_mgmt_addresses": [SWITCH.mgmt_ipv4.to_string()],
        }),
        "{}",
        ctx()
    );
    // The inventory's `lldp` (ipa-collect-lldp) and the lldp collector agree.
    let iface = inv["interfaces"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["name"] == NIC))
        .context("the NIC is not in the inventory")?;
    assert_eq!(iface["lldp"], posted["lldp_raw"][NIC]);
    Ok(())
}
