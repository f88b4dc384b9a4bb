//! Oracle: our inventory equals IPA 13's on this machine.
//!
//! IPA 13's `GenericHardwareManager` (in the oracle venv, `tests/oracle/ipa_inventory.py`)
//! and our agent (`poll.get_hardware_info` through its REST API) read the same host with the
//! same agent parameters (one command-line file for both: `BOOTIF`, `ipa-collect-lldp`, ...).
//! The two JSON documents are compared field by field over everything IPA posts — cpu,
//! memory, disks (keyed by name), interfaces (keyed by name), system_vendor, boot, the BMC
//! fields and hostname — and every difference fails the test unless [`EXCEPTIONS`] lists it
//! with its reason (the README's "Differences from IPA's inventory" summarises them). A
//! third run puts both in a network namespace with VLAN-named veths, for the interface rules
//! the host's single NIC does not exercise (several addresses, link-local IPv6, no carrier,
//! virtual devices' speeds).
//!
//! CPU frequency is compared exactly: IPA 13 reports lscpu's `CPU max MHz` (cpufreq's static
//! `cpuinfo_max_freq`, or nothing without cpufreq), never the fluctuating current clock, so
//! there is nothing unstable to tolerate. Loop devices (other tests' targets) are left out
//! by both: IPA keeps lsblk's `disk` type only, and our agent lists a loop device only when
//! it is allowed (`--allow-device`), which this test does not give.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::inventory_diff::{self, Diff};
use e2e_tests::{bin, free_port, http_post, oracle, run, start_agent_with, wait_for};
use serde_json::{Value, json};

const TOKEN: &str = "oracle-token-0123456789abcdefghijklmnopqrs";

/// A command running `program`, inside network namespace `netns` when given.
fn command_in(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// `POST url body` → JSON, from inside `netns` (curl there) or from here.
fn post_json(netns: Option<&str>, url: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let Some(ns) = netns else {
        return http_post(url, body);
    };
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-w", "\n%{http_code}"])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            url,
        ])
        .output()
        .context("curl in the namespace")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (json, code) = text.rsplit_once('\n').context("no status from curl")?;
    Ok((
        code.trim().parse()?,
        serde_json::from_str(json).unwrap_or(Value::Null),
    ))
}

/// Our agent's `poll.get_hardware_info` with the kernel command line `cmdline` (inside
/// `netns` when given), and the path of the command-line file it was given.
fn our_inventory(
    dir: &Path,
    name: &str,
    cmdline: &str,
    netns: Option<&str>,
) -> anyhow::Result<(Value, PathBuf)> {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = start_agent_with(
        command_in(netns, &bin("ironic-agent")),
        dir,
        name,
        &format!("{cmdline} ipa-agent-token={TOKEN}"),
        &["--listen", &listen, "--advertise-host", "127.0.0.1"],
    )?;
    let base = format!("http://{listen}");
    let result = (|| {
        let body = json!({"name": "poll.get_hardware_info", "params": {}}).to_string();
        let url = format!("{base}/v1/commands/?agent_token={TOKEN}");
        let (status, r) = wait_for(Duration::from_secs(60), "the agent's API", || {
            post_json(netns, &url, &body).ok().filter(|(s, _)| *s != 0)
        })?;
        if status != 200 || r["command_status"] != "SUCCEEDED" {
            bail!("get_hardware_info: {status} {r}");
        }
        Ok(r["command_result"].clone())
    })();
    let log = agent.output();
    agent.sigkill()?;
    let inventory = result.with_context(|| format!("agent log:\n{log}"))?;
    Ok((inventory, dir.join(format!("{name}.cmdline"))))
}

/// IPA's inventory with the agent parameters of `cmdline_file` (inside `netns` when given).
fn ipa_inventory(cmdline_file: &Path, netns: Option<&str>) -> anyhow::Result<Value> {
    let Some(ns) = netns else {
        let file = cmdline_file.display().to_string();
        return oracle::run_json("ipa_inventory.py", &[&file], None);
    };
    let out = command_in(Some(ns), &oracle::python()?)
        .args(["-W", "ignore"])
        .arg(oracle::script("ipa_inventory.py"))
        .arg(cmdline_file)
        .output()
        .context("running the IPA oracle in the namespace")?;
    if !out.status.success() {
        bail!(
            "oracle ipa_inventory.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("oracle ipa_inventory.py printed no JSON")
}

/// Runs both agents with `cmdline` and returns the unexplained differences (after printing
/// the explained ones) with IPA's inventory.
fn compare(
    dir: &Path,
    name: &str,
    cmdline: &str,
    netns: Option<&str>,
) -> anyhow::Result<(Vec<Diff>, Value)> {
    let (ours, cmdline_file) = our_inventory(dir, name, cmdline, netns)?;
    let ipa = ipa_inventory(&cmdline_file, netns)?;
    let without_udev = !Path::new("/run/udev/data").is_dir();
    let unexplained = inventory_diff::unexplained(name, &ipa, &ours, without_udev);
    Ok((unexplained, ipa))
}

fn assert_equal(name: &str, diffs: &[Diff]) {
    let text: Vec<String> = diffs
        .iter()
        .map(|d| format!("  {}: IPA {} / ours {}", d.path, d.ipa, d.ours))
        .collect();
    assert!(
        diffs.is_empty(),
        "{name}: our inventory differs from IPA 13's:\n{}",
        text.join("\n")
    );
}

/// The first physical NIC's MAC as a `BOOTIF` value (`01-aa-bb-...`), as PXE firmware sets it.
fn bootif() -> anyhow::Result<String> {
    let mac = e2e_tests::host_macs()?
        .into_iter()
        .next()
        .context("no physical NIC")?;
    Ok(format!("01-{}", mac.replace(':', "-")))
}

#[test]
fn inventory_equals_ipa13() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (diffs, _) = compare(
        dir.path(),
        "inventory",
        &format!("BOOTIF={}", bootif()?),
        None,
    )?;
    assert_equal("inventory", &diffs);
    Ok(())
}

/// With `ipa-collect-lldp=1` every NIC listens for LLDP (1 s here): both report `[]` where
/// no frame came, not null.
#[test]
fn inventory_with_lldp_equals_ipa13() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (diffs, _) = compare(
        dir.path(),
        "inventory-lldp",
        &format!("BOOTIF={} ipa-collect-lldp=1 ipa-lldp-timeout=1", bootif()?),
        None,
    )?;
    assert_equal("inventory-lldp", &diffs);
    Ok(())
}

/// A network namespace, deleted when dropped.
struct Netns(String);

impl Netns {
    fn create() -> anyhow::Result<Netns> {
        let ns = Netns(format!("invoracle{}", std::process::id()));
        run(&["ip", "netns", "add", &ns.0])?;
        Ok(ns)
    }

    /// `ip -n NS ARGS...`.
    fn ip(&self, args: &str) -> anyhow::Result<()> {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend(args.split_whitespace());
        run(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Interfaces IPA lists without a `device` link, in a network namespace of their own: a veth
/// pair named like VLANs (`v.10` with two IPv4 and two IPv6 addresses, its peer `p.20` with
/// only its IPv6 link-local one, reported as `fe80::...%p.20`; veths have a `speed` in sysfs
/// but no link modes) and a plain veth pair `x0`/`x1` that neither lists.
#[test]
fn interfaces_in_a_namespace_equal_ipa13() -> anyhow::Result<()> {
    let ns = Netns::create()?;
    ns.ip("link set lo up")?;
    ns.ip("link add v.10 type veth peer name p.20")?;
    ns.ip("link add x0 type veth peer name x1")?;
    ns.ip("addr add 10.1.0.1/24 dev v.10")?;
    ns.ip("addr add 10.1.0.2/24 dev v.10")?;
    ns.ip("addr add fd01::1/64 dev v.10 nodad")?;
    ns.ip("addr add fd01::2/64 dev v.10 nodad")?;
    ns.ip("link set v.10 up")?;
    ns.ip("link set p.20 up")?;
    ns.ip("link set x0 up")?;
    // Both veths are listed (by both agents) once their link-local addresses have passed
    // duplicate address detection: wait for that, or the comparison would race it.
    e2e_tests::wait_for(
        std::time::Duration::from_secs(20),
        "link-local IPv6 addresses on v.10 and p.20",
        || {
            let settled = |dev: &str| {
                Command::new("ip")
                    .args(["-n", &ns.0, "-6", "addr", "show", "dev", dev])
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .is_some_and(|t| t.contains("scope link") && !t.contains("tentative"))
            };
            (settled("v.10") && settled("p.20")).then_some(())
        },
    )?;
    let dir = tempfile::tempdir()?;
    let (diffs, ipa) = compare(dir.path(), "inventory-netns", "", Some(&ns.0))?;
    assert_equal("inventory-netns", &diffs);
    let mut names: Vec<&str> = ipa["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["p.20", "v.10"],
        "the namespace's interfaces were compared"
    );
    Ok(())
}
