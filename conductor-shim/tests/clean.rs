//! Cleaning driven by heartbeats against a scripted stand-in agent: automated cleaning in
//! priority order with Ironic's params (as Ironic 39 does it),
//! failures with the agent's message, version-mismatch restarts, manual cleaning with
//! arguments and RAID configurations, unknown steps, and the `clean` / `node provide` CLI.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{
    FakeAgent, Recorded, Shim, accept, agent_fault, cli, command, command_list, finished,
    other_command, plain_config, sorted_keys,
};
use conductor_shim::api::ServerConfig;
use conductor_shim::clean::request::{NodeUpdate, request_clean, request_provide, update};
use conductor_shim::clean::{CleanOptions, PriorityOverrides};
use conductor_shim::model::{CleanPhase, Node, PowerState, RequestedStep};
use conductor_shim::state::ProvisionState;
use serde_json::{Value, json};

const MAC: &str = "02:fc:00:00:00:01";

/// How a step ends on the scripted agent.
#[derive(Debug, Clone)]
enum Outcome {
    Succeed(Value),
    Fail(&'static str),
}

#[derive(Debug, Clone, Default)]
struct Script {
    /// Extra steps offered besides the generic ones.
    extra_steps: Vec<Value>,
    /// Per step name (default: success with a null `clean_result`).
    outcomes: HashMap<&'static str, Outcome>,
    /// The agent's hardware managers change when this step is first sent.
    upgrade_on: Option<&'static str>,
    /// ... every time it is sent.
    upgrade_always: bool,
    /// The first execute_clean_step is answered 409.
    busy_once: bool,
}

#[derive(Debug, Default)]
struct Model {
    commands: Vec<Value>,
    version: u32,
    polls: u32,
    upgraded: bool,
    busy_done: bool,
}

struct ScriptedAgent {
    fake: FakeAgent,
}

fn generic_steps() -> Vec<Value> {
    vec![
        json!({"step": "erase_devices", "priority": 10, "interface": "deploy", "reboot_requested": false, "abortable": true}),
        json!({"step": "erase_devices_metadata", "priority": 99, "interface": "deploy", "reboot_requested": false, "abortable": true}),
        json!({"step": "erase_devices_express", "priority": 0, "interface": "deploy", "reboot_requested": false, "abortable": true}),
        json!({"step": "clean_uefi_nvram", "priority": 0, "interface": "deploy", "reboot_requested": false, "abortable": true,
               "argsinfo": {"match_patterns": {"description": "patterns of entries to delete", "required": false}}}),
        json!({"step": "delete_configuration", "priority": 0, "interface": "raid", "reboot_requested": false, "abortable": true}),
        json!({"step": "create_configuration", "priority": 0, "interface": "raid", "reboot_requested": false, "abortable": true}),
    ]
}

fn versions(v: u32) -> Value {
    json!({"generic_hardware_manager": format!("1.{v}")})
}

fn respond(model: &Mutex<Model>, script: &Script, req: &Recorded) -> (StatusCode, String) {
    let mut m = model.lock().unwrap();
    if req.method == Method::GET {
        // A running step reports progress on the first poll and ends on the second.
        if let Some(last) = m.commands.last().cloned()
            && last["command_name"] == "execute_clean_step"
            && last["command_status"] == "RUNNING"
        {
            m.polls += 1;
            let step = last["__step"].clone();
            let name = step["step"].as_str().unwrap().to_string();
            let sent_version = last["__version"].clone();
            let done = if m.polls == 1 {
                let mut r = command(
                    "execute_clean_step",
                    "RUNNING",
                    Value::Null,
                    json!({"progress": {"stage": "wiping", "bytes_written": 1024, "total_bytes": 4096}}),
                );
                r["__step"] = step;
                r["__version"] = sent_version;
                r
            } else if sent_version != versions(m.version) {
                command(
                    "execute_clean_step",
                    "CLEAN_VERSION_MISMATCH",
                    json!({"type": "VersionMismatch", "code": 409,
                           "message": "Hardware managers version mismatch, reload agent with correct version",
                           "details": format!("Current versions: {}, versions used by ironic: {sent_version}", versions(m.version))}),
                    Value::Null,
                )
            } else {
                match script.outcomes.get(name.as_str()) {
                    Some(Outcome::Fail(details)) => command(
                        "execute_clean_step",
                        "FAILED",
                        json!({"type": "BlockDeviceEraseError", "code": 500,
                               "message": "Clean step failed", "details": details}),
                        Value::Null,
                    ),
                    Some(Outcome::Succeed(value)) => command(
                        "execute_clean_step",
                        "SUCCEEDED",
                        Value::Null,
                        json!({"clean_result": value, "clean_step": step}),
                    ),
                    None => command(
                        "execute_clean_step",
                        "SUCCEEDED",
                        Value::Null,
                        json!({"clean_result": null, "clean_step": step}),
                    ),
                }
            };
            *m.commands.last_mut().unwrap() = done;
        }
        return command_list(&m.commands);
    }
    let body = req.body.clone().unwrap();
    let params = &body["params"];
    let entry = match body["name"].as_str().unwrap() {
        "clean.get_clean_steps" => {
            let mut steps = generic_steps();
            steps.extend(script.extra_steps.iter().cloned());
            command(
                "get_clean_steps",
                "SUCCEEDED",
                Value::Null,
                json!({"clean_steps": {"GenericHardwareManager": steps},
                       "hardware_manager_version": versions(m.version)}),
            )
        }
        "clean.execute_clean_step" => {
            if script.busy_once && !m.busy_done {
                m.busy_done = true;
                return agent_fault(
                    StatusCode::CONFLICT,
                    "Agent is busy: executing command get_clean_steps",
                );
            }
            let name = params["step"]["step"].as_str().unwrap();
            if script.upgrade_on == Some(name) && (script.upgrade_always || !m.upgraded) {
                m.upgraded = true;
                m.version += 1;
            }
            m.polls = 0;
            let mut r = command("execute_clean_step", "RUNNING", Value::Null, Value::Null);
            r["__step"] = params["step"].clone();
            r["__version"] = params["clean_version"].clone();
            r
        }
        other => return other_command(&mut m.commands, other),
    };
    accept(&mut m.commands, entry)
}

impl ScriptedAgent {
    async fn start(script: Script) -> ScriptedAgent {
        let model = Arc::new(Mutex::new(Model {
            version: 2,
            ..Model::default()
        }));
        let fake = FakeAgent::start(move |req| respond(&model, &script, req)).await;
        ScriptedAgent { fake }
    }

    /// Names of the POSTed commands, in order.
    fn posted(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|r| {
                r.body.as_ref().unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn posts(&self) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::POST)
            .collect()
    }

    /// The params of every `clean.execute_clean_step`.
    fn executed(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .map(|r| r.body.unwrap())
            .filter(|b| b["name"] == "clean.execute_clean_step")
            .map(|b| b["params"].clone())
            .collect()
    }

    /// `interface.step` of every executed step.
    fn executed_steps(&self) -> Vec<String> {
        self.executed()
            .iter()
            .map(|p| {
                format!(
                    "{}.{}",
                    p["step"]["interface"].as_str().unwrap(),
                    p["step"]["step"].as_str().unwrap()
                )
            })
            .collect()
    }
}

struct Setup {
    shim: Shim,
    agent: ScriptedAgent,
    token: String,
}

impl Setup {
    async fn new(config: ServerConfig, script: Script) -> Setup {
        let shim = Shim::start(config).await;
        shim.create("n1", &[MAC], ProvisionState::Manageable).await;
        let token = shim.lookup_token(MAC).await;
        let agent = ScriptedAgent::start(script).await;
        Setup { shim, agent, token }
    }

    /// A new shim process on the same database takes over from this one, which is returned
    /// (still running until dropped).
    async fn with_restarted_shim(self) -> (Setup, Shim) {
        let Setup {
            shim: old,
            agent,
            token,
        } = self;
        let s = Setup {
            shim: old.restarted(plain_config()).await,
            agent,
            token,
        };
        (s, old)
    }

    async fn heartbeat(&self) -> u16 {
        let url = &self.agent.fake.url;
        self.shim.heartbeat("n1", url, &self.token).await
    }

    async fn node(&self) -> Node {
        self.shim.node("n1").await
    }

    async fn wait(&self, what: &str, check: impl Fn(&Node) -> bool) -> Node {
        self.shim.wait_for("n1", what, check).await
    }

    /// Heartbeats (as an agent does) until `check` holds.
    async fn beat_until(&self, what: &str, check: impl Fn(&Node) -> bool) -> Node {
        self.beat_every(Duration::from_millis(60), what, check)
            .await
    }

    /// Heartbeats every `interval` until `check` holds.
    async fn beat_every(
        &self,
        interval: Duration,
        what: &str,
        check: impl Fn(&Node) -> bool,
    ) -> Node {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let node = self.node().await;
            if check(&node) {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {node:#?}"
            );
            assert_eq!(self.heartbeat().await, 202);
            tokio::time::sleep(interval).await;
        }
    }

    async fn run_to_end(&self) -> Node {
        self.beat_until("the end of cleaning", |n| {
            !matches!(
                n.provision_state,
                ProvisionState::Cleaning | ProvisionState::CleanWait
            )
        })
        .await
    }

    /// Runs cleaning to its end, which must be `clean failed`; returns `last_error`.
    async fn run_to_failure(&self) -> String {
        let node = self.run_to_end().await;
        assert_eq!(
            node.provision_state,
            ProvisionState::CleanFailed,
            "{node:#?}"
        );
        node.last_error.unwrap()
    }

    async fn provide(&self) -> Node {
        self.shim
            .store
            .run(|s| request_provide(s, "n1"))
            .await
            .unwrap()
    }

    async fn clean(&self, steps: &[&str]) -> Node {
        let steps: Vec<RequestedStep> = steps.iter().map(|s| s.parse().unwrap()).collect();
        self.shim
            .store
            .run(move |s| request_clean(s, "n1", &steps))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn automated_cleaning_runs_steps_in_priority_order() {
    let s = Setup::new(plain_config(), Script::default()).await;
    let node = s.provide().await;
    assert_eq!(node.provision_state, ProvisionState::CleanWait);
    assert_eq!(node.target_provision_state, Some(ProvisionState::Available));

    // Heartbeat 1: steps fetched, the first step (priority 99) sent; the node waits.
    assert_eq!(s.heartbeat().await, 202);
    let node = s
        .wait("the first step", |n| {
            n.driver_internal_info.clean_phase == Some(CleanPhase::AgentStep)
        })
        .await;
    assert_eq!(node.provision_state, ProvisionState::CleanWait);
    assert_eq!(node.power_state, Some(PowerState::On));
    assert_eq!(
        node.clean_step.as_ref().unwrap().step,
        "erase_devices_metadata"
    );
    let dii = &node.driver_internal_info;
    assert_eq!(dii.clean_step_index, Some(0));
    let planned: Vec<(&str, i64)> = dii
        .clean_steps
        .as_ref()
        .unwrap()
        .iter()
        .map(|st| (st.step.as_str(), st.priority))
        .collect();
    assert_eq!(
        planned,
        [("erase_devices_metadata", 99), ("erase_devices", 10)]
    );
    assert_eq!(
        dii.hardware_manager_version.as_ref().unwrap()["generic_hardware_manager"],
        "1.2"
    );
    assert_eq!(
        s.agent.posted(),
        ["clean.get_clean_steps", "clean.execute_clean_step"]
    );

    // Heartbeat 2: still running; the agent's progress is kept.
    assert_eq!(s.heartbeat().await, 202);
    let node = s
        .wait("progress", |n| {
            n.driver_internal_info.clean_progress.is_some()
        })
        .await;
    let progress = node.driver_internal_info.clean_progress.unwrap();
    assert_eq!(progress.stage.as_deref(), Some("wiping"));
    assert_eq!(progress.total_bytes, Some(4096));

    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Available, "{node:#?}");
    assert!(node.last_error.is_none());
    assert!(node.clean_step.is_none() && node.target_provision_state.is_none());
    let dii = &node.driver_internal_info;
    assert_eq!(dii.clean_phase, Some(CleanPhase::Done));
    assert!(dii.clean_steps.is_none() && dii.clean_step_index.is_none());
    assert!(dii.agent_cached_clean_steps.is_none());
    // Fast-track (the default): the agent keeps running with its session.
    assert!(dii.agent_secret_token.is_some() && dii.agent_url.is_some());
    assert_eq!(
        s.agent.posted(),
        [
            "clean.get_clean_steps",
            "clean.execute_clean_step",
            "clean.execute_clean_step"
        ]
    );
    assert_eq!(
        s.agent.executed_steps(),
        ["deploy.erase_devices_metadata", "deploy.erase_devices"]
    );
    for r in s.agent.fake.requests() {
        assert_eq!(r.query["agent_token"], s.token);
    }

    // The params of Ironic 39's trace.
    let get = &s.agent.posts()[0];
    assert_eq!(get.query["wait"], "true");
    let params = &get.body.as_ref().unwrap()["params"];
    assert_eq!(params["node"]["provision_state"], "cleaning");
    assert_eq!(params["node"]["target_provision_state"], "available");
    assert_eq!(params["ports"][0]["address"], MAC);
    let exec = &s.agent.executed()[0];
    assert_eq!(s.agent.posts()[1].query["wait"], "false");
    assert_eq!(
        sorted_keys(exec),
        ["clean_version", "node", "ports", "step"]
    );
    assert_eq!(
        exec["step"],
        json!({"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
               "reboot_requested": false, "abortable": true, "requires_ramdisk": true})
    );
    assert_eq!(
        exec["clean_version"],
        json!({"generic_hardware_manager": "1.2"})
    );
    assert_eq!(exec["node"]["provision_state"], "cleaning");
    assert_eq!(exec["node"]["target_provision_state"], "available");
    let node_dii = &exec["node"]["driver_internal_info"];
    assert_eq!(node_dii["agent_secret_token"], "******");
    assert_eq!(node_dii["agent_erase_devices_iterations"], 1);
    assert_eq!(node_dii["agent_erase_devices_zeroize"], true);
    assert_eq!(node_dii["disk_erasure_concurrency"], 4);
    assert_eq!(exec["ports"][0]["address"], MAC);
}

#[tokio::test]
async fn without_fast_track_the_agent_is_powered_off() {
    let cfg = ServerConfig {
        fast_track: false,
        ..plain_config()
    };
    // Without fast-track a manageable node cannot look up: cleaning is requested first.
    let shim = Shim::start(cfg).await;
    shim.create("n1", &[MAC], ProvisionState::Manageable).await;
    shim.store
        .run(|st| request_provide(st, "n1"))
        .await
        .unwrap();
    let token = shim.lookup_token(MAC).await;
    let agent = ScriptedAgent::start(Script::default()).await;
    let s = Setup { shim, agent, token };
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Available, "{node:#?}");
    assert_eq!(node.power_state, Some(PowerState::Off));
    assert!(node.driver_internal_info.agent_secret_token.is_none());
    assert_eq!(s.agent.posted().last().unwrap(), "standby.power_off");
    // The token is gone: the agent's next heartbeat is refused.
    assert_eq!(s.heartbeat().await, 400);
}

#[tokio::test]
async fn a_failed_step_fails_cleaning_with_the_agents_message() {
    let script = Script {
        outcomes: HashMap::from([(
            "erase_devices_metadata",
            Outcome::Fail("Error erasing block device: wipefs failed on /dev/vdb"),
        )]),
        ..Script::default()
    };
    let s = Setup::new(plain_config(), script).await;
    let node = s.provide().await;
    let end = s.run_to_end().await;
    assert_eq!(end.provision_state, ProvisionState::CleanFailed);
    assert_eq!(
        end.last_error.as_deref(),
        Some(
            format!(
                "Clean step deploy.erase_devices_metadata failed on node {}. Error erasing \
                 block device: wipefs failed on /dev/vdb",
                node.uuid
            )
            .as_str()
        )
    );
    assert!(end.clean_step.is_none());
    assert_eq!(
        end.driver_internal_info.clean_phase,
        Some(CleanPhase::Failed)
    );
    assert_eq!(
        s.agent.executed_steps(),
        ["deploy.erase_devices_metadata"],
        "nothing runs after a failure"
    );
    // The agent session stays, so the node can be cleaned again.
    assert!(end.driver_internal_info.agent_url.is_some());
}

#[tokio::test]
async fn version_mismatch_restarts_automated_cleaning_with_fresh_steps() {
    let script = Script {
        upgrade_on: Some("erase_devices"),
        ..Script::default()
    };
    let s = Setup::new(plain_config(), script).await;
    s.provide().await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Available, "{node:#?}");
    assert_eq!(
        s.agent.posted(),
        [
            "clean.get_clean_steps",
            "clean.execute_clean_step",
            "clean.execute_clean_step",
            "clean.get_clean_steps",
            "clean.execute_clean_step",
            "clean.execute_clean_step",
        ]
    );
    assert_eq!(
        s.agent.executed_steps(),
        [
            "deploy.erase_devices_metadata",
            "deploy.erase_devices",
            "deploy.erase_devices_metadata",
            "deploy.erase_devices"
        ],
        "automated cleaning starts again from its first step"
    );
    let versions: Vec<Value> = s
        .agent
        .executed()
        .iter()
        .map(|p| p["clean_version"]["generic_hardware_manager"].clone())
        .collect();
    assert_eq!(versions, ["1.2", "1.2", "1.3", "1.3"]);
}

#[tokio::test]
async fn version_mismatch_reruns_the_manual_step_and_restarts_are_bounded() {
    let script = Script {
        upgrade_on: Some("erase_devices"),
        ..Script::default()
    };
    let s = Setup::new(plain_config(), script).await;
    s.clean(&["erase_devices_metadata", "erase_devices"]).await;
    let node = s.run_to_end().await;
    assert_eq!(
        node.provision_state,
        ProvisionState::Manageable,
        "{node:#?}"
    );
    assert_eq!(
        s.agent.executed_steps(),
        [
            "deploy.erase_devices_metadata",
            "deploy.erase_devices",
            "deploy.erase_devices"
        ],
        "manual cleaning runs the current step again"
    );

    let cfg = ServerConfig {
        clean: CleanOptions {
            max_restarts: 2,
            ..CleanOptions::default()
        },
        ..plain_config()
    };
    let script = Script {
        upgrade_on: Some("erase_devices_metadata"),
        upgrade_always: true,
        ..Script::default()
    };
    let s = Setup::new(cfg, script).await;
    s.provide().await;
    let error = s.run_to_failure().await;
    assert!(
        error.contains("stopped after 2 restarts for hardware manager version mismatches"),
        "{error}"
    );
    assert_eq!(s.agent.executed().len(), 3);
}

#[tokio::test]
async fn manual_cleaning_sends_args_and_stores_the_raid_config() {
    let built = json!({"logical_disks": [
        {"size_gb": 10, "raid_level": "1", "is_root_volume": true, "controller": "software",
         "root_device_hint": {"name": "/dev/md0"}},
        {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]});
    let script = Script {
        outcomes: HashMap::from([("create_configuration", Outcome::Succeed(built.clone()))]),
        ..Script::default()
    };
    let s = Setup::new(plain_config(), script).await;
    let target = json!({"logical_disks": [
        {"size_gb": 10, "raid_level": "1", "is_root_volume": true, "controller": "software"},
        {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]});
    s.shim
        .store
        .run({
            let target = target.clone();
            move |st| {
                update(
                    st,
                    "n1",
                    NodeUpdate {
                        target_raid_config: Some(target),
                        ..Default::default()
                    },
                )
            }
        })
        .await
        .unwrap();
    let node = s
        .clean(&[
            "raid.delete_configuration",
            "clean_uefi_nvram:match_patterns=[\"^HD\\\\(\", \"shim.*\"]",
            // Without an interface: the agent's step of that name (on raid).
            "create_configuration",
        ])
        .await;
    assert_eq!(
        node.target_provision_state,
        Some(ProvisionState::Manageable)
    );
    let node = s.run_to_end().await;
    assert_eq!(
        node.provision_state,
        ProvisionState::Manageable,
        "{node:#?}"
    );
    assert!(node.last_error.is_none());
    assert_eq!(
        s.agent.executed_steps(),
        [
            "raid.delete_configuration",
            "deploy.clean_uefi_nvram",
            "raid.create_configuration"
        ],
        "manual steps run in the given order"
    );
    let execs = s.agent.executed();
    assert_eq!(
        execs[0]["step"],
        json!({"interface": "raid", "step": "delete_configuration", "priority": 0, "abortable": true})
    );
    assert_eq!(
        execs[1]["step"],
        json!({"interface": "deploy", "step": "clean_uefi_nvram", "priority": 0, "abortable": true,
               "args": {"match_patterns": ["^HD\\(", "shim.*"]}})
    );
    assert_eq!(execs[1]["node"]["target_provision_state"], "manageable");
    let create = &execs[2];
    assert_eq!(
        create["step"],
        json!({"interface": "raid", "step": "create_configuration", "priority": 0, "abortable": true})
    );
    assert_eq!(create["node"]["target_raid_config"], target);
    assert_eq!(
        create["node"]["driver_internal_info"]["target_raid_config"],
        target
    );
    // Post-step hook: clean_result becomes raid_config; the root volume updates properties.
    assert_eq!(node.raid_config["logical_disks"], built["logical_disks"]);
    assert!(node.raid_config.contains_key("last_updated"));
    assert_eq!(node.properties["local_gb"], json!(10));
    assert_eq!(node.properties["root_device"], json!({"name": "/dev/md0"}));
    assert_eq!(node.properties["capabilities"], json!("raid_level:1"));
}

#[tokio::test]
async fn create_configuration_needs_a_result_and_a_target() {
    // No target_raid_config: fails before the agent is asked.
    let s = Setup::new(plain_config(), Script::default()).await;
    s.clean(&["raid.create_configuration"]).await;
    let error = s.run_to_failure().await;
    assert!(
        error.contains("failed step raid.create_configuration")
            && error.contains("has no target RAID configuration"),
        "{error}"
    );
    assert!(s.agent.executed().is_empty());

    // An empty clean_result: the post-step hook fails.
    let s = Setup::new(plain_config(), Script::default()).await;
    s.shim
        .update("n1", |n| {
            n.target_raid_config =
                json!({"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}]})
                    .as_object()
                    .unwrap()
                    .clone();
        })
        .await;
    s.clean(&["raid.create_configuration"]).await;
    let error = s.run_to_failure().await;
    assert!(
        error.contains("post clean step hook _create_configuration_final failed")
            && error.contains("didn't return a proper command result"),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_manual_steps_fail_before_anything_runs() {
    let s = Setup::new(plain_config(), Script::default()).await;
    let node = s
        .clean(&["erase_devices_metadata", "deploy.frobnicate"])
        .await;
    let end = s.run_to_end().await;
    assert_eq!(end.provision_state, ProvisionState::CleanFailed);
    let error = end.last_error.unwrap();
    assert!(
        error.starts_with(
            "Node failed to start the first cleaning step: node does not support this clean \
             step: {\"interface\":\"deploy\",\"step\":\"frobnicate\"}"
        ),
        "{error}"
    );
    assert!(error.contains("deploy.erase_devices_metadata"), "{error}");
    assert_eq!(s.agent.posted(), ["clean.get_clean_steps"]);
    assert_eq!(end.uuid, node.uuid);
    // Unexpected arguments are refused the same way.
    s.shim
        .update("n1", |n| n.provision_state = ProvisionState::Manageable)
        .await;
    s.clean(&["erase_devices_metadata:force=true"]).await;
    let error = s.run_to_failure().await;
    assert!(
        error.contains("has these unexpected arguments: force"),
        "{error}"
    );
    assert!(s.agent.executed().is_empty());
}

#[tokio::test]
async fn overrides_pick_the_steps_and_no_steps_means_available() {
    let cfg = ServerConfig {
        clean: CleanOptions {
            priorities: PriorityOverrides {
                erase_devices: Some(0),
                erase_devices_metadata: Some(0),
                ..Default::default()
            },
            ..CleanOptions::default()
        },
        ..plain_config()
    };
    let s = Setup::new(cfg, Script::default()).await;
    s.provide().await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Available);
    assert_eq!(s.agent.posted(), ["clean.get_clean_steps"]);

    let cfg = ServerConfig {
        clean: CleanOptions {
            priorities: PriorityOverrides {
                erase_devices: Some(0),
                steps: [("raid.delete_configuration".to_string(), 100)].into(),
                ..Default::default()
            },
            ..CleanOptions::default()
        },
        ..plain_config()
    };
    let s = Setup::new(cfg, Script::default()).await;
    s.provide().await;
    s.run_to_end().await;
    assert_eq!(
        s.agent.executed_steps(),
        ["raid.delete_configuration", "deploy.erase_devices_metadata"]
    );
    assert_eq!(s.agent.executed()[0]["step"]["priority"], 100);
}

#[tokio::test]
async fn a_busy_agent_is_retried_and_a_restarted_shim_resumes() {
    let script = Script {
        busy_once: true,
        ..Script::default()
    };
    let s = Setup::new(plain_config(), script).await;
    s.provide().await;
    assert_eq!(s.heartbeat().await, 202);
    // 409 on the first execute_clean_step: back to clean wait, the step is sent again later.
    let node = s
        .wait("the busy agent", |n| {
            n.provision_state == ProvisionState::CleanWait
                && n.driver_internal_info.clean_phase == Some(CleanPhase::StepRunning)
        })
        .await;
    assert_eq!(node.clean_step.unwrap().step, "erase_devices_metadata");
    // A new shim process on the same database takes over.
    let (s, old) = s.with_restarted_shim().await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Available, "{node:#?}");
    assert_eq!(
        s.agent.executed_steps(),
        [
            "deploy.erase_devices_metadata",
            "deploy.erase_devices_metadata",
            "deploy.erase_devices"
        ],
        "the step refused with 409 is sent again"
    );
    drop(old);
}

#[tokio::test]
async fn a_shim_stopped_after_the_agent_accepted_a_step_does_not_send_it_again() {
    let s = Setup::new(plain_config(), Script::default()).await;
    s.provide().await;
    assert_eq!(s.heartbeat().await, 202);
    s.wait("the first step on the agent", |n| {
        n.provision_state == ProvisionState::CleanWait
            && n.driver_internal_info.clean_phase == Some(CleanPhase::AgentStep)
    })
    .await;
    // As if the shim died after the agent accepted the step, before the answer was recorded.
    s.shim
        .update("n1", |n| {
            n.provision_state = ProvisionState::Cleaning;
            n.driver_internal_info.clean_phase = Some(CleanPhase::StepRunning);
        })
        .await;
    let (s, old) = s.with_restarted_shim().await;
    let node = s.run_to_end().await;
    assert_eq!(node.provision_state, ProvisionState::Available, "{node:#?}");
    assert_eq!(
        s.agent.executed_steps(),
        ["deploy.erase_devices_metadata", "deploy.erase_devices"],
        "a step the agent had was sent again"
    );
    drop(old);
}

async fn output(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = cli(db, args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The stdout of a CLI command that must succeed.
async fn ok_output(db: &std::path::Path, args: &[&str]) -> String {
    let out = output(db, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a waiting CLI command while the test heartbeats; returns (success, stdout, stderr).
async fn cli_following(s: &Setup, args: &[&str]) -> (bool, String, String) {
    let child = cli(&s.shim.db, args).spawn().unwrap();
    s.wait("the CLI's request", |n| {
        n.driver_internal_info.clean_phase == Some(CleanPhase::Requested)
    })
    .await;
    // Slow heartbeats, so that the CLI sees every step.
    s.beat_every(Duration::from_millis(400), "the end of cleaning", |n| {
        !matches!(
            n.provision_state,
            ProvisionState::Cleaning | ProvisionState::CleanWait
        )
    })
    .await;
    finished(child).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_provide_and_clean_follow_each_step() {
    let s = Setup::new(plain_config(), Script::default()).await;
    let (ok, stdout, stderr) =
        cli_following(&s, &["node", "provide", "n1", "--timeout", "30"]).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains('\r'), "{stderr:?}");
    assert!(
        stderr.contains("clean wait: deploy.erase_devices_metadata (1/2) running on the agent"),
        "{stderr}"
    );
    assert!(
        stderr.contains("clean wait: deploy.erase_devices (2/2) running on the agent"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().last(), Some("available: done"), "{stderr}");
    assert!(stdout.contains("available"), "{stdout}");

    // Back to manageable, then a manual clean with the CLI.
    let out = ok_output(&s.shim.db, &["--json", "node", "manage", "n1"]).await;
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["provision_state"], "manageable");
    let (ok, stdout, stderr) = cli_following(
        &s,
        &[
            "clean",
            "n1",
            "--step",
            "deploy.erase_devices_express",
            "--timeout",
            "30",
        ],
    )
    .await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stderr.lines().last(), Some("manageable: done"), "{stderr}");
    assert_eq!(
        s.agent.executed_steps().last().unwrap(),
        "deploy.erase_devices_express"
    );

    // A failing manual clean exits non-zero with last_error.
    let (ok, _, stderr) = cli_following(
        &s,
        &[
            "clean",
            "n1",
            "--step",
            "erase_devices_metadata",
            "--step",
            "nope",
            "--timeout",
            "30",
        ],
    )
    .await;
    assert!(!ok, "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("error: cleaning of node "), "{stderr}");
    assert!(
        last.contains("node does not support this clean step"),
        "{stderr}"
    );
    let out = output(&s.shim.db, &["node", "show", "n1"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("clean failed"), "{text}");
    assert!(text.contains("clean phase:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refuses_bad_input_and_changes_nothing() {
    let s = Setup::new(plain_config(), Script::default()).await;
    let before = s.node().await;
    for (args, expected) in [
        (
            vec!["clean", "n1", "--step", "erase_devices:force"],
            "is not KEY=VALUE",
        ),
        (
            vec!["clean", "n1", "--step", "bogus.step"],
            "unknown interface",
        ),
        (vec!["clean", "n1"], "--step"),
        (
            vec!["clean", "missing", "--step", "erase_devices"],
            "node missing not found",
        ),
        (vec!["node", "provide", "missing"], "node missing not found"),
        (
            vec![
                "node",
                "set",
                "n1",
                "--target-raid-config",
                "{\"logical_disks\": 3}",
            ],
            "logical_disks",
        ),
        (
            vec!["node", "set", "n1", "--target-raid-config", "{"],
            "not valid JSON",
        ),
        (vec!["node", "set", "n1"], "nothing to set"),
        (vec!["node", "manage", "n1"], "\"manage\""),
    ] {
        let out = output(&s.shim.db, &args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    s.shim
        .update("n1", |n| n.provision_state = ProvisionState::Available)
        .await;
    for args in [
        vec!["node", "provide", "n1"],
        vec!["clean", "n1", "--step", "erase_devices"],
    ] {
        let out = output(&s.shim.db, &args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("while it is in state \"available\""),
            "{args:?}: {stderr}"
        );
    }
    let after = s.node().await;
    assert_eq!(after.driver_internal_info, before.driver_internal_info);
    assert_eq!(after.target_raid_config, before.target_raid_config);
    assert!(after.driver_internal_info.clean_phase.is_none());

    // node set, show and --no-wait.
    s.shim
        .update("n1", |n| n.provision_state = ProvisionState::Manageable)
        .await;
    let out = ok_output(
        &s.shim.db,
        &[
            "--json",
            "node",
            "set",
            "n1",
            "--target-raid-config",
            "{\"logical_disks\": [{\"size_gb\": \"MAX\", \"raid_level\": \"1\"}]}",
            "--property",
            "cpus=4",
        ],
    )
    .await;
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["target_raid_config"]["logical_disks"][0]["raid_level"],
        "1"
    );
    assert_eq!(shown["properties"]["cpus"], 4);
    let text = ok_output(
        &s.shim.db,
        &[
            "clean",
            "n1",
            "--step",
            "raid.create_configuration",
            "--no-wait",
        ],
    )
    .await;
    assert!(text.contains("Manual cleaning of node"), "{text}");
    let out = output(&s.shim.db, &["node", "show", "n1"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("target_provision_state:"), "{text}");
    assert!(text.contains("requested clean steps:"), "{text}");
    assert!(text.contains("raid.create_configuration"), "{text}");
    assert!(text.contains("target_raid_config:"), "{text}");
}
