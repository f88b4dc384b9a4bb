//! `api_request`: the agent's REST API driven in-process through the real axum router, the real
//! token check, body parsing (`{"name", "params"}`), command-name resolution and the real
//! parameter validators of every registered command.
//!
//! Input: the body of `POST /v1/commands/`. When the input starts with `?`, its first line is
//! appended to the query string (after a valid `agent_token`, so it can override it, add
//! `wait=...`, or be garbage) and the rest is the body.
//!
//! Only side-effect-free handlers run for real (the step listings and step execution through a
//! chain holding one in-memory manager, `get_partition_uuids`, `get_node_info`); every other
//! command keeps its real validator but a stub handler, so nothing ever touches a disk, the
//! network or the power state of this machine.
//!
//! Checked: no panic; never a 5xx; every error body has IPA's shape
//! (`{"faultcode": "Client"|"Server", "faultstring": str}`); an accepted command can be read
//! back by id and appears in the command list.

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use hardware_managers::{
    Chain, HardwareManager, HardwareResult, ManagerVersion, Step, StepContext, StepKind,
    SupportLevel,
};
use ironic_agent::api::{ApiState, router};
use ironic_agent::commands::{CommandOutput, Executor, Registry};
use ironic_agent::config::{Config, Flags, KernelParams};
use ironic_agent::context::AgentContext;
use ironic_agent::logbuf::LogBuffer;
use ironic_agent::power::RecordingPower;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token-0123456789abcdef0123456789ab";

/// Commands whose real handler is safe to run here (pure, or only talking to the chain below).
const REAL_HANDLERS: &[&str] = &[
    "clean.get_clean_steps",
    "clean.execute_clean_step",
    "deploy.get_deploy_steps",
    "deploy.execute_deploy_step",
    "service.get_service_steps",
    "service.execute_service_step",
    "standby.get_partition_uuids",
    "poll.get_node_info",
];

/// An in-memory manager with one step of each kind; its step echoes its arguments.
struct FuzzManager;

impl HardwareManager for FuzzManager {
    fn class_name(&self) -> String {
        "FuzzHardwareManager".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: "fuzz_hardware_manager".into(),
            version: "1.0".into(),
        }
    }
    fn get_steps(&self, kind: StepKind, _: &StepContext) -> HardwareResult<Vec<Step>> {
        Ok(vec![Step::new("fuzz_step", kind.as_str(), 10)])
    }
    fn execute_step(
        &self,
        name: &str,
        _: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        if name == "fuzz_step" {
            Ok(Value::Object(args.clone()))
        } else {
            Err(hardware_managers::HardwareError::incompatible(name))
        }
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    config: Config,
    chain: Chain,
    registry: Registry,
    power: Arc<RecordingPower>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch =
            std::env::temp_dir().join(format!("ironic-agent-fuzz-{}", std::process::id()));
        // Power and network actions are recorded, never performed (and their handlers are
        // stubbed anyway).
        let flags = Flags::parse_from([
            "ironic-agent".to_string(),
            format!("--power=record:{}", scratch.join("power").display()),
            format!("--network=record:{}", scratch.join("network").display()),
        ]);
        let config = Config::from_parts(
            &flags,
            KernelParams::parse(&format!("ipa-agent-token={TOKEN}")),
        )
        .expect("fixed configuration is valid");
        let chain = Chain::new(vec![Arc::new(FuzzManager) as Arc<dyn HardwareManager>])
            .expect("one supported manager");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Fixture {
            rt,
            config,
            chain,
            registry: fuzz_registry(),
            power: Arc::new(RecordingPower::new(&scratch.join("power"))),
        }
    })
}

/// Every real command with its real mode and validator; handlers are real only when listed in
/// [`REAL_HANDLERS`].
fn fuzz_registry() -> Registry {
    let real = ironic_agent::commands::registry();
    let mut r = Registry::new();
    for name in real.names() {
        let (Some((ext, cmd)), Ok((_, spec))) = (name.split_once('.'), real.resolve(&name)) else {
            continue;
        };
        if REAL_HANDLERS.contains(&name.as_str()) {
            let handler = spec.handler.clone();
            r.register(ext, cmd, spec.mode, spec.validator, move |ctx, p| {
                handler(ctx, p)
            });
        } else {
            r.register(ext, cmd, spec.mode, spec.validator, |_, p| {
                Ok(CommandOutput::Json(
                    json!({ "stub": true, "params": p.len() }),
                ))
            });
        }
    }
    r
}

/// Sends one request; `None` when the URI is not one hyper would accept.
async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> Option<(StatusCode, Vec<u8>)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .ok()?;
    let resp = app.clone().oneshot(req).await.expect("infallible router");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("response body");
    Some((status, bytes.to_vec()))
}

/// Asserts the response contract and returns the parsed body.
fn check(status: StatusCode, body: &[u8]) -> Value {
    assert!(
        !status.is_server_error(),
        "server error {status}: {}",
        String::from_utf8_lossy(body)
    );
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    if !status.is_success() {
        let code = v.get("faultcode").and_then(Value::as_str);
        assert!(
            matches!(code, Some("Client" | "Server")),
            "{status}: no IPA faultcode: {v}"
        );
        assert!(
            v.get("faultstring").is_some_and(Value::is_string),
            "{status}: no faultstring: {v}"
        );
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (extra_query, body) = match data.strip_prefix(b"?") {
        Some(rest) => match rest.iter().position(|b| *b == b'\n') {
            Some(nl) => (&rest[..nl], &rest[nl + 1..]),
            None => (rest, &[][..]),
        },
        None => (&[][..], data),
    };
    let Ok(extra_query) = std::str::from_utf8(extra_query) else {
        return;
    };
    let ctx = Arc::new(AgentContext::new(
        f.config.clone(),
        f.chain.clone(),
        f.power.clone(),
        LogBuffer::new(64 * 1024),
    ));
    let executor = Arc::new(Executor::new(f.registry.clone(), ctx));
    let app = router(ApiState {
        executor,
        scheme: "http",
    });
    f.rt.block_on(async {
        let sep = if extra_query.is_empty() { "" } else { "&" };
        let uri = format!("/v1/commands/?agent_token={TOKEN}{sep}{extra_query}");
        let Some((status, resp)) = send(&app, "POST", &uri, body.to_vec()).await else {
            return;
        };
        let v = check(status, &resp);
        if !status.is_success() {
            return;
        }
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("accepted command without an id: {v}"));
        assert!(v.get("command_status").is_some_and(Value::is_string), "{v}");

        let get = format!("/v1/commands/{id}?agent_token={TOKEN}&wait=true");
        let (status, resp) = send(&app, "GET", &get, Vec::new())
            .await
            .expect("valid URI");
        let got = check(status, &resp);
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got.get("id"), v.get("id"));

        let list = format!("/v1/commands/?agent_token={TOKEN}");
        let (status, resp) = send(&app, "GET", &list, Vec::new())
            .await
            .expect("valid URI");
        let listed = check(status, &resp);
        let ids: Vec<&str> = listed
            .get("commands")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ids, vec![id], "{listed}");
    });
});
