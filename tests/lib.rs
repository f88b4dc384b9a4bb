//! Helpers for the end-to-end tests: build and start the real `conductor-shim` and
//! `ironic-agent` binaries as processes on 127.0.0.1, and wait for things to happen.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

pub mod efivars;
pub mod guest_ipa;
pub mod image_server;
pub mod images;
pub mod inventory_diff;
pub mod ipmi_sim;
pub mod loadgen;
pub mod oracle;
pub mod qemu;
pub mod vswitch;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

static BUILD: Once = Once::new();

/// Path of a workspace binary (debug profile), building the binaries once per test process.
pub fn bin(name: &str) -> PathBuf {
    BUILD.call_once(|| {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // `cargo test` sets per-package variables that some build scripts (ring) track: passed
        // on, they would make this nested build redo those crates for every test binary.
        for (key, _) in std::env::vars_os() {
            if let Some(k) = key.to_str()
                && (k.starts_with("CARGO_PKG_")
                    || k.starts_with("CARGO_MANIFEST_")
                    || matches!(
                        k,
                        "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
                    ))
            {
                cmd.env_remove(k);
            }
        }
        let status = cmd
            .args([
                "build",
                "--quiet",
                "-p",
                "ironic-agent",
                "-p",
                "conductor-shim",
                "--bins",
            ])
            .current_dir(workspace_root())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "building the binaries failed: {status:?}"
        );
    });
    target_dir().join("debug").join(name)
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Accepts connections on `listener` on a background thread, each handled by `handle` on a
/// thread of its own, until `stop(&shared)` holds at the next accept (wake the loop with a
/// connection of its own after setting it).
pub fn spawn_accept_loop<S: Send + Sync + 'static>(
    listener: TcpListener,
    shared: Arc<S>,
    stop: fn(&S) -> &AtomicBool,
    handle: fn(&Arc<S>, TcpStream),
) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop(&shared).load(Ordering::Relaxed) {
                break;
            }
            if let Ok(c) = conn {
                let s = shared.clone();
                std::thread::spawn(move || handle(&s, c));
            }
        }
    });
}

/// Waits up to `timeout` until the agent at `base` (`http://HOST:PORT`) answers
/// `GET /v1/status` with 200.
pub fn wait_agent_api(base: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_for(timeout, "the agent API", || {
        http_get(&format!("{base}/v1/status"))
            .ok()
            .filter(|(s, _)| *s == 200)
    })
    .map(drop)
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `timeout` with `what`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    poll(timeout, Duration::from_millis(100), f, || Ok(()))
        .map_err(|e| e.context(format!("timed out after {timeout:?} waiting for {what}")))
}

/// Calls `f` every `interval` until it returns `Some`; between calls `alive` may fail early
/// (a process died). After `timeout` fails with a bare "timed out" error for the caller to
/// describe.
pub fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        alive()?;
        if Instant::now() >= deadline {
            bail!("timed out");
        }
        std::thread::sleep(interval);
    }
}

/// A child process that is killed when dropped; its output goes to a log file.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Where its stdout+stderr go.
    pub log: PathBuf,
    name: String,
}

impl Proc {
    /// Starts `cmd`, sending stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            child,
            log: log.to_path_buf(),
            name: name.to_string(),
        })
    }

    /// The log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no clean-up of its own runs) and reaps it.
    pub fn sigkill(&mut self) -> anyhow::Result<()> {
        // `Child::kill` sends SIGKILL on Unix; an already exited process is fine.
        let _ = self.child.kill();
        self.child
            .wait()
            .with_context(|| format!("reaping {}", self.name))?;
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let child = &mut self.child;
        let name = self.name.clone();
        wait_for(timeout, &format!("{name} to exit"), || {
            child.try_wait().ok().flatten()
        })
        .map(|s| s.code())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.output()
            );
        }
    }
}

/// A running conductor shim with its own database.
pub struct Shim {
    /// The server process.
    pub proc: Proc,
    /// Its base URL.
    pub url: String,
    /// Its database file.
    pub db: PathBuf,
}

impl Shim {
    /// Starts `conductor-shim serve` on a free port with `extra` flags, waiting until it answers.
    pub fn start(dir: &Path, extra: &[&str]) -> anyhow::Result<Shim> {
        Shim::start_at(dir, free_port(), &dir.join("shim.sqlite"), "shim", extra)
    }

    /// Starts `conductor-shim serve` on `127.0.0.1:port` with database `db` and `extra` flags,
    /// logging to `dir/<name>.log`, waiting until it answers: a second conductor sharing a
    /// database, or a killed one started again on the same port and database. With
    /// `--tls-cert` among `extra` (see [`Shim::start_https`]) the URL is `https://` and the
    /// shim counts as started once it printed its `listening on` line.
    pub fn start_at(
        dir: &Path,
        port: u16,
        db: &Path,
        name: &str,
        extra: &[&str],
    ) -> anyhow::Result<Shim> {
        let mut cmd = Command::new(bin("conductor-shim"));
        cmd.arg("--db")
            .arg(db)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra);
        let proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log")))?;
        let https = extra.contains(&"--tls-cert");
        let scheme = if https { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let shim = Shim {
            proc,
            url,
            db: db.to_path_buf(),
        };
        if https {
            // The shared client trusts no CA (and may lack the client certificate the shim
            // asks for): wait for the start-up line, printed once the port is bound.
            let listening = format!("conductor-shim listening on {}", shim.url);
            wait_for(Duration::from_secs(20), "the shim to listen", || {
                shim.proc.output().contains(&listening).then_some(())
            })?;
        } else {
            wait_for(Duration::from_secs(20), "the shim to answer", || {
                http_get(&format!("{}/", shim.url)).ok()
            })?;
        }
        Ok(shim)
    }

    /// `node show NODE --json`, tolerating a `{"node": ...}` wrapper.
    pub fn node(&self, name: &str) -> anyhow::Result<Value> {
        let v = self.cli_json(&["node", "show", name])?;
        Ok(match v.get("node") {
            Some(n) if n.is_object() => n.clone(),
            _ => v,
        })
    }

    /// Runs a shim CLI command against this shim's database with `--json`; returns parsed JSON.
    pub fn cli_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = self.cli(args, true)?;
        serde_json::from_str(&out).with_context(|| format!("shim {args:?} printed non-JSON: {out}"))
    }

    /// Runs a shim CLI command; returns stdout, failing on a non-zero exit.
    pub fn cli(&self, args: &[&str], json: bool) -> anyhow::Result<String> {
        let mut cmd = Command::new(bin("conductor-shim"));
        cmd.arg("--db").arg(&self.db);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.args(args).output().context("running conductor-shim")?;
        if !out.status.success() {
            bail!(
                "conductor-shim {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Shim {
    /// [`Shim::start`] serving the files of `images` under `/images/` (`--images`), with a
    /// heartbeat timeout of 4 s, a command poll every second and `extra` flags.
    pub fn start_with_images(dir: &Path, images: &Path, extra: &[&str]) -> anyhow::Result<Shim> {
        let images = images.display().to_string();
        let mut flags = vec![
            "--heartbeat-timeout",
            "4",
            "--images",
            &images,
            "--command-wait-interval",
            "1",
        ];
        flags.extend_from_slice(extra);
        Shim::start(dir, &flags)
    }

    /// [`Shim::start`] serving HTTPS with the server certificate of `pki` (a directory written
    /// by [`shim_pki`]) and `extra` flags (e.g. `--tls-client-ca PKI/ca.crt`).
    pub fn start_https(dir: &Path, pki: &Path, extra: &[&str]) -> anyhow::Result<Shim> {
        let cert = pki.join("server.crt").display().to_string();
        let key = pki.join("server.key").display().to_string();
        let mut flags = vec!["--tls-cert", &cert, "--tls-key", &key];
        flags.extend_from_slice(extra);
        Shim::start(dir, &flags)
    }

    /// The kernel command line of an agent that looks its node up through this shim
    /// (`ipa-api-url=https://...` for an HTTPS shim: the agent then needs the CA, e.g.
    /// `--cafile PKI/ca.crt`).
    pub fn lookup_cmdline(&self) -> String {
        format!("ipa-api-url={} ipa-lookup-timeout=30", self.url)
    }

    /// Waits up to `timeout` for the first heartbeat of `node`'s agent (its `agent_url` is
    /// stored); returns the node.
    pub fn wait_first_heartbeat(&self, node: &str, timeout: Duration) -> anyhow::Result<Value> {
        wait_for(timeout, "the agent's first heartbeat", || {
            self.node(node)
                .ok()
                .filter(|n| dii(n, "agent_url").is_some())
        })
    }

    /// `conductor-shim deploy NODE` of the raw image at `url` with SHA-256 `sha256` onto
    /// `device` (named in a root device hint), against this shim's database; the caller adds
    /// flags and runs it.
    pub fn deploy_command(&self, node: &str, url: &str, sha256: &str, device: &Path) -> Command {
        let mut cmd = Command::new(bin("conductor-shim"));
        cmd.arg("--db")
            .arg(&self.db)
            .args(deploy_args(node, url, sha256, device));
        cmd
    }

    /// [`Shim::deploy_command`] with `--no-wait`: requests the deploy, failing if the shim
    /// refuses it.
    pub fn request_deploy(
        &self,
        node: &str,
        url: &str,
        sha256: &str,
        device: &Path,
    ) -> anyhow::Result<()> {
        let mut args = deploy_args(node, url, sha256, device);
        args.push("--no-wait".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args, false).map(drop)
    }

    /// `node create --name NAME --state STATE` with a port for each of this machine's NICs,
    /// so that an agent started here finds the node at lookup.
    pub fn create_host_node(&self, name: &str, state: &str) -> anyhow::Result<()> {
        let macs = host_macs()?;
        let mut create = vec!["node", "create", "--name", name, "--state", state];
        for m in &macs {
            create.push("--mac");
            create.push(m);
        }
        self.cli(&create, true).map(drop)
    }
}

/// The arguments of [`Shim::deploy_command`].
fn deploy_args(node: &str, url: &str, sha256: &str, device: &Path) -> Vec<String> {
    vec![
        "deploy".into(),
        node.into(),
        "--image".into(),
        url.into(),
        "--checksum".into(),
        format!("sha256:{sha256}"),
        "--root-hint".into(),
        format!("name={}", device.display()),
    ]
}

/// `conductor-shim pki --out DIR/pki --ip 127.0.0.1 [--client]`: a CA with a server
/// certificate for 127.0.0.1 (and a client certificate); returns the directory.
pub fn shim_pki(dir: &Path, client: bool) -> anyhow::Result<PathBuf> {
    let out = dir.join("pki");
    let mut cmd = Command::new(bin("conductor-shim"));
    cmd.arg("pki")
        .arg("--out")
        .arg(&out)
        .args(["--ip", "127.0.0.1"]);
    if client {
        cmd.arg("--client");
    }
    let done = cmd.output().context("running conductor-shim pki")?;
    assert_success(&done, "conductor-shim pki");
    Ok(out)
}

/// Flags for an agent listening on `127.0.0.1:port`, advertising 127.0.0.1 and allowed to
/// write only `device`.
pub fn loopback_agent_flags(port: u16, device: &Path) -> Vec<String> {
    vec![
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--advertise-host".into(),
        "127.0.0.1".into(),
        "--allow-device".into(),
        device.display().to_string(),
    ]
}

/// MACs of this machine's physical NICs (those with a `device` link), as the agent reports them.
pub fn host_macs() -> anyhow::Result<Vec<String>> {
    let mut macs = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let path = entry?.path();
        if path.join("device").exists() {
            let mac = std::fs::read_to_string(path.join("address"))?
                .trim()
                .to_ascii_lowercase();
            if !mac.is_empty() && mac != "00:00:00:00:00:00" && !mac.starts_with("fa:") {
                macs.push(mac);
            }
        }
    }
    if macs.is_empty() {
        bail!(
            "this machine has no physical NIC; the end-to-end tests need one to look the node up by MAC"
        );
    }
    Ok(macs)
}

/// Starts `ironic-agent` with a fake kernel command line `cmdline` and extra flags.
pub fn start_agent(dir: &Path, name: &str, cmdline: &str, flags: &[&str]) -> anyhow::Result<Proc> {
    start_agent_with(Command::new(bin("ironic-agent")), dir, name, cmdline, flags)
}

/// [`start_agent`] with the agent started by `cmd`: another binary, or the agent under a runner
/// such as `qemu-loongarch64-static AGENT`. The agent's own arguments are appended to `cmd`.
pub fn start_agent_with(
    mut cmd: Command,
    dir: &Path,
    name: &str,
    cmdline: &str,
    flags: &[&str],
) -> anyhow::Result<Proc> {
    let cmdline_file = dir.join(format!("{name}.cmdline"));
    // The host's disks are never the deploy target: one look for a root device instead of
    // IPA's 10 × 3 s wait, unless the test sets the parameter itself.
    let cmdline = if cmdline.contains("ipa-disk-wait-attempts") {
        cmdline.to_string()
    } else {
        format!("{} ipa-disk-wait-attempts=1", cmdline.trim_end())
    };
    std::fs::write(&cmdline_file, cmdline)?;
    let plugins = dir.join(format!("{name}.plugins"));
    std::fs::create_dir_all(&plugins)?;
    cmd.arg("--cmdline")
        .arg(&cmdline_file)
        .arg("--hardware-managers-dir")
        .arg(&plugins)
        .arg("--power")
        .arg(format!(
            "record:{}",
            dir.join(format!("{name}.power")).display()
        ))
        .args(flags)
        .env(
            "IRONIC_AGENT_LOG",
            "debug,hyper=info,reqwest=info,rustls=info,h2=info",
        );
    Proc::spawn(name, cmd, &dir.join(format!("{name}.log")))
}

/// The shared blocking HTTP client (rustls on ring, no roots: plain HTTP only in practice).
pub fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
        let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if let Ok(tls) = tls {
            builder = builder.tls_backend_preconfigured(tls);
        }
        builder
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new())
    })
}

/// `GET url` → (status, JSON body or Null).
pub fn http_get(url: &str) -> anyhow::Result<(u16, Value)> {
    let resp = client().get(url).send()?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// `POST url` with a raw body → (status, JSON body or the raw text as a JSON string).
pub fn http_post(url: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let resp = client()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A non-null `driver_internal_info` field of a node as `node show --json` prints it.
pub fn dii<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    node.get("driver_internal_info")
        .and_then(|d| d.get(key))
        .filter(|v| !v.is_null())
}

/// Asserts that the process whose output is `out` exited with 0, showing its output if not.
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `args[0]` with the other `args`, failing with its stderr.
pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let (program, rest) = args.split_first().context("no program to run")?;
    let out = Command::new(program).args(rest).output()?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `sh -c CMD`, failing with its stderr.
pub fn sh(cmd: &str) -> anyhow::Result<()> {
    let out = Command::new("sh").arg("-c").arg(cmd).output()?;
    if !out.status.success() {
        bail!("`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `len` bytes of the file or device `p` from `offset`.
pub fn read_range(p: &Path, offset: u64, len: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; usize::try_from(len)?];
    f.read_exact(&mut buf)?;
    Ok(buf)
}
