//! `lockdown` against a local stand-in agent: Ironic's request sequence, and the failure when
//! the agent's API never goes away.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{FakeAgent, result_json};
use conductor_shim::agent_client::{AgentClient, AgentClientOptions, TlsMinVersion};
use conductor_shim::lockdown::{LockdownError, lockdown};
use serde_json::json;
use uuid::Uuid;

fn quick() -> AgentClientOptions {
    AgentClientOptions {
        timeout: Duration::from_secs(5),
        tls_min: TlsMinVersion::Tls13,
        max_attempts: 1,
    }
}

#[tokio::test]
async fn an_agent_that_keeps_answering_fails_the_lockdown_after_the_polls() {
    // A "lockdown" that does not lock down: the API keeps answering.
    let agent = FakeAgent::start(|req| match req.method {
        Method::POST => {
            let name = req.body.as_ref().unwrap()["name"].as_str().unwrap_or("");
            let short = name.rsplit('.').next().unwrap_or(name).to_string();
            (
                StatusCode::OK,
                result_json(&short, "SUCCEEDED", serde_json::Value::Null),
            )
        }
        _ => (StatusCode::OK, json!({"commands": []}).to_string()),
    })
    .await;
    let client = AgentClient::new(&agent.url, Some("tok"), None, &quick()).unwrap();
    let node = Uuid::new_v4();
    let err = lockdown(&client, node, Duration::from_millis(20), 3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockdownError::StillAvailable { node: n, .. } if n == node),
        "{err}"
    );
    assert!(
        err.to_string().contains("agent is still available"),
        "{err}"
    );

    // Ironic's sequence: sync (wait), lockdown, then 1 + retries polls.
    let requests = agent.requests();
    let seen: Vec<String> = requests
        .iter()
        .map(|r| match &r.body {
            Some(b) => format!(
                "{} {} wait={}",
                r.method,
                b["name"].as_str().unwrap_or(""),
                r.query.get("wait").map_or("-", String::as_str)
            ),
            None => format!("{} {}", r.method, r.path),
        })
        .collect();
    assert_eq!(
        seen,
        [
            "POST standby.sync wait=true",
            "POST system.lockdown wait=false",
            "GET /v1/commands/",
            "GET /v1/commands/",
            "GET /v1/commands/",
            "GET /v1/commands/",
        ],
        "{seen:?}"
    );
    assert!(requests.iter().all(|r| r.query["agent_token"] == "tok"));
}

#[tokio::test]
async fn a_refused_lockdown_is_an_error_and_no_poll_follows() {
    let agent = FakeAgent::start(|req| match req.body.as_ref().map(|b| b["name"].clone()) {
        Some(name) if name == "system.lockdown" => (
            StatusCode::BAD_REQUEST,
            json!({"faultcode": "Client",
                   "faultstring": "Not found: Extension with id system not found."})
            .to_string(),
        ),
        _ => (
            StatusCode::OK,
            result_json("sync", "SUCCEEDED", serde_json::Value::Null),
        ),
    })
    .await;
    let client = AgentClient::new(&agent.url, Some("tok"), None, &quick()).unwrap();
    let err = lockdown(&client, Uuid::new_v4(), Duration::from_millis(20), 3)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LockdownError::Command {
                command: "system.lockdown",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        agent.requests().len(),
        2,
        "no polls after a refused lockdown"
    );
}
