//! `ironic-agent network-setup` on the host, in record mode: the network data comes from a real
//! config drive (an ext4 loop device labelled `config-2`: this host's kernel mounts neither
//! iso9660 nor vfat) found by label through a fake sysfs that makes it look like a CD-ROM, the
//! NICs are a fake `/sys/class/net`, and the configuration steps are recorded instead of
//! applied (the VM tests in `vm_field.rs` apply them for real). Needs root (losetup, mount).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A loop device over a file, detached on drop.
struct Loop(PathBuf);

impl Loop {
    fn attach(file: &Path) -> anyhow::Result<Loop> {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(file)
            .output()?;
        if !out.status.success() {
            bail!("losetup: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Loop(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim(),
        )))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// An ext4 image labelled `config-2` holding `openstack/latest/network_data.json`.
fn config_drive(dir: &Path, network_data: &[u8]) -> anyhow::Result<PathBuf> {
    let content = dir.join("cd");
    std::fs::create_dir_all(content.join("openstack/latest"))?;
    std::fs::write(
        content.join("openstack/latest/network_data.json"),
        network_data,
    )?;
    let img = dir.join("cd.img");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "config-2", "-d"])
        .arg(&content)
        .arg(&img)
        .arg("8M")
        .output()
        .context("mkfs.ext4 is needed by this test")?;
    if !out.status.success() {
        bail!("mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(img)
}

/// A fake sysfs: the loop device as a CD-ROM drive, and Ethernet NICs `(name, mac)`.
fn fake_sys(dir: &Path, lo: &Path, nics: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let sys = dir.join("sys");
    let name = lo
        .file_name()
        .and_then(|n| n.to_str())
        .context("loop name")?;
    let real = sys
        .join("devices/pci0000:00/0000:00:1f.2/ata1/block")
        .join(name);
    std::fs::create_dir_all(real.join("device"))?;
    std::fs::write(real.join("size"), "16384\n")?;
    std::fs::write(real.join("device/type"), "5\n")?;
    std::fs::create_dir_all(sys.join("class/block"))?;
    std::os::unix::fs::symlink(&real, sys.join("class/block").join(name))?;
    for (nic, mac) in nics {
        let d = sys.join("class/net").join(nic);
        std::fs::create_dir_all(d.join("device"))?;
        std::fs::write(d.join("type"), "1\n")?;
        std::fs::write(d.join("address"), format!("{mac}\n"))?;
    }
    Ok(sys)
}

struct Run {
    stdout: String,
    stderr: String,
    steps: Vec<Value>,
    state: Value,
}

fn network_setup(dir: &Path, sys: &Path, cmdline: &str) -> anyhow::Result<Run> {
    let cmdline_file = dir.join("cmdline");
    std::fs::write(&cmdline_file, cmdline)?;
    let record = dir.join("steps.jsonl");
    let state = dir.join("state.json");
    let out = Command::new(e2e_tests::bin("ironic-agent"))
        .arg("--cmdline")
        .arg(&cmdline_file)
        .arg("--etc-root")
        .arg(dir.join("root"))
        .arg("--sys-root")
        .arg(sys)
        .args(["--dev-root", "/dev", "--vmedia-allow-loop", "network-setup"])
        .arg("--record")
        .arg(&record)
        .arg("--state")
        .arg(&state)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("network-setup failed ({}): {stdout}{stderr}", out.status);
    }
    let steps = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()?;
    let state = serde_json::from_slice(&std::fs::read(&state)?)?;
    Ok(Run {
        stdout,
        stderr,
        steps,
        state,
    })
}

const NICS: [(&str, &str); 3] = [
    ("eth0", "52:54:00:aa:00:01"),
    ("eth1", "52:54:00:aa:00:02"),
    ("eth2", "52:54:00:aa:00:03"),
];

/// Bond of eth0+eth1 with a static VLAN on top from the config drive; eth2 is not in the
/// network data (DHCP fall-back) and gets VLAN 200 from the kernel command line.
#[test]
fn network_data_from_a_config_drive_and_a_cmdline_vlan() -> anyhow::Result<()> {
    let t = tempfile::tempdir()?;
    let data = json!({
        "links": [
            {"id": "p0", "type": "phy", "ethernet_mac_address": "52:54:00:AA:00:01"},
            {"id": "p1", "type": "phy", "ethernet_mac_address": "52:54:00:aa:00:02"},
            {"id": "b", "type": "bond", "bond_links": ["p0", "p1"], "bond_mode": "1"},
            {"id": "v", "type": "vlan", "vlan_link": "b", "vlan_id": "100"}
        ],
        "networks": [{"id": "n", "type": "ipv4", "link": "v", "ip_address": "192.0.2.10",
                      "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                                  "gateway": "192.0.2.1"}]}],
        "services": [{"type": "dns", "address": "192.0.2.53"}]
    });
    let img = config_drive(t.path(), &serde_json::to_vec(&data)?)?;
    let lo = Loop::attach(&img)?;
    let sys = fake_sys(t.path(), &lo.0, &NICS)?;
    let run = network_setup(
        t.path(),
        &sys,
        "BOOT_IMAGE=x ipa-enable-vlan-interfaces=eth2.200,eth9.5\n",
    )?;
    let ctx = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        vec!["dhcp eth2", "dhcp eth2.200"],
        "{ctx}"
    );
    let step = |kind: &str, key: &str, value: &str| {
        run.steps
            .iter()
            .find(|s| s["step"] == kind && s[key] == value)
            .cloned()
    };
    let bond = step("create_bond", "name", "bond0").with_context(|| ctx.clone())?;
    assert_eq!(bond["mode"], "active-backup");
    assert_eq!(bond["members"], json!(["eth0", "eth1"]));
    step("create_vlan", "name", "bond0.100").with_context(|| ctx.clone())?;
    let addr = step("add_address", "iface", "bond0.100").with_context(|| ctx.clone())?;
    assert_eq!(addr["addr"], "192.0.2.10");
    assert_eq!(addr["prefix"], 24);
    let route = step("add_route", "iface", "bond0.100").with_context(|| ctx.clone())?;
    assert_eq!(route["gateway"], "192.0.2.1");
    assert_eq!(route["prefix"], 0);
    let resolv = run
        .steps
        .iter()
        .find(|s| s["step"] == "write_resolv_conf")
        .with_context(|| ctx.clone())?;
    assert_eq!(resolv["nameservers"], json!(["192.0.2.53"]));
    let vlan = step("create_vlan", "name", "eth2.200").with_context(|| ctx.clone())?;
    assert_eq!(vlan["id"], 200);
    assert!(
        run.stderr.contains("eth9"),
        "the unknown VLAN parent is named: {ctx}"
    );
    assert_eq!(
        run.state["network_data_device"],
        lo.0.display().to_string().as_str()
    );
    assert_eq!(run.state["vlans"], json!(["eth2.200"]));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    assert!(
        !mounts.contains(&lo.0.display().to_string()),
        "the config drive stays mounted"
    );
    Ok(())
}

/// Malformed network data: a clear log line naming the device, DHCP on every NIC, no step.
#[test]
fn malformed_network_data_falls_back_to_dhcp() -> anyhow::Result<()> {
    let t = tempfile::tempdir()?;
    let img = config_drive(t.path(), b"{\"links\": [ {\"id\": 1,,]")?;
    let lo = Loop::attach(&img)?;
    let sys = fake_sys(t.path(), &lo.0, &NICS)?;
    let run = network_setup(t.path(), &sys, "quiet\n")?;
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        vec!["dhcp eth0", "dhcp eth1", "dhcp eth2"],
        "{}",
        run.stderr
    );
    assert!(run.steps.is_empty(), "{:?}", run.steps);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("not usable"))
        .with_context(|| format!("no warning in:\n{}", run.stderr))?;
    assert!(line.contains(&lo.0.display().to_string()), "{line}");
    assert!(line.contains("line 1"), "the JSON error is located: {line}");
    Ok(())
}
