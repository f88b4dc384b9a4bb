//! The built `conductor-shim` binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{FakeAgent, http, result_json};
use conductor_shim::store::{Store, StoreError};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_conductor-shim");

fn shim(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("CONDUCTOR_SHIM_DB")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok_json(db: &Path, args: &[&str]) -> Value {
    let out = shim(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ok_text(db: &Path, args: &[&str]) -> String {
    let out = shim(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn node_lifecycle_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shim.sqlite");
    let created = ok_json(
        &db,
        &[
            "--json",
            "node",
            "create",
            "--name",
            "n1",
            "--mac",
            "02:FC:00:00:00:01",
            "--mac",
            "02:fc:00:00:00:02",
            "--state",
            "wait call-back",
            "--property",
            "cpus=4",
            "--property",
            "root_device={\"name\": \"/dev/vda\"}",
            "--driver-info",
            "ipmi_password=secret",
        ],
    );
    let uuid = created["uuid"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "n1");
    assert_eq!(created["provision_state"], "wait call-back");
    assert_eq!(
        created["properties"],
        json!({"cpus": 4, "root_device": {"name": "/dev/vda"}})
    );
    assert_eq!(
        created["ports"],
        json!(["02:fc:00:00:00:01", "02:fc:00:00:00:02"])
    );

    let fixed = "8c2e0381-7dd8-49bb-aea8-47445bf88872";
    let second = ok_json(&db, &["node", "create", "--uuid", fixed, "--json"]);
    assert_eq!(second["uuid"], fixed);
    assert_eq!(second["provision_state"], "enroll");

    let list = ok_json(&db, &["node", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["uuid"], json!(uuid));

    let shown = ok_json(&db, &["--json", "node", "show", "n1"]);
    assert_eq!(shown["uuid"], json!(uuid));
    let shown = ok_json(&db, &["--json", "node", "show", &uuid]);
    assert_eq!(shown["name"], "n1");

    let changed = ok_json(&db, &["--json", "node", "set-state", "n1", "CLEANWAIT"]);
    assert_eq!(changed["provision_state"], "clean wait");

    let deleted = ok_json(&db, &["--json", "node", "delete", "n1"]);
    assert_eq!(deleted["deleted"], json!(uuid));
    assert_eq!(
        ok_json(&db, &["--json", "node", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let out = shim(&db, &["node", "show", "n1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node n1 not found"), "{stderr}");
    let out = shim(&db, &["node", "delete", "n1"]);
    assert!(!out.status.success());
}

#[test]
fn human_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shim.sqlite");
    ok_text(
        &db,
        &[
            "node",
            "create",
            "--name",
            "n1",
            "--mac",
            "02:fc:00:00:00:01",
        ],
    );
    let node = {
        let mut store = Store::open(&db).unwrap();
        let node = store.get_node("n1").unwrap();
        store
            .update_node(node.uuid, |n| {
                n.inventory = Some(json!({
                    "interfaces": [{"name": "eth0", "mac_address": "02:fc:00:00:00:01"}],
                    "cpu": {"count": 2, "architecture": "x86_64", "model_name": "AMD EPYC"},
                    "memory": {"total": 4294967296u64, "physical_mb": 4096},
                    "disks": [{"name": "/dev/vda", "size": 274877906944u64}]
                }));
                n.driver_internal_info.agent_secret_token = Some("t".repeat(43));
                n.driver_internal_info.agent_url = Some("https://127.0.0.1:9999".into());
                Ok::<_, StoreError>(())
            })
            .unwrap();
        node
    };
    let list = ok_text(&db, &["node", "list"]);
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("UUID"), "{list}");
    assert!(header.contains("LAST HEARTBEAT") && header.contains("AGENT URL"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&node.uuid.to_string()) && row.contains("enroll"),
        "{list}"
    );
    assert!(row.contains("https://127.0.0.1:9999"));
    // Columns are aligned: the header's STATE starts where the row's state does.
    assert_eq!(header.find("STATE"), row.find("enroll"));

    let show = ok_text(&db, &["node", "show", "n1"]);
    for expected in [
        "provision_state:",
        "enroll",
        "2 x x86_64 (AMD EPYC)",
        "4.0 GiB",
        "/dev/vda 256.0 GiB",
        "eth0 02:fc:00:00:00:01",
        "heartbeat count:",
        "cached deploy steps:",
    ] {
        assert!(show.contains(expected), "missing {expected:?} in:\n{show}");
    }
    assert!(!show.contains(&"t".repeat(43)), "token leaked:\n{show}");
    let shown = ok_json(&db, &["node", "show", "n1", "--json"]);
    assert_eq!(
        shown["driver_internal_info"]["agent_secret_token"],
        "******"
    );
}

#[test]
fn database_from_environment_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.sqlite");
    let out = Command::new(BIN)
        .args(["--json", "node", "create", "--name", "e1"])
        .env("CONDUCTOR_SHIM_DB", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    let out = shim(&db, &["node", "create", "--name", "e1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = shim(&db, &["node", "create", "--mac", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid MAC address"));
    let out = shim(&db, &["node", "set-state", "e1", "bogus"]);
    assert!(!out.status.success());
    let out = shim(&db, &["agent", "e1", "poll.get_hardware_info"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent_url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_announces_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shim.sqlite");
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-require-tls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("conductor-shim listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_string();
    let doc: Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["default_version"]["version"], "1.115");

    // The CLI can use the same database while the server runs.
    let db2 = db.clone();
    let created = tokio::task::spawn_blocking(move || {
        ok_json(
            &db2,
            &[
                "--json",
                "node",
                "create",
                "--name",
                "live",
                "--mac",
                "02:fc:00:00:00:01",
                "--state",
                "manageable",
            ],
        )
    })
    .await
    .unwrap();
    let resp = http()
        .get(format!("{url}/v1/lookup?addresses=02:fc:00:00:00:01"))
        .header("X-OpenStack-Ironic-API-Version", "1.62")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["node"]["uuid"], created["uuid"]);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_commands_talk_to_the_agent() {
    let agent = FakeAgent::start(|req| {
        if req.method == axum::http::Method::POST {
            (
                StatusCode::OK,
                result_json(
                    "get_hardware_info",
                    "SUCCEEDED",
                    json!({"cpu": {"count": 2}}),
                ),
            )
        } else {
            (
                StatusCode::OK,
                format!(
                    "{{\"commands\": [{}]}}",
                    result_json("get_hardware_info", "SUCCEEDED", Value::Null)
                ),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shim.sqlite");
    {
        let mut store = Store::open(&db).unwrap();
        let node = store
            .create_node(conductor_shim::model::NewNode {
                name: Some("n1".into()),
                ..Default::default()
            })
            .unwrap();
        let url = agent.url.clone();
        store
            .update_node(node.uuid, move |n| {
                n.driver_internal_info.agent_url = Some(url);
                n.driver_internal_info.agent_secret_token = Some("tok".into());
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
    let db2 = db.clone();
    let (result, text, listed) = tokio::task::spawn_blocking(move || {
        (
            ok_json(
                &db2,
                &[
                    "--json",
                    "agent",
                    "n1",
                    "poll.get_hardware_info",
                    "--wait",
                    "--params",
                    "{\"a\": 1}",
                ],
            ),
            ok_text(&db2, &["agent", "n1", "poll.get_hardware_info"]),
            ok_json(&db2, &["--json", "commands", "n1"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(result["command_status"], "SUCCEEDED");
    assert_eq!(result["command_result"]["cpu"]["count"], 2);
    assert!(
        text.contains("SUCCEEDED") && text.contains("\"count\": 2"),
        "{text}"
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let requests = agent.requests();
    assert_eq!(requests[0].query["wait"], "true");
    assert_eq!(requests[0].query["agent_token"], "tok");
    assert_eq!(
        requests[0].body.as_ref().unwrap(),
        &json!({"name": "poll.get_hardware_info", "params": {"a": 1}})
    );
    assert_eq!(requests[1].query["wait"], "false");
}
