//! End-to-end: the real conductor shim and the real agent as processes over HTTP(S) on
//! 127.0.0.1. The agent inspects this machine (read-only), looks its node up by the host's NIC
//! MACs, heartbeats, and is driven by the shim.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use e2e_tests::{Shim, dii, free_port, host_macs, http_get, http_post, start_agent, wait_for};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

/// A vendor plug-in at support level 3: it overrides `get_hostname` (proving the chain's
/// order), offers a slow deploy step, and is incompatible with everything else.
const ACME_PLUGIN: &str = r#"#!/bin/sh
cat >/dev/null
case "$IRONIC_AGENT_METHOD" in
  support) echo '{"result": 3}' ;;
  version) echo '{"result": {"name": "acme_hardware_manager", "version": "2.1", "class_name": "AcmeHardwareManager"}}' ;;
  get_hostname) echo '{"result": "acme-override"}' ;;
  steps) echo '{"result": [{"step": "slow_step", "priority": 0, "interface": "deploy", "reboot_requested": false, "abortable": true}]}' ;;
  slow_step) sleep 3; echo '{"result": {"slept": 3}}' ;;
  *) echo '{"error": {"type": "IncompatibleHardwareMethodError", "message": "not mine"}}' ;;
esac
"#;

fn install_plugin(dir: &Path, agent: &str) -> anyhow::Result<()> {
    let plugins = dir.join(format!("{agent}.plugins"));
    std::fs::create_dir_all(&plugins)?;
    let path = plugins.join("50-acme");
    std::fs::write(&path, ACME_PLUGIN)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn create_node(shim: &Shim, name: &str, state: &str) -> anyhow::Result<()> {
    let mut args = vec!["node", "create", "--name", name, "--state", state];
    let macs = host_macs()?;
    for m in &macs {
        args.push("--mac");
        args.push(m);
    }
    shim.cli(&args, true)?;
    Ok(())
}

#[test]
fn inspection_lookup_heartbeats_and_shim_driven_commands() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(
        dir.path(),
        &["--no-require-tls", "--heartbeat-timeout", "4"],
    )?;
    create_node(&shim, "n1", "inspect wait")?;
    install_plugin(dir.path(), "agent")?;
    let port = free_port();
    let cmdline = format!(
        "BOOT_IMAGE=/vmlinuz ipa-api-url={u} ipa-inspection-callback-url={u}/v1/continue_inspection \
         ipa-inspection-dhcp-wait-timeout=5 ipa-lookup-timeout=30 ipa-global-request-id=req-e2e",
        u = shim.url
    );
    let agent = start_agent(
        dir.path(),
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

    // Inspection stored, node moved on.
    let n = wait_for(T, "inspection data in the shim", || {
        shim.node("n1")
            .ok()
            .filter(|n| n.get("inventory").is_some_and(|i| !i.is_null()))
    })?;
    let inv = &n["inventory"];
    assert_eq!(
        n["provision_state"], "manageable",
        "inspect wait → manageable"
    );
    let macs = host_macs()?;
    let reported: Vec<&str> = inv["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["mac_address"].as_str())
        .collect();
    for m in &macs {
        assert!(
            reported.contains(&m.as_str()),
            "inventory lacks NIC {m}: {reported:?}"
        );
    }
    let cpus = std::thread::available_parallelism()?.get() as u64;
    assert_eq!(inv["cpu"]["count"].as_u64(), Some(cpus));
    assert_eq!(inv["cpu"]["architecture"], std::env::consts::ARCH);
    assert!(inv["memory"]["total"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        inv["hostname"], "acme-override",
        "the level-3 plug-in must win get_hostname"
    );
    assert_eq!(
        inv["boot"]["current_boot_mode"],
        if Path::new("/sys/firmware/efi").exists() {
            "uefi"
        } else {
            "bios"
        }
    );
    let data = &n["inspection_data"];
    assert_eq!(
        data["configuration"]["collectors"],
        json!(["default", "logs"])
    );
    assert!(
        data["logs"].as_str().is_some_and(|l| l.len() > 100),
        "logs collector output missing"
    );
    assert!(data["error"].is_null());

    // Lookup done, heartbeats arriving with the right body (the shim validates token,
    // agent_version and callback_url before accepting).
    let n = wait_for(T, "three heartbeats", || {
        shim.node("n1").ok().filter(|n| {
            dii(n, "agent_heartbeat_count")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                >= 3
        })
    })?;
    assert_eq!(
        dii(&n, "agent_url"),
        Some(&json!(format!("http://127.0.0.1:{port}")))
    );
    assert_eq!(
        dii(&n, "agent_version"),
        Some(&json!(env!("CARGO_PKG_VERSION")))
    );
    assert!(dii(&n, "agent_last_heartbeat").is_some());
    assert!(
        dii(&n, "agent_verify_ca").is_none(),
        "no certificate without auto-TLS"
    );

    // The shim drives get_deploy_steps on the next heartbeat in DEPLOYWAIT.
    shim.cli(&["node", "set-state", "n1", "wait call-back"], true)?;
    let n = wait_for(T, "cached deploy steps", || {
        shim.node("n1")
            .ok()
            .filter(|n| dii(n, "agent_cached_deploy_steps").is_some())
    })?;
    let steps = dii(&n, "agent_cached_deploy_steps")
        .cloned()
        .unwrap_or_default();
    let deploy: Vec<&str> = steps["deploy"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert!(
        deploy.contains(&"slow_step"),
        "plug-in step missing from {steps}"
    );
    let versions = dii(&n, "hardware_manager_version")
        .cloned()
        .unwrap_or_default();
    assert_eq!(versions["generic_hardware_manager"], "1.2");
    assert_eq!(versions["acme_hardware_manager"], "2.1");

    // The shim sends poll.get_hardware_info through the agent's API.
    let r = shim.cli_json(&["agent", "n1", "poll.get_hardware_info", "--wait"])?;
    assert_eq!(r["command_status"], "SUCCEEDED", "{r}");
    assert_eq!(r["command_name"], "get_hardware_info");
    assert_eq!(r["command_result"]["cpu"]["count"].as_u64(), Some(cpus));

    // An async step runs; a second command while it runs gets 409 (busy).
    let params = json!({"step": {"step": "slow_step", "interface": "deploy", "priority": 0},
                        "node": {"uuid": n["uuid"]}, "ports": [],
                        "deploy_version": versions});
    let r = shim.cli_json(&[
        "agent",
        "n1",
        "deploy.execute_deploy_step",
        "--params",
        &params.to_string(),
    ])?;
    assert_eq!(r["command_status"], "RUNNING", "{r}");
    let busy = shim.cli(&["agent", "n1", "poll.get_hardware_info", "--wait"], true);
    let text = format!("{busy:?}");
    assert!(
        busy.is_err() && text.to_lowercase().contains("busy"),
        "expected busy, got {text}"
    );
    let done = wait_for(T, "the step to finish", || {
        let c = shim.cli_json(&["commands", "n1"]).ok()?;
        let list = c.get("commands").cloned().unwrap_or(c);
        let last = list.as_array()?.last()?.clone();
        (last["command_status"] != "RUNNING").then_some(last)
    })?;
    assert_eq!(done["command_name"], "execute_deploy_step");
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    assert_eq!(done["command_result"]["deploy_result"], json!({"slept": 3}));
    assert_eq!(done["command_result"]["deploy_step"]["step"], "slow_step");

    // Without or with a wrong token: 401 in IPA's shape.
    let base = format!("http://127.0.0.1:{port}");
    for url in [
        format!("{base}/v1/commands/"),
        format!("{base}/v1/commands/?agent_token=wrong"),
    ] {
        let (status, body) = http_get(&url)?;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            json!({"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."})
        );
    }
    let (status, _) = http_post(
        &format!("{base}/v1/commands/?agent_token=wrong"),
        r#"{"name":"standby.sync","params":{}}"#,
    )?;
    assert_eq!(status, 401);
    drop(agent);
    Ok(())
}

/// The agent API's error cases, with a token from the kernel command line and no conductor.
#[test]
fn api_contract_without_conductor() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = "e2e-token-0123456789abcdefghijklmnopqrstuv";
    let port = free_port();
    let _agent = start_agent(
        dir.path(),
        "solo",
        &format!("ipa-agent-token={token}"),
        &["--listen", &format!("127.0.0.1:{port}")],
    )?;
    let base = format!("http://127.0.0.1:{port}");
    e2e_tests::wait_agent_api(&base, T)?;

    let (s, status) = http_get(&format!("{base}/v1/status"))?;
    assert_eq!(s, 200);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["started_at"].as_f64().is_some());
    for path in ["/", "/v1", "/v1/", "/status"] {
        assert_eq!(http_get(&format!("{base}{path}"))?.0, 200, "{path}");
    }
    let cmd = |q: &str, body: &str| {
        http_post(&format!("{base}/v1/commands/?agent_token={token}{q}"), body)
    };
    let fault = |v: &Value| v["faultstring"].as_str().unwrap_or_default().to_string();

    // Token is checked before the body.
    let (s, _) = http_post(&format!("{base}/v1/commands/"), "not json")?;
    assert_eq!(s, 401);
    let (s, v) = cmd("", "not json")?;
    assert_eq!(s, 400);
    assert_eq!(v["faultcode"], "Client");
    assert!(
        fault(&v).starts_with("400 Bad Request: Failed to decode JSON object"),
        "{v}"
    );
    let (s, v) = cmd("", r#"{"name": "standby.sync"}"#)?;
    assert_eq!(
        (s, fault(&v)),
        (
            400,
            "400 Bad Request: Missing or invalid name or params".into()
        )
    );
    let (s, v) = cmd("", r#"{"name": "nodot", "params": {}}"#)?;
    assert_eq!(
        (s, fault(&v)),
        (
            400,
            "Invalid command: Command name must be of the form <extension>.<name>".into()
        )
    );
    let (s, v) = cmd("", r#"{"name": "nope.x", "params": {}}"#)?;
    assert_eq!(
        (s, fault(&v)),
        (404, "Not found: Extension with id nope not found.".into())
    );
    let (s, v) = cmd("", r#"{"name": "standby.cache_image", "params": {}}"#)?;
    assert_eq!(
        (s, fault(&v)),
        (400, "Invalid command: Unknown command: cache_image".into())
    );
    let (s, v) = cmd(
        "",
        r#"{"name": "clean.get_clean_steps", "params": {"node": "x"}}"#,
    )?;
    assert_eq!(s, 400);
    assert!(fault(&v).starts_with("Invalid command parameters"), "{v}");

    // Sync command through both URL forms; results listed in order with five keys.
    let (s, v) = cmd("&wait=true", r#"{"name": "standby.sync", "params": {}}"#)?;
    assert_eq!(
        (s, v["command_status"].clone(), v["command_name"].clone()),
        (200, json!("SUCCEEDED"), json!("sync"))
    );
    let (s, v2) = http_post(
        &format!("{base}/commands?agent_token={token}"),
        r#"{"name": "poll.get_node_info", "params": {}}"#,
    )?;
    assert_eq!(s, 200, "{v2}");
    let (s, list) = http_get(&format!("{base}/v1/commands?agent_token={token}"))?;
    assert_eq!(s, 200);
    let list = list["commands"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], v["id"]);
    assert_eq!(list[0].as_object().map(|o| o.len()), Some(5));
    let id = v["id"].as_str().unwrap_or_default();
    assert_eq!(
        http_get(&format!(
            "{base}/v1/commands/{id}?agent_token={token}&wait=true"
        ))?
        .1["id"],
        v["id"]
    );
    let (s, v) = http_get(&format!("{base}/v1/commands/abc?agent_token={token}"))?;
    assert_eq!(
        (s, fault(&v)),
        (
            404,
            "Not found: Command Result with id abc not found.".into()
        )
    );

    // Power commands go through the Power trait (recorded here, never performed).
    let (s, v) = cmd("", r#"{"name": "standby.power_off", "params": {}}"#)?;
    assert_eq!((s, v["command_status"].clone()), (200, json!("RUNNING")));
    let rec = dir.path().join("solo.power");
    wait_for(T, "the recorded power action", || {
        std::fs::read_to_string(&rec)
            .ok()
            .filter(|s| s == "poweroff\n")
    })?;

    // Log bundle: base64 tar.gz with the agent's own log.
    let (s, v) = cmd(
        "&wait=true",
        r#"{"name": "log.collect_system_logs", "params": {}}"#,
    )?;
    assert_eq!(s, 200);
    let b64 = v["command_result"]["system_logs"]
        .as_str()
        .unwrap_or_default();
    use base64::Engine;
    let tgz = base64::engine::general_purpose::STANDARD.decode(b64)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz.as_slice()));
    let names: Vec<String> = archive
        .entries()?
        .filter_map(|e| {
            e.ok()
                .and_then(|e| e.path().ok().map(|p| p.display().to_string()))
        })
        .collect();
    assert!(names.contains(&"ironic-agent.log".to_string()), "{names:?}");
    assert!(names.contains(&"inventory.json".to_string()), "{names:?}");

    // Other methods: 405 in fault shape; unknown paths 404.
    let resp = e2e_tests::client()
        .delete(format!("{base}/v1/commands/"))
        .send()?;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        serde_json::from_str::<Value>(&resp.text()?)?["faultcode"],
        "Client"
    );
    assert_eq!(http_get(&format!("{base}/v2/nothing"))?.0, 404);
    Ok(())
}

#[test]
fn auto_tls_end_to_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Default shim: TLS required, like Ironic ≥ 26.
    let shim = Shim::start(dir.path(), &["--heartbeat-timeout", "4"])?;
    create_node(&shim, "tls1", "wait call-back")?;
    let port = free_port();
    let cmdline = format!("ipa-api-url={} ipa-lookup-timeout=30", shim.url);
    let _agent = start_agent(
        dir.path(),
        "tlsagent",
        &cmdline,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
        ],
    )?;
    let n = wait_for(T, "an https heartbeat and cached deploy steps", || {
        shim.node("tls1")
            .ok()
            .filter(|n| dii(n, "agent_cached_deploy_steps").is_some())
    })?;
    assert_eq!(
        dii(&n, "agent_url"),
        Some(&json!(format!("https://127.0.0.1:{port}")))
    );
    let pem = dii(&n, "agent_verify_ca")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "agent_verify_ca: {pem}"
    );
    // The shim talks TLS to the agent, trusting only that certificate.
    let r = shim.cli_json(&["agent", "tls1", "poll.get_hardware_info", "--wait"])?;
    assert_eq!(r["command_status"], "SUCCEEDED");
    // Plain HTTP is not served.
    assert!(
        http_get(&format!("http://127.0.0.1:{port}/v1/status"))
            .map(|(s, _)| s != 200)
            .unwrap_or(true)
    );
    Ok(())
}

#[test]
fn plain_http_agent_is_rejected_by_a_tls_requiring_conductor() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(dir.path(), &["--heartbeat-timeout", "4"])?;
    create_node(&shim, "n2", "wait call-back")?;
    let cmdline = format!("ipa-api-url={} ipa-lookup-timeout=30", shim.url);
    let port = free_port();
    let agent = start_agent(
        dir.path(),
        "plain",
        &cmdline,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
        ],
    )?;
    wait_for(T, "the agent to report the refusal", || {
        agent
            .output()
            .contains("TLS is required by configuration")
            .then_some(())
    })?;
    let n = shim.node("n2")?;
    assert!(
        dii(&n, "agent_url").is_none(),
        "an http callback must not be recorded"
    );
    Ok(())
}

#[test]
fn lookup_gives_up_when_the_conductor_is_down() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dead = free_port();
    let mut agent = start_agent(
        dir.path(),
        "orphan",
        &format!(
            "ipa-api-url=http://127.0.0.1:{dead} ipa-lookup-timeout=3 ipa-lookup-interval=0.5"
        ),
        &["--listen", &format!("127.0.0.1:{}", free_port())],
    )?;
    let code = agent.wait_exit(Duration::from_secs(30))?;
    assert_ne!(
        code,
        Some(0),
        "the agent must exit non-zero when lookup fails"
    );
    assert!(
        agent.output().contains("lookup failed"),
        "{}",
        agent.output()
    );
    Ok(())
}

/// With Ironic's default heartbeat_timeout (300 s) the next regular heartbeat is 90–180 s
/// away; an async command finishing must bring one within ~5 s (no sooner than 5 s after the
/// previous heartbeat).
#[test]
fn async_command_completion_forces_an_early_heartbeat() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(
        dir.path(),
        &["--no-require-tls", "--heartbeat-timeout", "300"],
    )?;
    create_node(&shim, "hb", "manageable")?;
    let cmdline = format!("ipa-api-url={} ipa-lookup-timeout=30", shim.url);
    let port = free_port();
    let _agent = start_agent(
        dir.path(),
        "hbagent",
        &cmdline,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
        ],
    )?;
    let count = |shim: &Shim| {
        shim.node("hb")
            .ok()
            .and_then(|n| dii(&n, "agent_heartbeat_count").and_then(Value::as_u64))
            .unwrap_or(0)
    };
    wait_for(T, "the first heartbeat", || {
        (count(&shim) >= 1).then_some(())
    })?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&shim), 1, "no second heartbeat expected yet");
    let r = shim.cli_json(&["agent", "hb", "standby.power_off"])?;
    assert_eq!(r["command_status"], "RUNNING");
    let start = std::time::Instant::now();
    wait_for(Duration::from_secs(15), "the forced heartbeat", || {
        (count(&shim) >= 2).then_some(())
    })?;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "forced heartbeat took {:?}",
        start.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hbagent.power"))?,
        "poweroff\n"
    );
    Ok(())
}

/// `ipa-api-url` with a dead first entry: lookup and heartbeats fail over to the second URL.
#[test]
fn api_url_fail_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(
        dir.path(),
        &["--no-require-tls", "--heartbeat-timeout", "4"],
    )?;
    create_node(&shim, "fo", "manageable")?;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cmdline = format!("ipa-api-url={dead},{} ipa-lookup-timeout=30", shim.url);
    let port = free_port();
    let agent = start_agent(
        dir.path(),
        "foagent",
        &cmdline,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
        ],
    )?;
    wait_for(T, "two heartbeats through the second URL", || {
        shim.node("fo").ok().filter(|n| {
            dii(n, "agent_heartbeat_count")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                >= 2
        })
    })?;
    assert!(
        agent.output().contains("trying the next URL"),
        "fail-over not logged"
    );
    Ok(())
}
