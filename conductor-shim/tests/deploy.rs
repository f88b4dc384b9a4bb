//! Deploys driven by heartbeats against a scripted stand-in agent: the call sequence and
//! params of Ironic's direct deploy (as Ironic 39 does it), the
//! provision states, failures, skipped bootloaders, version mismatches, resumption after a
//! restart, and the image file server.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{
    FakeAgent, Recorded, Shim, accept, agent_fault, cli, command, command_list, finished, http,
    other_command, plain_config, sorted_keys,
};
use conductor_shim::api::ServerConfig;
use conductor_shim::deploy::DeployOptions;
use conductor_shim::deploy::request::{
    BootMode, Checksum, DeployRequest, ImageType, RequestError, request_deploy,
};
use conductor_shim::model::{DeployPhase, Node, PowerState};
use conductor_shim::state::ProvisionState;
use serde_json::{Value, json};

const MAC: &str = "02:fc:00:00:00:01";
const SHA: &str = "2e255746dd8008c97639197a509916d4d9b65eac80f80859b0383a49d9e6503c";
const IMAGE: &str = "http://127.0.0.1:46380/img.raw";

/// How the scripted agent's `execute_deploy_step` ends.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Succeed,
    Fail(&'static str),
}

/// How the scripted agent answers `image.install_bootloader`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bootloader {
    Succeed,
    Fail,
    NotFound,
    UnknownCommand,
}

#[derive(Debug, Clone)]
struct Script {
    outcome: Outcome,
    partition_uuids: Value,
    bootloader: Bootloader,
    mismatch_once: bool,
    busy_once: bool,
    extra_steps: Vec<Value>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            outcome: Outcome::Succeed,
            partition_uuids: json!({"root uuid": "0x00000000"}),
            bootloader: Bootloader::Succeed,
            mismatch_once: false,
            busy_once: false,
            extra_steps: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Model {
    commands: Vec<Value>,
    running_step: Option<usize>,
    bootloader_polls: u32,
    mismatch_done: bool,
    busy_done: bool,
    steps_calls: u32,
}

/// A stand-in agent keeping command results like IPA: POSTs append results, GET lists them.
struct ScriptedAgent {
    fake: FakeAgent,
    model: Arc<Mutex<Model>>,
    script: Script,
}

impl ScriptedAgent {
    async fn start(script: Script) -> ScriptedAgent {
        let model = Arc::new(Mutex::new(Model::default()));
        let (m, sc) = (Arc::clone(&model), script.clone());
        let fake = FakeAgent::start(move |req| respond(&m, &sc, req)).await;
        ScriptedAgent {
            fake,
            model,
            script,
        }
    }

    /// Ends the running `execute_deploy_step` as the script says.
    fn finish_step(&self) {
        let mut m = self.model.lock().unwrap();
        let index = m.running_step.take().expect("a running step");
        let echoed = m.commands[index]["__step"].clone();
        let done = if self.script.mismatch_once && !m.mismatch_done {
            m.mismatch_done = true;
            command(
                "execute_deploy_step",
                "CLEAN_VERSION_MISMATCH",
                json!({"type": "VersionMismatch", "code": 409,
                       "message": "Hardware managers version mismatch, reload agent with correct version",
                       "details": "Current versions: {'generic_hardware_manager': '1.3'}, versions used by ironic: {'generic_hardware_manager': '1.2'}"}),
                Value::Null,
            )
        } else {
            match &self.script.outcome {
                Outcome::Succeed => command(
                    "execute_deploy_step",
                    "SUCCEEDED",
                    Value::Null,
                    json!({"deploy_result": {"result": "prepare_image: image (img.raw) written to device /dev/vda root_uuid=0x00000000"},
                           "deploy_step": echoed}),
                ),
                Outcome::Fail(details) => command(
                    "execute_deploy_step",
                    "FAILED",
                    json!({"type": "DeploymentError", "code": 500,
                           "message": "Deploy step failed", "details": details}),
                    Value::Null,
                ),
            }
        };
        m.commands[index] = done;
    }

    /// `(method, command or "GET", wait)` of every request.
    fn calls(&self) -> Vec<(String, Option<String>)> {
        self.fake
            .requests()
            .into_iter()
            .map(|r| match r.method {
                Method::POST => (
                    r.body.as_ref().unwrap()["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    r.query.get("wait").cloned(),
                ),
                _ => ("GET".to_string(), None),
            })
            .collect()
    }

    fn posts(&self, name: &str) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.body.as_ref().unwrap()["name"] == name)
            .collect()
    }
}

fn respond(model: &Mutex<Model>, script: &Script, req: &Recorded) -> (StatusCode, String) {
    let mut m = model.lock().unwrap();
    if req.method == Method::GET {
        if let Some(last) = m.commands.last()
            && last["command_name"] == "install_bootloader"
            && last["command_status"] == "RUNNING"
        {
            m.bootloader_polls += 1;
            if m.bootloader_polls >= 2 {
                let done = match script.bootloader {
                    Bootloader::Fail => command(
                        "install_bootloader",
                        "FAILED",
                        json!({"type": "CommandExecutionError", "code": 500,
                               "message": "Command execution failed",
                               "details": "Installing GRUB2 boot loader to device /dev/vda failed"}),
                        Value::Null,
                    ),
                    _ => command("install_bootloader", "SUCCEEDED", Value::Null, Value::Null),
                };
                *m.commands.last_mut().unwrap() = done;
            }
        }
        return command_list(&m.commands);
    }
    let body = req.body.clone().unwrap();
    let params = &body["params"];
    let entry = match body["name"].as_str().unwrap() {
        "deploy.get_deploy_steps" => {
            m.steps_calls += 1;
            let version = if m.steps_calls > 1 && script.mismatch_once {
                "1.3"
            } else {
                "1.2"
            };
            let mut steps = vec![
                json!({"step": "erase_devices_metadata", "priority": 0, "interface": "deploy", "reboot_requested": false, "argsinfo": null}),
                json!({"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false, "argsinfo": null}),
            ];
            steps.extend(script.extra_steps.iter().cloned());
            command(
                "get_deploy_steps",
                "SUCCEEDED",
                Value::Null,
                json!({"deploy_steps": {"GenericHardwareManager": steps},
                       "hardware_manager_version": {"generic_hardware_manager": version}}),
            )
        }
        "deploy.execute_deploy_step" => {
            if script.busy_once && !m.busy_done {
                m.busy_done = true;
                return agent_fault(
                    StatusCode::CONFLICT,
                    "Agent is busy: executing command get_deploy_steps",
                );
            }
            let mut r = command(
                "execute_deploy_step",
                "RUNNING",
                Value::Null,
                json!({"progress": {"stage": "writing", "bytes_written": 1048576,
                                    "bytes_downloaded": 2097152, "total_bytes": 4194304,
                                    "rate_bytes_per_s": 1.0e8, "elapsed_s": 0.02}}),
            );
            r["__step"] = params["step"].clone();
            m.running_step = Some(m.commands.len());
            r
        }
        "standby.get_partition_uuids" => command(
            "get_partition_uuids",
            "SUCCEEDED",
            Value::Null,
            script.partition_uuids.clone(),
        ),
        "image.install_bootloader" => match script.bootloader {
            Bootloader::NotFound => {
                return agent_fault(
                    StatusCode::NOT_FOUND,
                    "Not found: Extension with id image not found.",
                );
            }
            Bootloader::UnknownCommand => {
                return agent_fault(
                    StatusCode::BAD_REQUEST,
                    "Invalid command: Unknown command: image.install_bootloader",
                );
            }
            _ => {
                m.bootloader_polls = 0;
                command("install_bootloader", "RUNNING", Value::Null, Value::Null)
            }
        },
        other => return other_command(&mut m.commands, other),
    };
    accept(&mut m.commands, entry)
}

fn config() -> ServerConfig {
    ServerConfig {
        deploy: DeployOptions {
            command_wait_interval: Duration::from_millis(50),
            command_wait_attempts: 20,
            ..DeployOptions::default()
        },
        ..plain_config()
    }
}

fn whole_disk(boot_mode: BootMode) -> DeployRequest {
    DeployRequest {
        image_url: IMAGE.to_string(),
        checksum: Some(Checksum::OsHash {
            algo: "sha256".into(),
            value: SHA.into(),
        }),
        boot_mode: Some(boot_mode),
        ..Default::default()
    }
}

struct Setup {
    shim: Shim,
    agent: ScriptedAgent,
    token: String,
}

impl Setup {
    async fn new(script: Script, request: DeployRequest) -> Setup {
        let shim = Shim::start(config()).await;
        shim.create("n1", &[MAC], ProvisionState::Available).await;
        let token = shim.lookup_token(MAC).await;
        let agent = ScriptedAgent::start(script).await;
        let node = shim
            .store
            .run(move |s| request_deploy(s, "n1", &request))
            .await
            .unwrap();
        assert_eq!(node.provision_state, ProvisionState::DeployWait);
        assert_eq!(
            node.driver_internal_info.deploy_phase,
            Some(DeployPhase::Requested)
        );
        Setup { shim, agent, token }
    }

    async fn heartbeat_to(&self, shim: &Shim) -> u16 {
        shim.heartbeat("n1", &self.agent.fake.url, &self.token)
            .await
    }

    async fn heartbeat(&self) {
        assert_eq!(self.heartbeat_to(&self.shim).await, 202);
    }

    async fn wait(&self, what: &str, check: impl Fn(&Node) -> bool) -> Node {
        self.shim.wait_for("n1", what, check).await
    }

    async fn wait_agent_step(&self) -> Node {
        self.wait("the agent step", |n| {
            n.provision_state == ProvisionState::DeployWait
                && n.driver_internal_info.deploy_phase == Some(DeployPhase::AgentStep)
        })
        .await
    }

    async fn wait_end(&self) -> Node {
        self.wait("the end of the deploy", |n| {
            matches!(
                n.provision_state,
                ProvisionState::Active | ProvisionState::DeployFailed
            )
        })
        .await
    }

    /// Heartbeat → write_image sent; agent finishes; heartbeat → rest of the deploy.
    async fn run_to_end(&self) -> Node {
        self.heartbeat().await;
        self.wait_agent_step().await;
        self.agent.finish_step();
        self.heartbeat().await;
        self.wait_end().await
    }
}

fn names(calls: &[(String, Option<String>)]) -> Vec<&str> {
    calls.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn whole_disk_uefi_deploy_follows_ironics_sequence() {
    let s = Setup::new(Script::default(), whole_disk(BootMode::Uefi)).await;

    // Heartbeat 1: steps cached, agent idle, write_image sent; the node waits.
    s.heartbeat().await;
    let node = s.wait_agent_step().await;
    let dii = &node.driver_internal_info;
    assert_eq!(dii.deploy_step.as_ref().unwrap().step, "write_image");
    assert_eq!(dii.deploy_step.as_ref().unwrap().priority, 80);
    assert_eq!(dii.deploy_step_index, Some(0));
    assert_eq!(node.power_state, Some(PowerState::On));
    assert_eq!(
        names(&s.agent.calls()),
        [
            "deploy.get_deploy_steps",
            "GET",
            "deploy.execute_deploy_step"
        ]
    );

    // Heartbeat 2: still RUNNING; its progress is stored.
    s.heartbeat().await;
    let node = s
        .wait("progress", |n| {
            n.driver_internal_info.deploy_progress.is_some()
        })
        .await;
    let progress = node.driver_internal_info.deploy_progress.unwrap();
    assert_eq!(progress.stage.as_deref(), Some("writing"));
    assert_eq!(progress.bytes_written, Some(1048576));
    assert_eq!(progress.total_bytes, Some(4194304));
    assert_eq!(node.provision_state, ProvisionState::DeployWait);

    // Heartbeat 3: SUCCEEDED ⇒ partition UUIDs, bootloader (polled), power off ⇒ active.
    s.agent.finish_step();
    s.heartbeat().await;
    let node = s.wait_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active, "{node:#?}");
    assert_eq!(node.power_state, Some(PowerState::Off));
    assert!(node.last_error.is_none());
    let dii = &node.driver_internal_info;
    assert_eq!(dii.deploy_phase, Some(DeployPhase::Done));
    assert_eq!(dii.root_uuid_or_disk_id.as_deref(), Some("0x00000000"));
    assert_eq!(
        dii.deploy_result.as_ref().unwrap()["result"],
        "prepare_image: image (img.raw) written to device /dev/vda root_uuid=0x00000000"
    );
    assert!(dii.deploy_warnings.is_empty());
    assert!(dii.agent_secret_token.is_none() && dii.agent_url.is_none());
    assert!(dii.deploy_step.is_none() && dii.deploy_progress.is_none());

    let calls = s.agent.calls();
    assert_eq!(
        calls,
        [
            ("deploy.get_deploy_steps".into(), Some("true".into())),
            ("GET".into(), None),
            ("deploy.execute_deploy_step".into(), Some("false".into())),
            ("GET".into(), None),
            ("GET".into(), None),
            ("standby.get_partition_uuids".into(), Some("true".into())),
            ("image.install_bootloader".into(), Some("false".into())),
            ("GET".into(), None),
            ("GET".into(), None),
            ("standby.power_off".into(), Some("false".into())),
        ]
    );
    for r in s.agent.fake.requests() {
        assert_eq!(r.query["agent_token"], s.token);
    }

    // execute_deploy_step params, as in the Ironic 39 trace.
    let exec = &s.agent.posts("deploy.execute_deploy_step")[0];
    let params = &exec.body.as_ref().unwrap()["params"];
    assert_eq!(
        sorted_keys(params),
        ["deploy_version", "node", "ports", "step"]
    );
    assert_eq!(
        params["deploy_version"],
        json!({"generic_hardware_manager": "1.2"})
    );
    assert_eq!(params["node"]["provision_state"], "deploying");
    assert_eq!(params["node"]["target_provision_state"], "active");
    assert_eq!(params["node"]["uuid"], json!(node.uuid.to_string()));
    assert_eq!(
        params["node"]["driver_internal_info"]["agent_secret_token"],
        "******"
    );
    assert_eq!(params["ports"][0]["address"], MAC);
    assert_eq!(
        params["step"],
        json!({
            "interface": "deploy",
            "step": "write_image",
            "args": {
                "configdrive": null,
                "image_info": {
                    "container_format": null, "disk_format": "raw", "id": "img.raw",
                    "node_uuid": node.uuid.to_string(), "os_hash_algo": "sha256",
                    "os_hash_value": SHA, "stream_raw_images": true, "urls": [IMAGE]
                }
            }
        })
    );
    let steps = &s.agent.posts("deploy.get_deploy_steps")[0];
    assert_eq!(
        steps.body.as_ref().unwrap()["params"]["node"]["provision_state"],
        "wait call-back"
    );
    let bootloader = &s.agent.posts("image.install_bootloader")[0];
    assert_eq!(
        bootloader.body.as_ref().unwrap()["params"],
        json!({"root_uuid": "0x00000000", "efi_system_part_uuid": null,
               "prep_boot_part_uuid": null, "target_boot_mode": "uefi"})
    );
    for name in ["standby.get_partition_uuids", "standby.power_off"] {
        assert_eq!(
            s.agent.posts(name)[0].body.as_ref().unwrap()["params"],
            json!({})
        );
    }

    // The token is gone: the agent's next heartbeat is refused, as in the trace.
    assert_eq!(s.heartbeat_to(&s.shim).await, 400);
}

#[tokio::test]
async fn whole_disk_bios_installs_no_bootloader() {
    let s = Setup::new(Script::default(), whole_disk(BootMode::Bios)).await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active);
    assert_eq!(
        names(&s.agent.calls()),
        [
            "deploy.get_deploy_steps",
            "GET",
            "deploy.execute_deploy_step",
            "GET",
            "standby.get_partition_uuids",
            "standby.power_off"
        ]
    );
}

#[tokio::test]
async fn partition_image_with_configdrive_installs_the_bootloader() {
    let script = Script {
        partition_uuids: json!({
            "partitions": {"root": "/dev/vda4", "efi system partition": "/dev/vda1", "configdrive": "/dev/vda3"},
            "root uuid": "8f1e5a3c-0d5b-4d36-9bb4-2f2b33f6c8d1",
            "efi system partition uuid": "5A1B-2C3D"
        }),
        ..Script::default()
    };
    let request = DeployRequest {
        image_type: ImageType::Partition,
        root_mb: Some(1024),
        swap_mb: Some(64),
        configdrive: Some(b"an ISO".to_vec()),
        image_url: "http://127.0.0.1:46380/root.qcow2".into(),
        disk_format: Some("qcow2".into()),
        ..whole_disk(BootMode::Uefi)
    };
    let s = Setup::new(script, request).await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active, "{node:#?}");
    assert_eq!(
        node.driver_internal_info
            .efi_system_partition_uuid
            .as_deref(),
        Some("5A1B-2C3D")
    );
    let exec = &s.agent.posts("deploy.execute_deploy_step")[0];
    let params = &exec.body.as_ref().unwrap()["params"];
    let configdrive = node.instance_info["configdrive"].clone();
    assert!(
        configdrive.as_str().unwrap().starts_with("H4sI"),
        "gzip+base64"
    );
    assert_eq!(params["step"]["args"]["configdrive"], configdrive);
    assert_eq!(
        params["node"]["instance_info"]["configdrive"], configdrive,
        "unmasked for execute_deploy_step"
    );
    let info = &params["step"]["args"]["image_info"];
    assert_eq!(info["image_type"], "partition");
    assert_eq!(info["root_mb"], 1024);
    assert_eq!(info["swap_mb"], 64);
    assert_eq!(info["ephemeral_mb"], 0);
    assert_eq!(info["deploy_boot_mode"], "uefi");
    assert_eq!(info["boot_option"], "local");
    assert_eq!(info["configdrive"], configdrive);
    assert_eq!(info["disk_format"], "qcow2");
    assert_eq!(info["id"], "root.qcow2");
    let steps = &s.agent.posts("deploy.get_deploy_steps")[0];
    assert_eq!(
        steps.body.as_ref().unwrap()["params"]["node"]["instance_info"]["configdrive"],
        "******",
        "masked for get_deploy_steps"
    );
    let bootloader = &s.agent.posts("image.install_bootloader")[0];
    assert_eq!(
        bootloader.body.as_ref().unwrap()["params"],
        json!({"root_uuid": "8f1e5a3c-0d5b-4d36-9bb4-2f2b33f6c8d1",
               "efi_system_part_uuid": "5A1B-2C3D",
               "prep_boot_part_uuid": null, "target_boot_mode": "uefi"})
    );
}

#[tokio::test]
async fn software_raid_bios_whole_disk_installs_the_bootloader_with_the_images_rootfs_uuid() {
    let s = Setup::new(Script::default(), whole_disk(BootMode::Bios)).await;
    let uuid = s.shim.store.run(|st| st.get_node("n1")).await.unwrap().uuid;
    s.shim
        .store
        .run(move |st| {
            st.update_node(uuid, |n| {
                n.target_raid_config = json!({"logical_disks": [
                    {"size_gb": "MAX", "raid_level": "1", "controller": "software"}]})
                .as_object()
                .cloned()
                .unwrap_or_default();
                n.instance_info.insert(
                    "image_rootfs_uuid".into(),
                    json!("3e8c41b8-0a5a-4bb3-9d62-4c7d1f0c2a11"),
                );
                Ok::<_, conductor_shim::store::StoreError>(())
            })
        })
        .await
        .unwrap();
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active);
    let bootloader = &s.agent.posts("image.install_bootloader")[0];
    assert_eq!(
        bootloader.body.as_ref().unwrap()["params"],
        json!({"root_uuid": "3e8c41b8-0a5a-4bb3-9d62-4c7d1f0c2a11",
               "efi_system_part_uuid": null,
               "prep_boot_part_uuid": null, "target_boot_mode": "bios"})
    );
}

#[tokio::test]
async fn partition_image_without_root_uuid_skips_the_bootloader() {
    let script = Script {
        partition_uuids: json!({}),
        ..Script::default()
    };
    let request = DeployRequest {
        image_type: ImageType::Partition,
        root_mb: Some(100),
        ..whole_disk(BootMode::Bios)
    };
    let s = Setup::new(script, request).await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active);
    assert!(s.agent.posts("image.install_bootloader").is_empty());
    let warnings = &node.driver_internal_info.deploy_warnings;
    assert!(warnings[0].contains("no root UUID"), "{warnings:?}");
}

#[tokio::test]
async fn failed_write_image_fails_the_deploy_with_the_agents_message() {
    let script = Script {
        outcome: Outcome::Fail("Error verifying image checksum: expected 2e25..., got 0000..."),
        ..Script::default()
    };
    let s = Setup::new(script, whole_disk(BootMode::Uefi)).await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::DeployFailed);
    let error = node.last_error.unwrap();
    assert!(
        error.contains("Error verifying image checksum: expected 2e25..., got 0000..."),
        "{error}"
    );
    assert!(error.contains("deploy.write_image"), "{error}");
    assert_eq!(
        node.driver_internal_info.deploy_phase,
        Some(DeployPhase::Failed)
    );
    assert_eq!(
        names(&s.agent.calls()),
        [
            "deploy.get_deploy_steps",
            "GET",
            "deploy.execute_deploy_step",
            "GET"
        ]
    );
    // The agent session stays (fast track): a new deploy can be requested at once.
    assert!(node.driver_internal_info.agent_secret_token.is_some());
    let again = s
        .shim
        .store
        .run(|st| request_deploy(st, "n1", &whole_disk(BootMode::Uefi)))
        .await
        .unwrap();
    assert_eq!(again.provision_state, ProvisionState::DeployWait);
    assert!(again.last_error.is_none());
    assert!(
        again
            .driver_internal_info
            .agent_cached_deploy_steps
            .is_none()
    );
}

#[tokio::test]
async fn bootloader_failure_fails_the_deploy() {
    let script = Script {
        bootloader: Bootloader::Fail,
        ..Script::default()
    };
    let s = Setup::new(script, whole_disk(BootMode::Uefi)).await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::DeployFailed);
    let error = node.last_error.unwrap();
    assert!(error.contains("Failed to install a bootloader"), "{error}");
    assert!(error.contains("Installing GRUB2 boot loader"), "{error}");
    assert!(s.agent.posts("standby.power_off").is_empty());
}

#[tokio::test]
async fn agents_without_install_bootloader_are_skipped() {
    for (behaviour, fragment) in [
        (Bootloader::NotFound, "Extension with id image not found"),
        (Bootloader::UnknownCommand, "Unknown command"),
    ] {
        let script = Script {
            bootloader: behaviour,
            ..Script::default()
        };
        let s = Setup::new(script, whole_disk(BootMode::Uefi)).await;
        let node = s.run_to_end().await;
        assert_eq!(
            node.provision_state,
            ProvisionState::Active,
            "{behaviour:?}: {node:#?}"
        );
        let warnings = &node.driver_internal_info.deploy_warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(fragment), "{warnings:?}");
        assert!(warnings[0].contains("bootloader was not installed"));
        assert_eq!(s.agent.posts("image.install_bootloader").len(), 1);
        assert_eq!(s.agent.posts("standby.power_off").len(), 1);
    }
}

#[tokio::test]
async fn version_mismatch_refreshes_steps_and_reruns_the_step() {
    let script = Script {
        mismatch_once: true,
        ..Script::default()
    };
    let s = Setup::new(script, whole_disk(BootMode::Bios)).await;
    s.heartbeat().await;
    s.wait_agent_step().await;
    s.agent.finish_step(); // CLEAN_VERSION_MISMATCH
    s.heartbeat().await;
    s.wait("write_image sent again", |_| {
        s.agent.posts("deploy.execute_deploy_step").len() == 2
    })
    .await;
    let node = s.wait_agent_step().await;
    assert_eq!(
        node.driver_internal_info.hardware_manager_version.unwrap()["generic_hardware_manager"],
        "1.3"
    );
    s.agent.finish_step(); // SUCCEEDED
    s.heartbeat().await;
    let node = s.wait_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active, "{node:#?}");
    assert_eq!(
        names(&s.agent.calls()),
        [
            "deploy.get_deploy_steps",
            "GET",
            "deploy.execute_deploy_step",
            "GET",
            "deploy.get_deploy_steps",
            "deploy.execute_deploy_step",
            "GET",
            "standby.get_partition_uuids",
            "standby.power_off"
        ]
    );
    let execs = s.agent.posts("deploy.execute_deploy_step");
    assert_eq!(
        execs[0].body.as_ref().unwrap()["params"]["deploy_version"],
        json!({"generic_hardware_manager": "1.2"})
    );
    assert_eq!(
        execs[1].body.as_ref().unwrap()["params"]["deploy_version"],
        json!({"generic_hardware_manager": "1.3"})
    );
}

#[tokio::test]
async fn busy_agent_is_retried_on_the_next_heartbeat() {
    let script = Script {
        busy_once: true,
        ..Script::default()
    };
    let s = Setup::new(script, whole_disk(BootMode::Bios)).await;
    s.heartbeat().await;
    s.wait("the busy answer", |n| {
        n.provision_state == ProvisionState::DeployWait
            && n.driver_internal_info.deploy_phase == Some(DeployPhase::StepRunning)
    })
    .await;
    assert!(s.shim.node("n1").await.last_error.is_none());
    s.heartbeat().await;
    s.wait_agent_step().await;
    s.agent.finish_step();
    s.heartbeat().await;
    assert_eq!(s.wait_end().await.provision_state, ProvisionState::Active);
    assert_eq!(s.agent.posts("deploy.execute_deploy_step").len(), 2);
}

#[tokio::test]
async fn a_restarted_shim_resumes_the_deploy() {
    let s = Setup::new(Script::default(), whole_disk(BootMode::Uefi)).await;
    s.heartbeat().await;
    s.wait_agent_step().await;
    s.agent.finish_step();
    // Another shim process on the same database takes the next heartbeat.
    let restarted = s.shim.restarted(config()).await;
    assert_eq!(s.heartbeat_to(&restarted).await, 202);
    let node = s.wait_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active, "{node:#?}");
    assert_eq!(s.agent.posts("standby.power_off").len(), 1);
}

#[tokio::test]
async fn a_deploy_interrupted_while_deploying_resumes_from_its_step() {
    // As if the shim died after write_image succeeded, inside prepare_instance_boot.
    let s = Setup::new(Script::default(), whole_disk(BootMode::Uefi)).await;
    s.heartbeat().await;
    s.wait_agent_step().await;
    s.agent.finish_step();
    s.shim
        .update("n1", |n| {
            n.provision_state = ProvisionState::Deploying;
            let dii = &mut n.driver_internal_info;
            dii.deploy_step_index = Some(1);
            dii.deploy_step = dii.deploy_steps.as_ref().unwrap().get(1).cloned();
            dii.deploy_phase = Some(DeployPhase::StepRunning);
        })
        .await;
    let restarted = s.shim.restarted(config()).await;
    assert_eq!(s.heartbeat_to(&restarted).await, 202);
    let node = s.wait_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active, "{node:#?}");
    assert_eq!(
        names(&s.agent.calls())[3..],
        [
            "standby.get_partition_uuids",
            "image.install_bootloader",
            "GET",
            "GET",
            "standby.power_off"
        ]
    );
}

#[tokio::test]
async fn a_shim_stopped_after_the_agent_accepted_write_image_does_not_send_it_again() {
    // As if the shim died after the agent accepted write_image, before the answer was
    // recorded: the node is still `deploying` in `step_running`.
    let s = Setup::new(Script::default(), whole_disk(BootMode::Bios)).await;
    s.heartbeat().await;
    s.wait_agent_step().await;
    s.shim
        .update("n1", |n| {
            n.provision_state = ProvisionState::Deploying;
            n.driver_internal_info.deploy_phase = Some(DeployPhase::StepRunning);
        })
        .await;
    let restarted = s.shim.restarted(config()).await;
    assert_eq!(s.heartbeat_to(&restarted).await, 202);
    let node = s.wait_agent_step().await;
    assert_eq!(
        node.driver_internal_info
            .deploy_progress
            .unwrap()
            .stage
            .as_deref(),
        Some("writing"),
        "the running step is followed as if its answer had arrived"
    );
    s.agent.finish_step();
    assert_eq!(s.heartbeat_to(&restarted).await, 202);
    let node = s.wait_end().await;
    assert_eq!(node.provision_state, ProvisionState::Active, "{node:#?}");
    assert_eq!(
        s.agent.posts("deploy.execute_deploy_step").len(),
        1,
        "write_image was sent twice"
    );
}

#[tokio::test]
async fn in_band_steps_with_priority_run_in_order() {
    let script = Script {
        extra_steps: vec![
            json!({"step": "burn_in", "priority": 90, "interface": "deploy", "reboot_requested": false, "argsinfo": null}),
        ],
        ..Script::default()
    };
    let s = Setup::new(script, whole_disk(BootMode::Bios)).await;
    s.heartbeat().await;
    let node = s.wait_agent_step().await;
    assert_eq!(
        node.driver_internal_info.deploy_step.unwrap().step,
        "burn_in"
    );
    s.agent.finish_step();
    s.heartbeat().await;
    s.wait("write_image sent", |n| {
        n.driver_internal_info.deploy_phase == Some(DeployPhase::AgentStep)
            && n.driver_internal_info
                .deploy_step
                .as_ref()
                .is_some_and(|st| st.step == "write_image")
    })
    .await;
    s.agent.finish_step();
    s.heartbeat().await;
    assert_eq!(s.wait_end().await.provision_state, ProvisionState::Active);
    let execs = s.agent.posts("deploy.execute_deploy_step");
    let first = &execs[0].body.as_ref().unwrap()["params"]["step"];
    assert_eq!(first["step"], "burn_in");
    assert_eq!(first["priority"], 90);
    assert_eq!(first["args"], json!({}));
    assert_eq!(
        execs[1].body.as_ref().unwrap()["params"]["step"]["step"],
        "write_image"
    );
}

#[tokio::test]
async fn deploys_are_refused_while_one_runs() {
    let s = Setup::new(Script::default(), whole_disk(BootMode::Uefi)).await;
    let err = s
        .shim
        .store
        .run(|st| request_deploy(st, "n1", &whole_disk(BootMode::Uefi)))
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::InProgress { .. }), "{err}");
    s.shim
        .update("n1", |n| {
            n.provision_state = ProvisionState::CleanWait;
            n.driver_internal_info.deploy_phase = None;
        })
        .await;
    let err = s
        .shim
        .store
        .run(|st| request_deploy(st, "n1", &whole_disk(BootMode::Uefi)))
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::WrongState { .. }), "{err}");
}

#[tokio::test]
async fn image_server_answers_range_requests() {
    let images = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 * 1024 + 17).collect();
    std::fs::write(images.path().join("disk.raw"), &data).unwrap();
    let shim = Shim::start(ServerConfig {
        images_dir: Some(images.path().to_path_buf()),
        ..config()
    })
    .await;

    let resp = http()
        .get(shim.url("/images/disk.raw"))
        .header("Range", "bytes=1048570-1048589")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 1048570-1048589/{}", data.len())
    );
    assert_eq!(resp.bytes().await.unwrap(), data[1048570..1048590]);

    // Resuming from an offset to the end, as the agent does after a dropped connection.
    let resp = http()
        .get(shim.url("/images/disk.raw"))
        .header("Range", "bytes=3145728-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), data[3145728..]);

    let resp = http()
        .get(shim.url("/images/disk.raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().await.unwrap(), data);

    let resp = http()
        .get(shim.url("/images/missing.raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http()
        .get(shim.url("/images/../shim.sqlite"))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 200);

    // Without --images there is no file server.
    let plain = Shim::start(config()).await;
    let resp = http()
        .get(plain.url("/images/disk.raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// Runs `conductor-shim deploy` (waiting) against the shim's database while the test drives
/// the heartbeats; returns (success, stdout, stderr).
async fn cli_deploy(script: Script, extra: &[&str]) -> (bool, String, String, Node) {
    let shim = Shim::start(config()).await;
    shim.create("n1", &[MAC], ProvisionState::Available).await;
    let token = shim.lookup_token(MAC).await;
    let agent = ScriptedAgent::start(script).await;
    let checksum = format!("sha256:{SHA}");
    let mut args = vec![
        "deploy",
        "n1",
        "--image",
        IMAGE,
        "--checksum",
        &checksum,
        "--timeout",
        "20",
    ];
    args.extend_from_slice(extra);
    let child = cli(&shim.db, &args).spawn().unwrap();
    let s = Setup { shim, agent, token };
    s.wait("the CLI's request", |n| {
        n.driver_internal_info.deploy_phase == Some(DeployPhase::Requested)
    })
    .await;
    s.heartbeat().await;
    s.wait_agent_step().await;
    // The CLI polls the agent itself while the step runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.agent.calls().iter().filter(|(n, _)| n == "GET").count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI never polled the agent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.agent.finish_step();
    s.heartbeat().await;
    let node = s.wait_end().await;
    let (ok, stdout, stderr) = finished(child).await;
    (ok, stdout, stderr, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_shows_progress_until_active() {
    let (ok, stdout, stderr, node) = cli_deploy(Script::default(), &["--boot-mode", "bios"]).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(node.provision_state, ProvisionState::Active);
    // stderr is not a terminal: plain lines, no carriage returns.
    assert!(!stderr.contains('\r'), "{stderr:?}");
    assert!(
        stderr.contains("wait call-back: waiting for the agent's heartbeat"),
        "{stderr}"
    );
    let bar_line = stderr
        .lines()
        .find(|l| l.contains("deploy.write_image running on the agent  ["))
        .unwrap_or_else(|| panic!("no progress bar line in {stderr}"));
    assert!(
        bar_line.contains(" 50%  2.0 MiB / 4.0 MiB  written 1.0 MiB  95.4 MiB/s  writing"),
        "{bar_line}"
    );
    assert_eq!(stderr.lines().last(), Some("active: done"), "{stderr}");
    assert!(stdout.contains("provision_state:"), "{stdout}");
    assert!(stdout.contains("active"), "{stdout}");
    assert!(stdout.contains("written to device /dev/vda"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_fails_with_the_agents_message() {
    let script = Script {
        outcome: Outcome::Fail("No space left on device"),
        ..Script::default()
    };
    let (ok, _, stderr, node) = cli_deploy(script, &[]).await;
    assert!(!ok, "{stderr}");
    assert_eq!(node.provision_state, ProvisionState::DeployFailed);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("error: deploy of node "), "{stderr}");
    assert!(last.contains("No space left on device"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_stores_the_request() {
    let shim = Shim::start(config()).await;
    shim.create("n1", &[MAC], ProvisionState::Manageable).await;
    let iso = shim.dir.path().join("config.iso");
    std::fs::write(&iso, b"CD001 config-2").unwrap();
    let db = shim.db.clone();
    let iso_arg = iso.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        cli(
            &db,
            &[
                "--json",
                "deploy",
                "n1",
                "--image",
                "http://127.0.0.1:6385/images/root.img.zst",
                "--checksum-url",
                "http://127.0.0.1:6385/images/SHA256SUMS",
                "--image-type",
                "partition",
                "--root-mb",
                "2048",
                "--swap-mb",
                "128",
                "--boot-mode",
                "bios",
                "--disk-label",
                "msdos",
                "--configdrive",
                &iso_arg,
                "--root-hint",
                "size=>= 10",
                "--root-hint",
                "serial=0042",
                "--no-wait",
            ],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["provision_state"], "wait call-back");
    assert_eq!(shown["driver_internal_info"]["deploy_phase"], "requested");
    assert_eq!(shown["driver_internal_info"]["is_whole_disk_image"], false);
    let info = &shown["instance_info"];
    assert_eq!(
        info["image_source"],
        "http://127.0.0.1:6385/images/root.img.zst"
    );
    assert_eq!(info["image_url"], info["image_source"]);
    assert_eq!(
        info["image_checksum"],
        "http://127.0.0.1:6385/images/SHA256SUMS"
    );
    assert!(
        info.get("image_disk_format").is_none(),
        "*.img says nothing"
    );
    assert_eq!(info["image_type"], "partition");
    assert_eq!(info["root_mb"], 2048);
    assert_eq!(info["swap_mb"], 128);
    assert_eq!(
        info["root_device"],
        json!({"size": ">= 10", "serial": "0042"})
    );
    assert_eq!(
        info["capabilities"],
        json!({"boot_mode": "bios", "disk_label": "msdos"})
    );
    let node = shim.node("n1").await;
    let stored = node.instance_info["configdrive"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .unwrap();
    let mut iso_bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut iso_bytes).unwrap();
    assert_eq!(iso_bytes, b"CD001 config-2");

    let db = shim.db.clone();
    let shown =
        tokio::task::spawn_blocking(move || cli(&db, &["node", "show", "n1"]).output().unwrap())
            .await
            .unwrap();
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(text.contains("deploy phase:"), "{text}");
    assert!(text.contains("requested"), "{text}");

    // Invalid requests are refused before anything is stored.
    let db = shim.db.clone();
    let out = tokio::task::spawn_blocking(move || {
        cli(
            &db,
            &["deploy", "n1", "--image", "http://h/img.raw", "--no-wait"],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum is required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_times_out() {
    let shim = Shim::start(config()).await;
    shim.create("n1", &[MAC], ProvisionState::Available).await;
    let db = shim.db.clone();
    let checksum = format!("sha256:{SHA}");
    let out = tokio::task::spawn_blocking(move || {
        cli(
            &db,
            &[
                "deploy",
                "n1",
                "--image",
                IMAGE,
                "--checksum",
                &checksum,
                "--timeout",
                "1",
            ],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out after 1 s"), "{stderr}");
    assert!(stderr.contains("phase requested"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_images_flag_serves_ranges() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("a.raw"), b"0123456789abcdef").unwrap();
    let images_arg = images.display().to_string();
    let mut child = cli(
        &dir.path().join("shim.sqlite"),
        &["serve", "--listen", "127.0.0.1:0", "--images", &images_arg],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut first = String::new();
        let mut second = String::new();
        reader.read_line(&mut first).unwrap();
        reader.read_line(&mut second).unwrap();
        (first, second)
    })
    .await
    .unwrap();
    let url = lines
        .0
        .trim()
        .strip_prefix("conductor-shim listening on ")
        .unwrap()
        .to_string();
    assert!(lines.1.contains(&format!("at {url}/images/")), "{lines:?}");
    let resp = http()
        .get(format!("{url}/images/a.raw"))
        .header("Range", "bytes=4-7")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 206);
    assert_eq!(&body[..], b"4567");

    let out = cli(
        &dir.path().join("shim.sqlite"),
        &["serve", "--images", "/nonexistent/dir"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}
