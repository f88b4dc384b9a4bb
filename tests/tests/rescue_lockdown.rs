//! End-to-end: rescue and lockdown driven by the real conductor shim over HTTP on 127.0.0.1,
//! in Ironic's call sequence, against the real agent process.
//!
//! * Rescue: `conductor-shim rescue` on an active node → the agent (the "rescue ramdisk")
//!   looks up and heartbeats → `rescue.finalize_rescue` with the SHA-512 crypt hash → node
//!   `rescue`; the agent wrote the hash under its `--rescue-root`, stopped serving and
//!   heartbeating, stays alive and never printed the password or the hash. The ramdisk's
//!   `ironic-agent-rescue-user` script then makes the `rescue` user from it.
//! * Lockdown: a deploy of a small image onto a loop device for a node with
//!   `disable_power_off` ends with `standby.sync`, `system.lockdown` and polls until the
//!   agent's API is gone; the recorded network shows every NIC but `lo` down (nothing touched
//!   for real: `--network record:PATH`), no power-off was recorded, the node is active and on.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_tests::images::{MIB, images_dir, sha256_file, whole_disk_image};
use e2e_tests::{
    Proc, Shim, assert_success, dii, free_port, loopback_agent_flags, read_range, start_agent,
    wait_for,
};
use ironic_agent::commands::rescue;
use ironic_agent::testutil::LoopDevice;

const T: Duration = Duration::from_secs(60);
/// The install device must be at least 4 GiB (a sparse file).
const DISK: u64 = 4096 * MIB;
const PASSWORD: &str = "corr3ct-h0rse:battery staple";

/// Heartbeat requests the shim has logged so far (every request is logged with its path).
fn heartbeats(shim: &Shim) -> usize {
    shim.proc.output().matches("path=/v1/heartbeat/").count()
}

/// Waits until nothing accepts connections on `port` any more.
fn wait_port_closed(port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for(
        Duration::from_secs(15),
        "the agent's API port to close",
        || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .is_err()
                .then_some(())
        },
    )
}

/// The heartbeat count stays the same for `quiet` (several heartbeat intervals).
fn assert_heartbeats_stopped(shim: &Shim, quiet: Duration) {
    let before = heartbeats(shim);
    assert!(
        before > 0,
        "no heartbeat in the shim's log at all: the count below would prove nothing"
    );
    std::thread::sleep(quiet);
    let after = heartbeats(shim);
    assert_eq!(
        before, after,
        "the agent kept heartbeating after it stopped serving"
    );
}

fn assert_alive(agent: &mut Proc) {
    let status = agent.child.try_wait();
    assert!(
        matches!(status, Ok(None)),
        "the agent process must stay alive: {status:?}"
    );
}

/// `openssl passwd -6 -salt SALT -stdin`, when openssl is installed: an implementation of
/// SHA-512 crypt independent of the one the shim and the agent use.
fn openssl_sha512_crypt(salt: &str, password: &str) -> Option<String> {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(password.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn shim_rescues_an_active_node() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(
        dir.path(),
        &["--no-require-tls", "--heartbeat-timeout", "4"],
    )?;
    shim.create_host_node("r1", "active")?;
    // As `openstack baremetal node rescue`: the node waits for its rescue ramdisk.
    let requested = shim.cli_json(&["rescue", "r1", "--password", PASSWORD, "--no-wait"])?;
    assert_eq!(requested["provision_state"], "rescue wait", "{requested}");
    let stored = shim.node("r1")?;
    let stored_hash = stored["instance_info"]["hashed_rescue_password"]
        .as_str()
        .unwrap_or_default();
    assert!(stored_hash.starts_with("$6$"), "{stored}");
    assert!(
        !stored.to_string().contains(PASSWORD),
        "the plain password was stored"
    );

    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc"))?;
    let port = free_port();
    let root_arg = root.display().to_string();
    let network = format!("record:{}", dir.path().join("agent.network").display());
    let mut agent = start_agent(
        dir.path(),
        "agent",
        &shim.lookup_cmdline(),
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
            "--rescue-root",
            &root_arg,
            "--network",
            &network,
        ],
    )?;

    let n = wait_for(T, "the node to be rescued", || {
        shim.node("r1")
            .ok()
            .filter(|n| n["provision_state"] != "rescue wait" || n["last_error"].is_string())
    })?;
    assert_eq!(n["provision_state"], "rescue", "{n}");
    assert!(n["last_error"].is_null(), "{n}");
    assert!(
        n["instance_info"].get("hashed_rescue_password").is_none(),
        "the hash is removed once the rescue is done: {n}"
    );
    assert!(dii(&n, "agent_url").is_some());

    // The hash Ironic sent, written verbatim, private, and matching the password.
    let path = rescue::password_path(&root);
    let hash = std::fs::read_to_string(&path)?;
    assert!(hash.starts_with("$6$"), "{hash}");
    assert!(rescue::verify_password(PASSWORD, &hash));
    assert!(!rescue::verify_password("corr3ct-h0rse", &hash));
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777,
        0o600
    );
    let salt = hash
        .strip_prefix("$6$")
        .and_then(|rest| rest.rsplit_once('$'))
        .map(|(salt, _)| salt.to_string())
        .unwrap_or_default();
    if let Some(reference) = openssl_sha512_crypt(&salt, PASSWORD) {
        assert_eq!(
            reference, hash,
            "openssl computes another SHA-512 crypt hash"
        );
    }
    assert!(
        rescue::is_rescued(&root),
        "no {}",
        rescue::marker_path(&root).display()
    );

    // The API stops answering, the heartbeats end, the process stays.
    wait_port_closed(port)?;
    assert_heartbeats_stopped(&shim, Duration::from_secs(6));
    assert_alive(&mut agent);
    let out = agent.output();
    assert!(out.contains("rescue finalized"), "{out}");
    assert!(out.contains("heartbeats stopped"), "{out}");
    let hash_part = hash.rsplit('$').next().unwrap_or_default();
    for secret in [PASSWORD, hash.as_str(), hash_part] {
        assert!(
            !out.contains(secret),
            "the agent printed a secret: {secret}"
        );
        assert!(
            !shim.proc.output().contains(secret),
            "the shim printed a secret: {secret}"
        );
    }
    // The network stays up for the rescue user; nothing was powered off.
    assert!(!dir.path().join("agent.network").exists());
    assert!(!dir.path().join("agent.power").exists());

    // The ramdisk's step: the rescue user with that hash.
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    let script = e2e_tests::workspace_root().join("ramdisk-elements/initramfs/rescue-user");
    let made = Command::new("sh").arg(&script).arg(&root).output()?;
    assert!(made.status.success(), "{made:?}");
    assert!(!String::from_utf8_lossy(&made.stdout).contains(hash_part));
    let shadow = std::fs::read_to_string(root.join("etc/shadow"))?;
    assert!(shadow.starts_with(&format!("rescue:{hash}:")), "{shadow}");
    assert_eq!(
        std::fs::metadata(root.join("etc/shadow"))?
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd"))?;
    assert!(passwd.contains("\nrescue:x:1000:1000:"), "{passwd}");
    Ok(())
}

/// This machine's interfaces as the agent lists them for a lockdown (all but `lo`).
fn host_interfaces() -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "lo" && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[test]
fn deploy_of_a_node_that_must_stay_on_ends_in_a_lockdown() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let raw = images.join("disk.raw");
    let size = 8 * MIB;
    whole_disk_image(&raw, size, size)?;
    let checksum = sha256_file(&raw)?;
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK + 64 * MIB)?;
    let shim = Shim::start_with_images(
        dir.path(),
        &images,
        &[
            "--no-require-tls",
            "--post-deploy-get-power-state-retry-interval",
            "0.5",
            "--post-deploy-get-power-state-retries",
            "10",
        ],
    )?;
    shim.create_host_node("l1", "manageable")?;
    let set = shim.cli_json(&["node", "set", "l1", "--disable-power-off", "true"])?;
    assert_eq!(set["disable_power_off"], true, "{set}");

    let port = free_port();
    let mut flags = loopback_agent_flags(port, &lo.path);
    let record = dir.path().join("agent.network");
    flags.extend([
        "--no-auto-tls".to_string(),
        "--network".to_string(),
        format!("record:{}", record.display()),
    ]);
    let mut agent = start_agent(
        dir.path(),
        "agent",
        &shim.lookup_cmdline(),
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    shim.wait_first_heartbeat("l1", T)?;

    eprintln!("first heartbeat after {:?}", started.elapsed());
    let url = format!("{}/images/disk.raw", shim.url);
    let out = shim
        .deploy_command("l1", &url, &checksum, &lo.path)
        .args(["--boot-mode", "bios", "--timeout", "120"])
        .output()?;
    assert_success(&out, "deploy");
    eprintln!("deployed after {:?}", started.elapsed());
    let n = shim.node("l1")?;
    assert_eq!(n["provision_state"], "active", "{n}");
    assert_eq!(n["power_state"], "power on", "{n}");
    assert_eq!(read_range(&lo.path, 0, size)?, std::fs::read(&raw)?);

    // The shim only finished after the agent's API was gone; the agent then took every NIC
    // but loopback down (recorded) and powered nothing off.
    wait_port_closed(port)?;
    let nics = host_interfaces()?;
    let expected: String = nics.iter().map(|n| format!("down {n}\n")).collect();
    let recorded = wait_for(Duration::from_secs(15), "the recorded lockdown", || {
        std::fs::read_to_string(&record)
            .ok()
            .filter(|r| !r.is_empty())
    })?;
    assert_eq!(recorded, expected);
    assert!(!recorded.contains("down lo\n"));
    assert!(
        !dir.path().join("agent.power").exists(),
        "a locked-down node must not be powered off"
    );
    eprintln!("lockdown recorded after {:?}", started.elapsed());
    assert_heartbeats_stopped(&shim, Duration::from_secs(6));
    assert_alive(&mut agent);
    let log = agent.output();
    assert!(log.contains("system locked down"), "{log}");
    let shim_log = shim.proc.output();
    assert!(
        shim_log.contains("system.lockdown") || shim_log.contains("lockdown sent"),
        "{shim_log}"
    );
    Ok(())
}
