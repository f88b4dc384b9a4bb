//! Fault injection end to end, with the real shim and the real agent as processes on
//! 127.0.0.1 and real loop devices (over sparse files the tests create):
//!
//! * the conductor (`conductor-shim serve`) killed with SIGKILL while the agent writes the
//!   image, and at the exact moment after the agent accepted a command but before the shim
//!   recorded it; started again on the same port and database it finishes the deploy, with
//!   one command of each kind on the agent;
//! * the agent killed with SIGKILL mid-write and started again: it cannot get its token back
//!   (lookup answers `******`), so it serves nothing, and the conductor's callback timeout
//!   fails the deploy; the half-written disk has no partition table;
//! * images larger than the target disk: refused up front from the announced length, or failed
//!   at the end of the device (chunked download, compressed image), never SUCCEEDED;
//! * two conductors on one database, the agent failing over from the first to the second;
//! * SIGTERM mid-write: the command fails (first MiB wiped) and the agent exits within seconds.
//!
//! Covered elsewhere: a conductor down at boot (`agent_shim.rs`
//! `lookup_gives_up_when_the_conductor_is_down`), a dead first `ipa-api-url` (`agent_shim.rs`
//! `api_url_fail_over`), a download cut mid-way and resumed, and checksum mismatches
//! (`deploy.rs` `downloads_fail_over_and_resume`, `bad_images_fail_and_leave_no_bootable_disk`).
//!
//! Run with `cargo test -p e2e-tests --test faults -- --test-threads=1` (root, loop devices).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e_tests::image_server::{Fault, ImageServer};
use e2e_tests::images::{MIB, images_dir, sha256_file, whole_disk_image, zero};
use e2e_tests::{
    Proc, Shim, dii, free_port, http_get, http_post, loopback_agent_flags, read_range, sh,
    spawn_accept_loop, start_agent, wait_agent_api, wait_for,
};
use ironic_agent::testutil::LoopDevice;
use serde_json::{Value, json};

/// Sparse target disks just above IPA's 4 GiB minimum (the shim also names the device in a
/// root device hint).
const DISK: u64 = 4096 * MIB + 64 * MIB;
/// Upper bound of every wait for a deploy to end.
const T: Duration = Duration::from_secs(60);
/// Shim flags of every test: plain HTTP agents, a heartbeat every 1.2–2.4 s, quick polls.
const SHIM_FLAGS: &[&str] = &[
    "--no-require-tls",
    "--heartbeat-timeout",
    "4",
    "--command-wait-interval",
    "1",
];

/// Writes an msdos partition table onto `dev` (an "old" installation that must not survive a
/// failed write).
fn old_table(dev: &Path) -> anyhow::Result<()> {
    sh(&format!(
        "printf 'label: dos\\n,64M,L\\n' | sfdisk -q --no-reread {}",
        dev.display()
    ))
}

/// A TCP forwarder between the shim and the agent (the agent advertises the proxy's port): it
/// reads the shim's requests (plain HTTP) and can swallow the agent's answer to one of them,
/// so that a test kills the shim after the agent accepted a command but before the shim
/// learnt that it did.
struct AgentProxy {
    port: u16,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    /// The agent's port.
    target: u16,
    /// Substrings that, all in one request, make the proxy hold back its answer (once).
    hold: Mutex<Option<Vec<String>>>,
    /// Set once an answer was held back.
    held: AtomicBool,
    /// The last `agent_token` seen in a request line.
    token: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl AgentProxy {
    fn start(target: u16) -> anyhow::Result<AgentProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(ProxyShared {
            target,
            hold: Mutex::new(None),
            held: AtomicBool::new(false),
            token: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        spawn_accept_loop(
            listener,
            shared.clone(),
            |s| &s.stop,
            |s, client| {
                let _ = forward(s, client);
            },
        );
        Ok(AgentProxy { port, shared })
    }

    /// Holds back the answer to the next request containing every one of `patterns`.
    fn hold_answer_to(&self, patterns: &[&str]) {
        if let Ok(mut h) = self.shared.hold.lock() {
            *h = Some(patterns.iter().map(|p| p.to_string()).collect());
        }
    }

    fn held(&self) -> bool {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// The agent token the shim uses (from its request lines).
    fn token(&self) -> Option<String> {
        self.shared.token.lock().ok().and_then(|t| t.clone())
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The value of the last `agent_token=` in `text`.
fn token_in(text: &str) -> Option<String> {
    let at = text.rfind("agent_token=")? + "agent_token=".len();
    let token: String = text[at..]
        .chars()
        .take_while(|c| !matches!(c, '&' | ' ' | '\r' | '\n'))
        .collect();
    (!token.is_empty()).then_some(token)
}

/// Copies one connection both ways until either side closes it.
fn forward(s: &Arc<ProxyShared>, client: TcpStream) -> std::io::Result<()> {
    let agent = TcpStream::connect(("127.0.0.1", s.target))?;
    // The bytes of the request being sent (cleared when its answer starts), and whether the
    // answers on this connection are swallowed.
    let pending = Arc::new(Mutex::new(Vec::<u8>::new()));
    let swallow = Arc::new(AtomicBool::new(false));
    let (mut from_agent, mut to_client) = (agent.try_clone()?, client.try_clone()?);
    let (p, sw, sh) = (pending.clone(), swallow.clone(), s.clone());
    let answers = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded by the connection's life.
        loop {
            let n = from_agent.read(&mut buf)?;
            if n == 0 {
                let _ = to_client.shutdown(Shutdown::Write);
                return Ok(());
            }
            if sw.load(Ordering::SeqCst) {
                sh.held.store(true, Ordering::SeqCst);
                continue;
            }
            if let Ok(mut p) = p.lock() {
                p.clear();
            }
            to_client.write_all(&buf[..n])?;
        }
    });
    let (mut from_client, mut to_agent) = (client, agent);
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded by the connection's life.
    loop {
        let n = from_client.read(&mut buf)?;
        if n == 0 {
            let _ = to_agent.shutdown(Shutdown::Write);
            break;
        }
        if let Ok(mut p) = pending.lock() {
            p.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&p);
            if let Some(t) = token_in(&text)
                && let Ok(mut token) = s.token.lock()
            {
                *token = Some(t);
            }
            if let Ok(mut hold) = s.hold.lock()
                && hold
                    .as_ref()
                    .is_some_and(|pats| pats.iter().all(|pat| text.contains(pat.as_str())))
            {
                *hold = None;
                swallow.store(true, Ordering::SeqCst);
            }
        }
        to_agent.write_all(&buf[..n])?;
    }
    let _ = answers.join();
    Ok(())
}

/// One node, one loop device, a throttled image server, the shim and an agent reached through
/// an [`AgentProxy`]. Fields drop in order: processes first, the loop device last.
struct Bench {
    agent: Proc,
    shim: Shim,
    proxy: AgentProxy,
    server: ImageServer,
    lo: LoopDevice,
    image: PathBuf,
    agent_port: u16,
    cmdline: String,
    flags: Vec<String>,
    dir: tempfile::TempDir,
}

impl Bench {
    /// Everything up to the agent's first heartbeat, for an image of `size` bytes (`data` of
    /// them non-zero) served at `rate` bytes per second; `extra` shim flags.
    fn start(size: u64, data: u64, rate: u64, extra: &[&str]) -> anyhow::Result<Bench> {
        let dir = tempfile::tempdir()?;
        let images = images_dir(dir.path())?;
        let image = images.join("disk.raw");
        whole_disk_image(&image, size, data)?;
        let server = ImageServer::start(&images)?;
        server.set_fault(
            "disk.raw",
            Fault::Throttle {
                bytes_per_sec: rate,
            },
        );
        let lo = LoopDevice::create(&dir.path().join("target.img"), DISK)?;
        let flags: Vec<&str> = SHIM_FLAGS.iter().chain(extra).copied().collect();
        let shim = Shim::start(dir.path(), &flags)?;
        shim.create_host_node("n1", "manageable")?;
        let agent_port = free_port();
        let proxy = AgentProxy::start(agent_port)?;
        let mut flags = loopback_agent_flags(agent_port, &lo.path);
        flags.extend([
            "--no-auto-tls".to_string(),
            "--advertise-port".to_string(),
            proxy.port.to_string(),
        ]);
        let cmdline = shim.lookup_cmdline();
        let agent = start_agent(dir.path(), "agent", &cmdline, &as_strs(&flags))?;
        let bench = Bench {
            agent,
            shim,
            proxy,
            server,
            lo,
            image,
            agent_port,
            cmdline,
            flags,
            dir,
        };
        bench.shim.wait_first_heartbeat("n1", T)?;
        Ok(bench)
    }

    fn node(&self) -> anyhow::Result<Value> {
        self.shim.node("n1")
    }

    /// `conductor-shim deploy n1 --no-wait` of the image, the loop device named as root
    /// device.
    fn request_deploy(&self) -> anyhow::Result<()> {
        self.shim.request_deploy(
            "n1",
            &format!("{}/disk.raw", self.server.url),
            &sha256_file(&self.image)?,
            &self.lo.path,
        )
    }

    /// Waits until the deploy ends; fails if it ends anywhere but `active`. Returns the node.
    fn wait_active(&self) -> anyhow::Result<Value> {
        let n = wait_for(T, "the deploy to end", || {
            self.node().ok().filter(|n| {
                !matches!(
                    n["provision_state"].as_str(),
                    Some("wait call-back" | "deploying")
                )
            })
        })?;
        if n["provision_state"] != "active" {
            bail!("the deploy ended in {}: {n}", n["provision_state"]);
        }
        Ok(n)
    }

    /// `GET /v1/commands/` straight from the agent, with the token the shim used.
    fn agent_commands(&self) -> anyhow::Result<Vec<Value>> {
        let token = self
            .proxy
            .token()
            .context("the shim never sent a token through the proxy")?;
        let (status, v) = http_get(&format!(
            "http://127.0.0.1:{}/v1/commands/?agent_token={token}",
            self.agent_port
        ))?;
        if status != 200 {
            bail!("GET /v1/commands/: HTTP {status}: {v}");
        }
        Ok(v["commands"].as_array().cloned().unwrap_or_default())
    }

    /// Kills the shim with SIGKILL and starts it again on the same port and database.
    fn restart_shim(&mut self, extra: &[&str], name: &str) -> anyhow::Result<()> {
        self.shim.proc.sigkill()?;
        let port: u16 = self
            .shim
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("the shim's port")?;
        let flags: Vec<&str> = SHIM_FLAGS.iter().chain(extra).copied().collect();
        self.shim = Shim::start_at(self.dir.path(), port, &self.shim.db.clone(), name, &flags)?;
        Ok(())
    }

    /// Prints the logs of every process the bench started (tests call it when they fail with
    /// an error rather than a panic, which prints them by itself).
    fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                eprintln!(
                    "----- {} -----\n{}",
                    path.display(),
                    std::fs::read_to_string(&path).unwrap_or_default()
                );
            }
        }
    }

    /// Runs `scenario` on the bench, printing the logs if it fails.
    fn run(
        mut self,
        scenario: impl FnOnce(&mut Bench) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let result = scenario(&mut self);
        if result.is_err() {
            self.dump_logs();
        }
        result
    }

    /// The image's bytes on the disk, compared with the image.
    fn assert_disk_is_the_image(&self) -> anyhow::Result<()> {
        let image = std::fs::read(&self.image)?;
        let disk = read_range(&self.lo.path, 0, image.len() as u64)?;
        if let Some(at) = disk.iter().zip(&image).position(|(a, b)| a != b) {
            bail!("the disk differs from the image from byte {at} on");
        }
        Ok(())
    }
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn heartbeats(n: &Value) -> u64 {
    dii(n, "agent_heartbeat_count")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The agent's commands named `name`.
fn named<'a>(commands: &'a [Value], name: &str) -> Vec<&'a Value> {
    commands
        .iter()
        .filter(|c| c["command_name"] == name)
        .collect()
}

/// The shim is killed with SIGKILL while the agent writes the image (phase `agent_step`, with
/// progress stored) and started again on the same port and database: heartbeats resume, the
/// deploy ends `active`, the agent ran `write_image` once and the disk is the image.
#[test]
fn conductor_killed_mid_write_resumes_the_deploy() -> anyhow::Result<()> {
    // 64 MiB at 3 MiB/s: 21 s of writing, well beyond the agent's retry after a failed
    // heartbeat (5–10 s), so the restarted shim sees the write running.
    Bench::start(64 * MIB, 8 * MIB, 3 * MIB, &[])?.run(|bench| {
        bench.request_deploy()?;
        let n = wait_for(T, "write_image running with progress stored", || {
            bench.node().ok().filter(|n| {
                dii(n, "deploy_phase") == Some(&json!("agent_step"))
                    && dii(n, "deploy_progress").is_some()
            })
        })?;
        let beats = heartbeats(&n);
        bench.shim.proc.sigkill()?;
        let served = bench.server.bytes_served();

        // The agent goes on writing without its conductor; its heartbeats fail meanwhile.
        wait_for(Duration::from_secs(20), "the agent to write on", || {
            (bench.server.bytes_served() >= served + 3 * MIB).then_some(())
        })?;
        wait_for(
            Duration::from_secs(20),
            "a failed heartbeat while the shim is down",
            || {
                bench
                    .agent
                    .output()
                    .contains("heartbeat failed")
                    .then_some(())
            },
        )?;
        let n = bench.node()?;
        if dii(&n, "deploy_phase") != Some(&json!("agent_step")) {
            bail!("the killed shim left {n}");
        }

        bench.restart_shim(&[], "shim-restarted")?;
        wait_for(
            T,
            "a heartbeat through the restarted shim mid-write",
            || {
                bench.node().ok().filter(|n| {
                    heartbeats(n) > beats && dii(n, "deploy_phase") == Some(&json!("agent_step"))
                })
            },
        )?;
        let n = bench.wait_active()?;
        if !bench.shim.proc.output().contains("heartbeat accepted") {
            bail!("the restarted shim accepted no heartbeat");
        }
        if !n["last_error"].is_null() {
            bail!("an error was recorded: {n}");
        }

        let commands = bench.agent_commands()?;
        let writes = named(&commands, "execute_deploy_step");
        if writes.len() != 1 {
            bail!("one execute_deploy_step expected: {commands:?}");
        }
        assert_eq!(writes[0]["command_status"], "SUCCEEDED");
        assert_eq!(
            writes[0]["command_result"]["deploy_step"]["step"],
            "write_image"
        );
        bench.assert_disk_is_the_image()?;
        wait_for(Duration::from_secs(10), "the recorded power-off", || {
            std::fs::read_to_string(bench.dir.path().join("agent.power"))
                .ok()
                .filter(|p| p == "poweroff\n")
        })?;
        Ok(())
    })
}

/// The shim is killed with SIGKILL after the agent accepted a command but before the shim
/// read the answer (the proxy swallows it), in `phase`; started again on the same port and
/// database, it must recognise the command on the agent instead of sending it again. `check`
/// looks at the agent's commands once the node is `active`.
fn kill_after_the_agent_accepted(
    hold: &[&str],
    phase: &str,
    rate: u64,
    check: impl FnOnce(&[Value]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    Bench::start(16 * MIB, 16 * MIB, rate, &[])?.run(|bench| {
        bench.proxy.hold_answer_to(hold);
        bench.request_deploy()?;
        wait_for(T, "the agent to accept the command", || {
            bench.proxy.held().then_some(())
        })?;
        // The shim waits for the answer: its last write is the phase it sent the command in.
        let n = bench.node()?;
        if dii(&n, "deploy_phase") != Some(&json!(phase)) {
            bail!("expected phase {phase}: {n}");
        }
        bench.shim.proc.sigkill()?;
        std::thread::sleep(Duration::from_secs(2));
        bench.restart_shim(&[], "shim-restarted")?;
        let n = bench.wait_active()?;
        if !n["last_error"].is_null() {
            bail!("an error was recorded: {n}");
        }
        check(&bench.agent_commands()?)?;
        bench.assert_disk_is_the_image()
    })
}

/// Killed right after `execute_deploy_step(write_image)` was accepted (phase `step_running`):
/// `write_image` must not run twice.
#[test]
fn conductor_killed_after_write_image_was_accepted() -> anyhow::Result<()> {
    // 16 MiB at 4 MiB/s: the write still runs when the restarted shim first looks.
    kill_after_the_agent_accepted(
        &["deploy.execute_deploy_step", "write_image"],
        "step_running",
        4 * MIB,
        |commands| {
            let writes = named(commands, "execute_deploy_step");
            if writes.len() != 1 || writes[0]["command_status"] != "SUCCEEDED" {
                bail!("write_image was sent again after the restart: {commands:?}");
            }
            Ok(())
        },
    )
}

/// Killed right after `image.install_bootloader` was accepted (phase `install_bootloader`):
/// the restarted shim polls that command instead of sending it again.
#[test]
fn conductor_killed_after_install_bootloader_was_accepted() -> anyhow::Result<()> {
    kill_after_the_agent_accepted(
        &["image.install_bootloader"],
        "install_bootloader",
        64 * MIB,
        |commands| {
            if named(commands, "install_bootloader").len() != 1
                || named(commands, "execute_deploy_step").len() != 1
            {
                bail!("a command was sent again after the restart: {commands:?}");
            }
            Ok(())
        },
    )
}

/// Killed right after `standby.power_off` was accepted (phase `power_off`): the restarted
/// shim sees it as the agent's last command and ends the deploy without a second power-off.
#[test]
fn conductor_killed_after_power_off_was_accepted() -> anyhow::Result<()> {
    kill_after_the_agent_accepted(&["standby.power_off"], "power_off", 64 * MIB, |commands| {
        if named(commands, "power_off").len() != 1 {
            bail!("power_off was sent again after the restart: {commands:?}");
        }
        Ok(())
    })
}

/// The agent is killed with SIGKILL mid-write and started again with the same command line
/// and flags. As with Ironic, lookup answers `******` (the token was handed out), so the new
/// agent locks itself down: it serves nothing and never heartbeats. The shim's callback
/// timeout (Ironic's `[conductor]deploy_callback_timeout`) fails the deploy with an error
/// an operator can act on; the node is never `active`, and the half-written disk has no
/// partition table (the agent zeroes the old one first and holds the image's first MiB back
/// until the image verifies).
#[test]
fn agent_killed_mid_write_fails_the_deploy() -> anyhow::Result<()> {
    let timeout = [
        "--deploy-callback-timeout",
        "8",
        "--check-provision-state-interval",
        "1",
    ];
    // 32 MiB at 2 MiB/s: the kill lands after a few MiB.
    Bench::start(32 * MIB, 32 * MIB, 2 * MIB, &timeout)?.run(|bench| {
        old_table(&bench.lo.path)?;
        bench.request_deploy()?;
        wait_for(T, "a few MiB written", || {
            bench.node().ok().filter(|n| {
                dii(n, "deploy_progress")
                    .and_then(|p| p["bytes_written"].as_u64())
                    .is_some_and(|b| b >= 4 * MIB)
            })
        })?;
        bench.agent.sigkill()?;
        let killed = Instant::now();

        // Mid-write: image data is on the disk, the image's last data is not, and there is no
        // partition table.
        let image = std::fs::read(&bench.image)?;
        let slice = |at: u64| &image[at as usize..(at + MIB) as usize];
        if read_range(&bench.lo.path, MIB, MIB)? != slice(MIB) {
            bail!("no image data was written before the kill");
        }
        let last = image.len() as u64 - 2 * MIB;
        if read_range(&bench.lo.path, last, MIB)? == slice(last) {
            bail!("the write was complete before the kill");
        }
        if !zero(&read_range(&bench.lo.path, 0, MIB)?) {
            bail!("a partition table is left on the half-written disk");
        }

        // The same agent again: lookup answers "******" and it locks itself down.
        let again = start_agent(
            bench.dir.path(),
            "agent-restarted",
            &bench.cmdline,
            &as_strs(&bench.flags),
        )?;
        wait_for(
            Duration::from_secs(30),
            "the new agent to lock down",
            || again.output().contains("Locking down").then_some(()),
        )?;
        let api = format!("http://127.0.0.1:{}/v1/commands/", bench.agent_port);
        if http_get(&api).is_ok() {
            bail!("the locked-down agent serves its API");
        }

        let mut seen = Vec::new();
        let n = wait_for(Duration::from_secs(40), "the callback timeout", || {
            let n = bench.node().ok()?;
            seen.push(n["provision_state"].clone());
            (n["provision_state"] != "wait call-back" && n["provision_state"] != "deploying")
                .then_some(n)
        })?;
        if seen.contains(&json!("active")) || n["provision_state"] != "deploy failed" {
            bail!("expected deploy failed, never active; states {seen:?}, node {n}");
        }
        let error = n["last_error"].as_str().unwrap_or_default();
        if !(error.contains("Timeout reached while waiting for callback")
            && error.contains("no heartbeat"))
        {
            bail!("last_error: {error}");
        }
        assert_eq!(dii(&n, "deploy_phase"), Some(&json!("failed")), "{n}");
        // The clock runs from the last heartbeat, at most 2.4 s before the kill.
        assert!(
            killed.elapsed() >= Duration::from_millis(5500) && error.contains("for 8 s"),
            "failed before the callback timeout: {error}"
        );
        // Nothing reported the write as done, and no table appeared later.
        assert!(!again.output().contains("image committed"));
        assert!(zero(&read_range(&bench.lo.path, 0, MIB)?));
        assert!(http_get(&api).is_err());
        Ok(())
    })
}

/// An agent with a token from the kernel command line, driven directly.
struct DirectAgent {
    proc: Proc,
    base: String,
}

const TOKEN: &str = "faults-token-0123456789abcdefghijklmnopqrs";

impl DirectAgent {
    fn start(dir: &Path, allow: &Path) -> anyhow::Result<DirectAgent> {
        let port = free_port();
        let proc = start_agent(
            dir,
            "direct",
            &format!("ipa-agent-token={TOKEN} ipa-image-download-connection-retry-interval=0"),
            &[
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--allow-device",
                &allow.display().to_string(),
            ],
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_agent_api(&base, T)?;
        Ok(DirectAgent { proc, base })
    }

    /// `deploy.execute_deploy_step(write_image)` of `url` onto `device` (named as root
    /// device hint), waited for.
    fn write_image(&self, url: &str, sha: &str, device: &Path) -> anyhow::Result<Value> {
        self.start_write_image(url, sha, device, true)
    }

    /// [`DirectAgent::write_image`], waited for or not.
    fn start_write_image(
        &self,
        url: &str,
        sha: &str,
        device: &Path,
        wait: bool,
    ) -> anyhow::Result<Value> {
        let info = json!({"id": "big", "urls": [url], "os_hash_algo": "sha256",
            "os_hash_value": sha, "stream_raw_images": true, "disk_format": "raw"});
        let step = json!({"step": "write_image", "interface": "deploy", "priority": 0,
            "args": {"image_info": info, "configdrive": null}});
        let node = json!({"uuid": "big",
            "instance_info": {"root_device": {"name": device.display().to_string()}}});
        let body = json!({"name": "deploy.execute_deploy_step",
            "params": {"step": step, "node": node, "ports": []}});
        let (s, v) = http_post(
            &format!("{}/v1/commands/?agent_token={TOKEN}&wait={wait}", self.base),
            &body.to_string(),
        )?;
        if s != 200 {
            bail!("execute_deploy_step: HTTP {s}: {v}");
        }
        Ok(v)
    }
}

/// Images larger than the target disk (a 160 MiB whole-disk image, a 64 MiB disk): announced
/// by `Content-Length`, the write fails before any image byte is written, with both sizes in
/// the error; with no length (chunked) or compressed, it fails at the end of the disk. Either
/// way the partition-table areas are wiped; never SUCCEEDED, never a crash.
#[test]
fn images_larger_than_the_disk_fail_cleanly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let size = 160 * MIB;
    let disk_size = 64 * MIB;
    let raw = images.join("big.raw");
    whole_disk_image(&raw, size, 4 * MIB)?;
    std::fs::copy(&raw, images.join("big-chunked.raw"))?;
    sh(&format!("gzip -k -1 {}", raw.display()))?;
    let server = ImageServer::start(&images)?;
    server.set_fault("big-chunked.raw", Fault::Chunked);
    let lo = LoopDevice::create(&dir.path().join("small.img"), disk_size)?;
    let agent = DirectAgent::start(dir.path(), &lo.path)?;
    let sha = sha256_file(&raw)?;
    let fill = || -> anyhow::Result<Vec<u8>> {
        sh(&format!(
            "dd if=/dev/urandom of={} bs=1M count=64 status=none",
            lo.path.display()
        ))?;
        old_table(&lo.path)?;
        read_range(&lo.path, 0, disk_size)
    };
    let wiped = || -> anyhow::Result<bool> {
        Ok(zero(&read_range(&lo.path, 0, MIB)?)
            && zero(&read_range(&lo.path, disk_size - MIB, MIB)?))
    };
    let details = |v: &Value| {
        v["command_error"]["details"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // (b) and (c): failed once the write reached the end of the disk.
    let failed_at_the_end = |v: &Value| -> anyhow::Result<()> {
        assert_eq!(v["command_status"], "FAILED", "{v}");
        let text = details(v);
        assert!(
            text.contains("larger than") && text.contains(&disk_size.to_string()),
            "{v}"
        );
        assert!(wiped()?, "partition-table areas not wiped: {v}");
        Ok(())
    };

    // (a) The length is announced: refused before the disk is touched.
    let before = fill()?;
    let served = server.bytes_served();
    let started = Instant::now();
    let v = agent.write_image(&format!("{}/big.raw", server.url), &sha, &lo.path)?;
    assert_eq!(v["command_status"], "FAILED", "{v}");
    let text = details(&v);
    assert!(
        text.contains(&size.to_string()) && text.contains(&disk_size.to_string()),
        "the error must name both sizes: {v}"
    );
    assert!(
        server.bytes_served() - served < size / 2,
        "{} bytes downloaded before failing",
        server.bytes_served() - served
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The failure path wipes the partition-table areas (as after any failed write); nothing
    // of the image was written in between.
    assert!(wiped()?, "partition-table areas not wiped: {v}");
    let middle = MIB as usize..(disk_size - MIB) as usize;
    assert!(
        read_range(&lo.path, 0, disk_size)?[middle.clone()] == before[middle],
        "the disk was written although the image could never fit"
    );

    // (b) No length (chunked): the write reaches the end of the disk.
    fill()?;
    let v = agent.write_image(&format!("{}/big-chunked.raw", server.url), &sha, &lo.path)?;
    failed_at_the_end(&v)?;

    // (c) Compressed: the decompressed stream outgrows the disk.
    fill()?;
    let gz = images.join("big.raw.gz");
    let v = agent.write_image(
        &format!("{}/big.raw.gz", server.url),
        &sha256_file(&gz)?,
        &lo.path,
    )?;
    failed_at_the_end(&v)?;

    // The agent is still healthy.
    let (s, _) = http_get(&format!("{}/v1/status", agent.base))?;
    assert_eq!(s, 200);
    Ok(())
}

/// SIGTERM while the agent writes an image from a slow server: the download stops at once,
/// the command fails (its partition-table areas wiped, as after any failed write) and the
/// process exits within seconds, not after the download.
#[test]
fn sigterm_mid_write_fails_the_command_and_exits_promptly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let size = 64 * MIB;
    let raw = images.join("slow.raw");
    whole_disk_image(&raw, size, size)?;
    let server = ImageServer::start(&images)?;
    // 64 MiB at 2 MiB/s: half a minute, far longer than the shutdown may take.
    server.set_fault(
        "slow.raw",
        Fault::Throttle {
            bytes_per_sec: 2 * MIB,
        },
    );
    let lo = LoopDevice::create(&dir.path().join("disk.img"), 2 * size)?;
    sh(&format!(
        "dd if=/dev/urandom of={} bs=1M count=1 status=none conv=fsync",
        lo.path.display()
    ))?;
    old_table(&lo.path)?;
    let mut agent = DirectAgent::start(dir.path(), &lo.path)?;
    let v = agent.start_write_image(
        &format!("{}/slow.raw", server.url),
        &sha256_file(&raw)?,
        &lo.path,
        false,
    )?;
    assert_eq!(v["command_status"], "RUNNING", "{v}");
    // Past the held-back first MiB, so that the disk has been written (the old table is
    // already gone: metadata is wiped before a write starts).
    wait_for(T, "image data to flow", || {
        (server.bytes_served() > 5 * MIB).then_some(())
    })?;

    let pid = agent.proc.child.id().to_string();
    let sent = Instant::now();
    sh(&format!("kill -TERM {pid}"))?;
    let code = agent
        .proc
        .wait_exit(Duration::from_secs(8))
        .context("the agent must exit within seconds of SIGTERM while a download is running")?;
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
    assert_eq!(code, Some(0), "a clean exit");
    assert!(
        server.bytes_served() < size / 2,
        "the download went on after SIGTERM ({} bytes)",
        server.bytes_served()
    );
    // Not the image's first MiB (its partition table): never written, and wiped.
    assert!(zero(&read_range(&lo.path, 0, MIB)?), "first MiB wiped");
    let log = agent.proc.output();
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        log.contains("command failed") && log.contains("the agent is shutting down"),
        "the running command must be failed, not abandoned: {log}"
    );
    Ok(())
}

/// Two shims serve one SQLite database (as Ironic's conductors share theirs); the agent has
/// `ipa-api-url=A,B` and heartbeats to A. A is killed with SIGKILL mid-deploy: the next
/// heartbeat fails over to B within the same attempt, B records it and finishes the deploy;
/// the node is never in an error state.
#[test]
fn two_conductors_share_a_database_and_the_agent_fails_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = images_dir(dir.path())?;
    let image = images.join("disk.raw");
    whole_disk_image(&image, 24 * MIB, 24 * MIB)?;
    let server = ImageServer::start(&images)?;
    server.set_fault(
        "disk.raw",
        Fault::Throttle {
            bytes_per_sec: 3 * MIB,
        },
    );
    let lo = LoopDevice::create(&dir.path().join("target.img"), DISK)?;
    let db = dir.path().join("shared.sqlite");
    let mut a = Shim::start_at(dir.path(), free_port(), &db, "shim-a", SHIM_FLAGS)?;
    let b = Shim::start_at(dir.path(), free_port(), &db, "shim-b", SHIM_FLAGS)?;
    a.create_host_node("n1", "manageable")?;
    let agent_port = free_port();
    let mut flags = loopback_agent_flags(agent_port, &lo.path);
    flags.push("--no-auto-tls".into());
    let agent = start_agent(
        dir.path(),
        "agent",
        &format!("ipa-api-url={},{} ipa-lookup-timeout=30", a.url, b.url),
        &as_strs(&flags),
    )?;
    let heartbeat_lines = |shim: &Shim| shim.proc.output().matches("heartbeat accepted").count();
    wait_for(T, "two heartbeats through A", || {
        b.node("n1").ok().filter(|n| heartbeats(n) >= 2)
    })?;
    assert_eq!(heartbeat_lines(&b), 0, "B got heartbeats while A was up");

    a.request_deploy(
        "n1",
        &format!("{}/disk.raw", server.url),
        &sha256_file(&image)?,
        &lo.path,
    )?;
    let n = wait_for(T, "write_image running", || {
        b.node("n1").ok().filter(|n| {
            dii(n, "deploy_phase") == Some(&json!("agent_step"))
                && dii(n, "deploy_progress").is_some()
        })
    })?;
    let beats = heartbeats(&n);
    a.proc.sigkill()?;
    let killed = Instant::now();
    let mut seen = Vec::new();
    wait_for(Duration::from_secs(20), "two heartbeats through B", || {
        let n = b.node("n1").ok()?;
        seen.push(n["provision_state"].clone());
        (heartbeats(&n) >= beats + 2 && heartbeat_lines(&b) >= 2).then_some(())
    })?;
    // One heartbeat interval (at most 2.4 s with a 4 s timeout) plus the fail-over.
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "fail-over took {:?}",
        killed.elapsed()
    );
    let n = wait_for(T, "the deploy to end through B", || {
        let n = b.node("n1").ok()?;
        seen.push(n["provision_state"].clone());
        (!matches!(
            n["provision_state"].as_str(),
            Some("wait call-back" | "deploying")
        ))
        .then_some(n)
    })?;
    assert_eq!(n["provision_state"], "active", "{n}");
    assert_eq!(n["last_error"], Value::Null, "{n}");
    assert!(
        seen.iter()
            .all(|s| ["wait call-back", "deploying", "active"].contains(&s.as_str().unwrap_or(""))),
        "states seen: {seen:?}"
    );
    assert!(
        agent.output().contains("trying the next URL"),
        "the fail-over was not logged"
    );
    let image = std::fs::read(&image)?;
    assert!(read_range(&lo.path, 0, image.len() as u64)? == image);
    drop(agent);
    Ok(())
}
