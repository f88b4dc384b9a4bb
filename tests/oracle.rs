//! The test oracles: IPA 13, Ironic 39 and `hardware-detect`, in the virtual environment that
//! `tests/oracle/setup.sh` makes (`$ORACLE_VENV`, default `target/oracle-venv`).
//!
//! A test that needs them fails loudly when the venv is missing: it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// The oracle venv's directory.
pub fn venv() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("ORACLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/oracle-venv"));
    if !dir.join(".peers").is_file() {
        bail!(
            "the oracle venv {} is missing: run `bash tests/oracle/setup.sh` (scripts/test.sh does)",
            dir.display()
        );
    }
    Ok(dir)
}

/// The venv's `python`.
pub fn python() -> anyhow::Result<PathBuf> {
    Ok(venv()?.join("bin/python"))
}

/// `tests/oracle/<name>`: a driver script of the oracles.
pub fn script(name: &str) -> PathBuf {
    crate::workspace_root().join("tests/oracle").join(name)
}

/// Runs driver script `name` with `args` under the venv's python (warnings off) and parses
/// its standard output as JSON; a non-zero exit is an error carrying its stderr.
pub fn run_json(name: &str, args: &[&str], stdin: Option<&Path>) -> anyhow::Result<Value> {
    let mut cmd = Command::new(python()?);
    cmd.arg("-W").arg("ignore").arg(script(name)).args(args);
    if let Some(input) = stdin {
        cmd.stdin(std::fs::File::open(input).with_context(|| input.display().to_string())?);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running oracle {name}"))?;
    if !out.status.success() {
        bail!(
            "oracle {name} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "oracle {name} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The body the agent posted to the inspection callback, rebuilt from the shim's node
/// (`conductor-shim node show`): `inventory` plus the stored plugin data.
pub fn posted_body(node: &Value) -> anyhow::Result<Value> {
    let mut body = node["inspection_data"]
        .as_object()
        .cloned()
        .context("the node has no inspection data")?;
    body.insert("inventory".into(), node["inventory"].clone());
    Ok(Value::Object(body))
}

/// Runs Ironic 39's inspection hooks (`tests/oracle/ironic_hooks.py`) over `body` with the
/// driver's `args`; the driver's JSON result. Fails when a hook raised or the body did not
/// pass Ironic's schema.
pub fn ironic_hooks(dir: &Path, body: &Value, args: &[&str]) -> anyhow::Result<Value> {
    let input = dir.join("posted-for-ironic.json");
    std::fs::write(&input, serde_json::to_vec(body)?)?;
    let out = run_json("ironic_hooks.py", args, Some(&input))?;
    if !out["schema_error"].is_null() {
        bail!("Ironic's schema refused the body: {}", out["schema_error"]);
    }
    if out["errors"].as_array().is_some_and(|e| !e.is_empty()) {
        bail!("Ironic's hooks raised: {:#}", out["errors"]);
    }
    Ok(out)
}

/// Our agent's inspection of this host, as the conductor shim stored it: a shim on loopback,
/// a node `n1` in `inspect wait` with the host's MACs, an agent whose kernel command line is
/// the shim's URLs plus `params` (e.g. `ipa-inspection-collectors=default,pci-devices`),
/// waiting up to `timeout` for the data. Returns the shim's node (`inventory`,
/// `inspection_data`).
pub fn inspect_host(
    dir: &Path,
    params: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<Value> {
    let shim = crate::Shim::start(dir, &["--no-require-tls"])?;
    let macs = crate::host_macs()?;
    let mut args = vec!["node", "create", "--name", "n1", "--state", "inspect wait"];
    for m in &macs {
        args.extend(["--mac", m.as_str()]);
    }
    shim.cli(&args, true)?;
    let cmdline = format!(
        "BOOT_IMAGE=/vmlinuz ipa-api-url={u} ipa-inspection-callback-url={u}/v1/continue_inspection \
         ipa-inspection-dhcp-wait-timeout=0 ipa-lookup-timeout=30 {params}",
        u = shim.url
    );
    let listen = format!("127.0.0.1:{}", crate::free_port());
    let _agent = crate::start_agent(
        dir,
        "agent",
        &cmdline,
        &[
            "--listen",
            &listen,
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
        ],
    )?;
    crate::wait_for(timeout, "inspection data in the shim", || {
        shim.node("n1")
            .ok()
            .filter(|n| n["inspection_data"].is_object())
    })
}
