//! The agent client against a local stand-in agent, and the heartbeat-driven step caching.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{FakeAgent, Shim, http, plain_config, result_json, self_signed};
use conductor_shim::agent_client::{
    AgentClient, AgentClientError, AgentClientOptions, CommandStatus, TlsMinVersion,
};
use conductor_shim::state::ProvisionState;
use serde_json::{Value, json};

const MAC: &str = "02:fc:00:00:00:01";

fn quick() -> AgentClientOptions {
    AgentClientOptions {
        timeout: Duration::from_secs(5),
        tls_min: TlsMinVersion::Tls13,
        max_attempts: 2,
    }
}

#[tokio::test]
async fn executes_commands_and_lists_them() {
    let agent = FakeAgent::start(|req| match req.method {
        Method::POST => (
            StatusCode::OK,
            result_json(
                "get_hardware_info",
                "SUCCEEDED",
                json!({"cpu": {"count": 2}}),
            ),
        ),
        _ => (
            StatusCode::OK,
            format!(
                "{{\"commands\": [{}]}}",
                result_json("get_hardware_info", "SUCCEEDED", Value::Null)
            ),
        ),
    })
    .await;
    let client = AgentClient::new(&agent.url, Some("tok/en+="), None, &quick()).unwrap();
    let result = client
        .execute("poll.get_hardware_info", &json!({}), true)
        .await
        .unwrap();
    assert_eq!(result.command_name, "get_hardware_info");
    assert_eq!(result.command_status, CommandStatus::Succeeded);
    assert_eq!(result.command_result.unwrap()["cpu"]["count"], 2);
    let commands = client.commands().await.unwrap();
    assert_eq!(commands.len(), 1);

    let requests = agent.requests();
    assert_eq!(requests.len(), 2);
    let post = &requests[0];
    assert_eq!(post.path, "/v1/commands/");
    assert_eq!(post.query["wait"], "true");
    assert_eq!(post.query["agent_token"], "tok/en+=");
    assert_eq!(
        post.body.as_ref().unwrap(),
        &json!({"name": "poll.get_hardware_info", "params": {}})
    );
    assert_eq!(requests[1].method, Method::GET);
    assert_eq!(requests[1].query.get("wait"), None);
    assert_eq!(requests[1].query["agent_token"], "tok/en+=");
}

#[tokio::test]
async fn busy_agents_are_in_progress() {
    let agent = FakeAgent::start(|req| {
        if req.body.as_ref().unwrap()["name"] == "standby.sync" {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"faultcode": "Server", "faultstring": "Agent is busy: executing command x"})
                    .to_string(),
            )
        } else {
            (
                StatusCode::CONFLICT,
                json!({"faultcode": "Client", "faultstring": "Agent is busy: executing command execute_deploy_step"})
                    .to_string(),
            )
        }
    })
    .await;
    let client = AgentClient::new(&agent.url, Some("t"), None, &quick()).unwrap();
    let err = client
        .execute("standby.power_off", &json!({}), false)
        .await
        .unwrap_err();
    assert!(err.is_in_progress(), "{err}");
    assert_eq!(
        err.faultstring(),
        Some("Agent is busy: executing command execute_deploy_step")
    );
    let err = client
        .execute("standby.sync", &json!({}), true)
        .await
        .unwrap_err();
    assert!(err.is_in_progress(), "{err}");
}

#[tokio::test]
async fn api_errors_carry_the_faultstring() {
    let agent = FakeAgent::start(|_| {
        (
            StatusCode::UNAUTHORIZED,
            json!({"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."})
                .to_string(),
        )
    })
    .await;
    let client = AgentClient::new(&agent.url, Some("wrong"), None, &quick()).unwrap();
    match client
        .execute("poll.get_hardware_info", &json!({}), true)
        .await
    {
        Err(AgentClientError::AgentApi {
            status,
            faultstring,
        }) => {
            assert_eq!(status, 401);
            assert_eq!(faultstring, "401 Unauthorized: Token invalid.");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        client.commands().await,
        Err(AgentClientError::AgentApi { status: 401, .. })
    ));
}

#[tokio::test]
async fn non_json_answers_are_errors() {
    let agent = FakeAgent::start(|_| (StatusCode::OK, "<html>hi</html>".to_string())).await;
    let client = AgentClient::new(&agent.url, None, None, &quick()).unwrap();
    let err = client
        .execute("poll.get_hardware_info", &json!({}), true)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentClientError::InvalidResponse(_)), "{err}");
}

#[tokio::test]
async fn unreachable_agents_are_connection_errors() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = AgentClient::new(
        &format!("http://127.0.0.1:{port}"),
        Some("very-secret-token"),
        None,
        &quick(),
    )
    .unwrap();
    let err = client
        .execute("standby.power_off", &json!({}), false)
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    // The token never appears in error texts (they end up in last_error and logs).
    assert!(!err.to_string().contains("very-secret-token"), "{err}");
    let err = client.commands().await.unwrap_err();
    assert!(!err.to_string().contains("very-secret-token"), "{err}");
}

#[tokio::test]
async fn connection_failure_recovers_a_running_command() {
    // The agent receives the POST but answers too late (the client times out); the
    // following GET shows the command RUNNING, so that result is used, as Ironic does.
    let agent = FakeAgent::start_slow_posts(Duration::from_millis(1500), |req| match req.method {
        Method::POST => (
            StatusCode::OK,
            result_json("execute_deploy_step", "RUNNING", Value::Null),
        ),
        _ => (
            StatusCode::OK,
            format!(
                "{{\"commands\": [{}]}}",
                result_json("execute_deploy_step", "RUNNING", Value::Null)
            ),
        ),
    })
    .await;
    let options = AgentClientOptions {
        timeout: Duration::from_millis(500),
        ..quick()
    };
    let client = AgentClient::new(&agent.url, Some("t"), None, &options).unwrap();
    let result = client
        .execute("deploy.execute_deploy_step", &json!({}), false)
        .await
        .unwrap();
    assert_eq!(result.command_status, CommandStatus::Running);
    let methods: Vec<Method> = agent.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, [Method::POST, Method::GET]);
}

#[tokio::test]
async fn https_agents_are_verified_against_their_certificate() {
    let (pem, server) = self_signed(&[&rustls::version::TLS13]);
    let agent = FakeAgent::start_tls(server, |_| {
        (
            StatusCode::OK,
            result_json(
                "get_partition_uuids",
                "SUCCEEDED",
                json!({"root uuid": "0x0"}),
            ),
        )
    })
    .await;
    let client = AgentClient::new(&agent.url, Some("t"), Some(&pem), &quick()).unwrap();
    let result = client
        .execute("standby.get_partition_uuids", &json!({}), true)
        .await
        .unwrap();
    assert_eq!(result.command_result.unwrap()["root uuid"], "0x0");

    // Another certificate is not trusted.
    let (other_pem, _) = self_signed(&[&rustls::version::TLS13]);
    let client = AgentClient::new(&agent.url, Some("t"), Some(&other_pem), &quick()).unwrap();
    let err = client
        .execute("standby.get_partition_uuids", &json!({}), true)
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
}

#[tokio::test]
async fn tls_1_2_agents_need_an_explicit_minimum() {
    let (pem, server) = self_signed(&[&rustls::version::TLS12]);
    let agent = FakeAgent::start_tls(server, |_| {
        (
            StatusCode::OK,
            result_json("sync", "SUCCEEDED", Value::Null),
        )
    })
    .await;
    let client = AgentClient::new(&agent.url, None, Some(&pem), &quick()).unwrap();
    assert!(
        client
            .execute("standby.sync", &json!({}), true)
            .await
            .unwrap_err()
            .is_connection()
    );
    let options = AgentClientOptions {
        tls_min: TlsMinVersion::Tls12,
        ..quick()
    };
    let client = AgentClient::new(&agent.url, None, Some(&pem), &options).unwrap();
    client
        .execute("standby.sync", &json!({}), true)
        .await
        .unwrap();
}

fn deploy_steps_result() -> String {
    result_json(
        "get_deploy_steps",
        "SUCCEEDED",
        json!({
            "deploy_steps": {"GenericHardwareManager": [
                {"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false, "argsinfo": null},
                {"step": "apply_configuration", "priority": 0, "interface": "raid", "reboot_requested": false, "argsinfo": {}}
            ]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"}
        }),
    )
}

async fn heartbeat_from(shim: &Shim, agent_url: &str, token: &str, ca: Option<&str>) {
    let mut body =
        json!({"callback_url": agent_url, "agent_token": token, "agent_version": "13.0.0"});
    if let Some(ca) = ca {
        body["agent_verify_ca"] = json!(ca);
    }
    let resp = http()
        .post(shim.url("/v1/heartbeat/n1"))
        .header("X-OpenStack-Ironic-API-Version", "1.68")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn heartbeat_in_deploy_wait_caches_deploy_steps() {
    let shim = Shim::start(plain_config()).await;
    let node = shim.create("n1", &[MAC], ProvisionState::DeployWait).await;
    let agent = FakeAgent::start(|_| (StatusCode::OK, deploy_steps_result())).await;
    let token = shim.lookup_token(MAC).await;
    heartbeat_from(&shim, &agent.url, &token, None).await;

    let stored = shim
        .wait_for("n1", "cached deploy steps", |n| {
            n.driver_internal_info.agent_cached_deploy_steps.is_some()
        })
        .await;
    let dii = &stored.driver_internal_info;
    let steps = dii.agent_cached_deploy_steps.as_ref().unwrap();
    assert_eq!(steps["deploy"][0].step, "write_image");
    assert_eq!(steps["raid"][0].step, "apply_configuration");
    assert_eq!(
        dii.hardware_manager_version.as_ref().unwrap()["generic_hardware_manager"],
        "1.2"
    );
    assert!(dii.agent_cached_deploy_steps_refreshed.is_some());
    assert_eq!(stored.provision_state, ProvisionState::DeployWait);
    assert!(stored.last_error.is_none());

    let requests = agent.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let req = &requests[0];
    assert_eq!(req.query["wait"], "true");
    assert_eq!(req.query["agent_token"], token);
    let body = req.body.as_ref().unwrap();
    assert_eq!(body["name"], "deploy.get_deploy_steps");
    assert_eq!(body["params"]["node"]["uuid"], json!(node.uuid.to_string()));
    assert_eq!(body["params"]["node"]["provision_state"], "wait call-back");
    assert_eq!(
        body["params"]["node"]["driver_internal_info"]["agent_secret_token"],
        "******"
    );
    assert_eq!(body["params"]["ports"][0]["address"], MAC);

    // Cached: the next heartbeat asks nothing.
    heartbeat_from(&shim, &agent.url, &token, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.requests().len(), 1);
}

#[tokio::test]
async fn heartbeat_in_clean_wait_over_tls_caches_clean_steps() {
    let (pem, server) = self_signed(&[&rustls::version::TLS13]);
    let agent = FakeAgent::start_tls(server, |_| {
        (
            StatusCode::OK,
            result_json(
                "get_clean_steps",
                "SUCCEEDED",
                json!({
                    "clean_steps": {"GenericHardwareManager": [
                        {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
                         "reboot_requested": false, "abortable": true}
                    ]},
                    "hardware_manager_version": {"generic_hardware_manager": "1.2"}
                }),
            ),
        )
    })
    .await;
    let shim = Shim::default().await; // require_tls on
    shim.create("n1", &[MAC], ProvisionState::CleanWait).await;
    let token = shim.lookup_token(MAC).await;
    heartbeat_from(&shim, &agent.url, &token, Some(&pem)).await;
    let stored = shim
        .wait_for("n1", "cached clean steps", |n| {
            n.driver_internal_info.agent_cached_clean_steps.is_some()
        })
        .await;
    let steps = stored
        .driver_internal_info
        .agent_cached_clean_steps
        .unwrap();
    let step = &steps["deploy"][0];
    assert_eq!(step.step, "erase_devices_metadata");
    assert_eq!(step.priority, 99);
    assert_eq!(step.extra["requires_ramdisk"], json!(true));
    assert_eq!(
        agent.requests()[0].body.as_ref().unwrap()["name"],
        "clean.get_clean_steps"
    );
}

#[tokio::test]
async fn invalid_steps_fail_the_deploy() {
    let shim = Shim::start(plain_config()).await;
    shim.create("n1", &[MAC], ProvisionState::DeployWait).await;
    let agent = FakeAgent::start(|_| {
        (
            StatusCode::OK,
            result_json(
                "get_deploy_steps",
                "SUCCEEDED",
                json!({"deploy_steps": {"M": [{"step": "write_image", "interface": "deploy"}]},
                       "hardware_manager_version": {}}),
            ),
        )
    })
    .await;
    let token = shim.lookup_token(MAC).await;
    heartbeat_from(&shim, &agent.url, &token, None).await;
    let stored = shim
        .wait_for("n1", "deploy failed", |n| {
            n.provision_state == ProvisionState::DeployFailed
        })
        .await;
    let error = stored.last_error.unwrap();
    assert!(error.contains("priority"), "{error}");
    assert!(
        stored
            .driver_internal_info
            .agent_cached_deploy_steps
            .is_none()
    );
}

#[tokio::test]
async fn busy_agent_leaves_the_node_waiting() {
    let shim = Shim::start(plain_config()).await;
    shim.create("n1", &[MAC], ProvisionState::DeployWait).await;
    let agent = FakeAgent::start(|_| {
        (
            StatusCode::CONFLICT,
            json!({"faultcode": "Client", "faultstring": "Agent is busy: executing command x"})
                .to_string(),
        )
    })
    .await;
    let token = shim.lookup_token(MAC).await;
    heartbeat_from(&shim, &agent.url, &token, None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while agent.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "agent never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stored = shim.node("n1").await;
    assert_eq!(stored.provision_state, ProvisionState::DeployWait);
    assert!(stored.last_error.is_none());
}
