//! The Ironic API subset over real HTTP on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Shim, fault, http, sorted_keys};
use conductor_shim::api::ServerConfig;
use conductor_shim::state::ProvisionState;
use serde_json::{Value, json};

const MAC: &str = "02:fc:00:00:00:01";
const HDR: &str = "X-OpenStack-Ironic-API-Version";

#[tokio::test]
async fn root_and_v1_documents() {
    let shim = Shim::default().await;
    let resp = http().get(shim.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["name"], "OpenStack Ironic API");
    let expected = json!({
        "id": "v1",
        "links": [{"href": format!("{}/v1/", shim.base), "rel": "self"}],
        "min_version": "1.1",
        "status": "CURRENT",
        "version": "1.115"
    });
    assert_eq!(doc["default_version"], expected);
    assert_eq!(doc["versions"], json!([expected]));
    assert!(doc["description"].as_str().unwrap().contains("baremetal"));

    for path in ["/v1", "/v1/"] {
        let resp = http().get(shim.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers()["x-openstack-ironic-api-maximum-version"],
            "1.115"
        );
        assert_eq!(resp.headers()["x-openstack-ironic-api-version"], "1.1");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["id"], "v1");
        assert_eq!(doc["links"][0]["href"], format!("{}/v1/", shim.base));
        assert_eq!(doc["media_types"][0]["base"], "application/json");
    }
}

#[tokio::test]
async fn api_version_negotiation() {
    let shim = Shim::default().await;
    for bad in ["1.116", "2.1", "abc", "1.0"] {
        let resp = http()
            .get(shim.url("/v1/"))
            .header(HDR, bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["x-openstack-ironic-api-minimum-version"],
            "1.1"
        );
        let (status, code, _) = fault(resp).await;
        assert_eq!((status, code.as_str()), (406, "Client"), "{bad}");
    }
    let resp = http()
        .get(shim.url("/v1/"))
        .header(HDR, "latest")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-openstack-ironic-api-version"], "1.115");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_ironic_errors() {
    let shim = Shim::default().await;
    let (status, _, _) = fault(http().get(shim.url("/v1/nodes")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, _, _) = fault(http().delete(shim.url("/v1/lookup")).send().await.unwrap()).await;
    assert_eq!(status, 405);
}

async fn lookup(shim: &Shim, query: &str, version: Option<&str>) -> reqwest::Response {
    let mut req = http().get(shim.url(&format!("/v1/lookup{query}")));
    if let Some(v) = version {
        req = req.header(HDR, v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn lookup_errors() {
    let shim = Shim::start(ServerConfig {
        fast_track: false,
        ..ServerConfig::default()
    })
    .await;
    shim.create("active", &[MAC], ProvisionState::Active).await;
    shim.create(
        "managed",
        &["02:fc:00:00:00:02"],
        ProvisionState::Manageable,
    )
    .await;

    let (status, code, text) = fault(lookup(&shim, "", Some("1.62")).await).await;
    assert_eq!((status, code.as_str()), (400, "Client"));
    assert_eq!(
        text,
        "At least one of 'addresses' and 'node_uuid' parameters is required"
    );
    // Invalid MACs are ignored, leaving nothing.
    let (status, _, _) = fault(lookup(&shim, "?addresses=zz,11", Some("1.62")).await).await;
    assert_eq!(status, 400);
    let (status, _, text) = fault(lookup(&shim, "?node_uuid=nope", Some("1.62")).await).await;
    assert_eq!(status, 400, "{text}");

    let (status, _, not_found) =
        fault(lookup(&shim, "?addresses=02:fc:00:00:00:09", Some("1.62")).await).await;
    assert_eq!(status, 404);
    assert_eq!(not_found, "Resource could not be found.");
    // A node in a state that takes no lookups: the same 404.
    let (status, _, text) =
        fault(lookup(&shim, &format!("?addresses={MAC}"), Some("1.62")).await).await;
    assert_eq!((status, text.as_str()), (404, not_found.as_str()));
    // Manageable needs fast-track, which this shim has off.
    let (status, _, _) =
        fault(lookup(&shim, "?addresses=02:fc:00:00:00:02", Some("1.62")).await).await;
    assert_eq!(status, 404);
    // Below 1.22 the endpoint does not exist (no header means 1.1).
    let (status, _, _) = fault(lookup(&shim, &format!("?addresses={MAC}"), None).await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn lookup_hands_out_the_token_once() {
    let shim = Shim::default().await;
    let node = shim
        .create(
            "n1",
            &[MAC, "02:fc:00:00:00:02"],
            ProvisionState::DeployWait,
        )
        .await;
    shim.update("n1", |n| {
        n.instance_info = json!({"image_url": "http://secret/img", "image_disk_format": "raw"})
            .as_object()
            .unwrap()
            .clone();
    })
    .await;

    let resp = lookup(
        &shim,
        // URL-encoded as the agent sends it; the unknown MAC is simply not matched.
        "?addresses=AA%3ABB%3ACC%3ADD%3AEE%3AFF%2C02%3AFC%3A00%3A00%3A00%3A02",
        Some("1.62"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let token = body["config"]["agent_token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43);
    assert!(
        token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    let stored = shim.node("n1").await;
    assert_eq!(
        stored.driver_internal_info.agent_secret_token.as_deref(),
        Some(token.as_str())
    );

    let n = &body["node"];
    assert_eq!(n["uuid"], json!(node.uuid.to_string()));
    assert_eq!(n["driver_internal_info"]["agent_secret_token"], "******");
    assert_eq!(n["instance_info"]["image_url"], "******");
    assert_eq!(n["instance_info"]["image_disk_format"], "raw");
    assert_eq!(
        n["links"][0]["href"],
        format!("{}/v1/nodes/{}", shim.base, node.uuid)
    );
    assert_eq!(n["links"][1]["rel"], "bookmark");
    assert_eq!(
        sorted_keys(&body["config"]),
        [
            "agent_containers",
            "agent_md5_checksum_enable",
            "agent_skip_bmc_detect",
            "agent_token",
            "agent_token_required",
            "disable_deep_image_inspection",
            "enable_bios_bootloader_install",
            "heartbeat_timeout",
            "metrics",
            "metrics_statsd",
            "permitted_image_formats",
            "tls_cipher_suites",
            "tls_min_version"
        ]
    );
    let config = &body["config"];
    assert_eq!(config["heartbeat_timeout"], 300);
    assert_eq!(config["agent_token_required"], true);
    assert_eq!(config["tls_min_version"], "1.3");
    assert_eq!(config["tls_cipher_suites"], Value::Null);
    assert_eq!(
        config["permitted_image_formats"],
        json!(["raw", "gpt", "qcow2", "iso"])
    );
    assert_eq!(config["metrics"]["backend"], "noop");
    assert_eq!(config["metrics_statsd"]["statsd_port"], 8125);
    assert_eq!(config["agent_containers"]["runner"], "podman");

    // Second lookup (here by node_uuid): masked.
    let resp = lookup(&shim, &format!("?node_uuid={}", node.uuid), Some("1.62")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["config"]["agent_token"], "******");
    assert_eq!(
        shim.node("n1")
            .await
            .driver_internal_info
            .agent_secret_token,
        Some(token)
    );
}

#[tokio::test]
async fn lookup_below_1_62_has_no_token() {
    let shim = Shim::start(ServerConfig {
        heartbeat_timeout: 60,
        ..ServerConfig::default()
    })
    .await;
    shim.create("n1", &[MAC], ProvisionState::Manageable).await; // fast-track state
    let resp = lookup(&shim, &format!("?addresses={MAC}"), Some("1.61")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["config"]["agent_token"], Value::Null);
    assert_eq!(body["config"]["heartbeat_timeout"], 60);
    assert!(
        shim.node("n1")
            .await
            .driver_internal_info
            .agent_secret_token
            .is_none()
    );
}

async fn heartbeat(shim: &Shim, ident: &str, version: &str, body: Value) -> reqwest::Response {
    http()
        .post(shim.url(&format!("/v1/heartbeat/{ident}")))
        .header(HDR, version)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn expect_400(resp: reqwest::Response, message: &str) {
    let (status, code, text) = fault(resp).await;
    assert_eq!(
        (status, code.as_str(), text.as_str()),
        (400, "Client", message)
    );
}

#[tokio::test]
async fn heartbeat_validation_order() {
    let shim = Shim::default().await;
    // `deploying` records heartbeats without asking the agent for anything.
    let node = shim.create("n1", &[MAC], ProvisionState::Deploying).await;
    let token = shim.lookup_token(MAC).await;
    let good = json!({
        "callback_url": "https://127.0.0.1:9999",
        "agent_token": token,
        "agent_version": "13.0.0",
    });
    let with = |extra: Value| {
        let mut body = good.clone();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };

    let (status, _, _) = fault(heartbeat(&shim, "n1", "1.21", good.clone()).await).await;
    assert_eq!(status, 404);
    expect_400(
        heartbeat(&shim, "n1", "1.35", good.clone()).await,
        "Field \"agent_version\" not recognised",
    )
    .await;
    expect_400(
        heartbeat(&shim, "n1", "1.71", with(json!({"agent_status": "start"}))).await,
        "Fields \"agent_status\" and \"agent_status_message\" not recognised.",
    )
    .await;
    expect_400(
        heartbeat(&shim, "n1", "1.67", with(json!({"agent_verify_ca": "PEM"}))).await,
        "Field \"agent_verify_ca\" not recognised in this version",
    )
    .await;
    let (status, _, text) = fault(heartbeat(&shim, "nope", "1.68", good.clone()).await).await;
    assert_eq!(status, 404);
    assert_eq!(text, "Node nope could not be found.");
    let (status, _, _) = fault(
        heartbeat(
            &shim,
            "6f6f6f6f-0000-4000-8000-000000000000",
            "1.68",
            good.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, text) = fault(
        heartbeat(
            &shim,
            "n1",
            "1.68",
            with(json!({"callback_url": "ftp://127.0.0.1:9999"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    // Missing token is reported before the missing version and the TLS requirement.
    expect_400(
        heartbeat(
            &shim,
            "n1",
            "1.68",
            with(json!({"agent_token": null, "agent_version": null, "callback_url": "http://127.0.0.1:9999"})),
        )
        .await,
        "Agent token is required for heartbeat processing.",
    )
    .await;
    expect_400(
        heartbeat(&shim, "n1", "1.68", with(json!({"agent_version": null}))).await,
        "Agent version is required for heartbeat processing.",
    )
    .await;
    // A wrong token is reported before the TLS requirement.
    expect_400(
        heartbeat(
            &shim,
            "n1",
            "1.68",
            with(json!({"agent_token": "x".repeat(43), "callback_url": "http://127.0.0.1:9999"})),
        )
        .await,
        "Invalid or missing agent token received.",
    )
    .await;
    expect_400(
        heartbeat(
            &shim,
            "n1",
            "1.68",
            with(json!({"callback_url": "http://127.0.0.1:9999"})),
        )
        .await,
        "TLS is required by configuration",
    )
    .await;
    let (status, _, _) = fault(
        http()
            .post(shim.url("/v1/heartbeat/n1"))
            .header(HDR, "1.68")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    // Nothing recorded so far.
    assert!(
        shim.node("n1")
            .await
            .driver_internal_info
            .agent_url
            .is_none()
    );

    // Success (by UUID), with a certificate.
    let resp = heartbeat(
        &shim,
        &node.uuid.to_string(),
        "1.68",
        with(json!({"agent_verify_ca": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"})),
    )
    .await;
    assert_eq!(resp.status(), 202);
    assert!(resp.bytes().await.unwrap().is_empty());
    let stored = shim.node("n1").await.driver_internal_info;
    assert_eq!(stored.agent_url.as_deref(), Some("https://127.0.0.1:9999"));
    assert_eq!(stored.agent_version.as_deref(), Some("13.0.0"));
    assert_eq!(stored.agent_heartbeat_count, Some(1));
    assert!(stored.agent_last_heartbeat.is_some());
    assert!(
        stored
            .agent_verify_ca
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    // Same again (by name): fine.
    let resp = heartbeat(
        &shim,
        "n1",
        "1.68",
        with(
            json!({"agent_verify_ca": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"}),
        ),
    )
    .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        shim.node("n1")
            .await
            .driver_internal_info
            .agent_heartbeat_count,
        Some(2)
    );
    // A different certificate is refused.
    expect_400(
        heartbeat(
            &shim,
            "n1",
            "1.68",
            with(json!({"agent_verify_ca": "OTHER"})),
        )
        .await,
        "Detected change in ramdisk provided \"agent_verify_ca\"",
    )
    .await;
    // A changed callback URL is refused, even before the token is looked at.
    expect_400(
        heartbeat(
            &shim,
            "n1",
            "1.68",
            with(json!({"callback_url": "https://127.0.0.2:9999", "agent_token": null})),
        )
        .await,
        "Detected change in ramdisk provided \"callback_url\"",
    )
    .await;
}

#[tokio::test]
async fn heartbeat_without_require_tls_accepts_http() {
    let shim = Shim::start(ServerConfig {
        require_tls: false,
        ..ServerConfig::default()
    })
    .await;
    shim.create("n1", &[MAC], ProvisionState::Cleaning).await;
    let token = shim.lookup_token(MAC).await;
    let resp = heartbeat(
        &shim,
        "n1",
        "1.68",
        json!({"callback_url": "http://127.0.0.1:46399", "agent_token": token, "agent_version": "13.0.0"}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        shim.node("n1")
            .await
            .driver_internal_info
            .agent_url
            .as_deref(),
        Some("http://127.0.0.1:46399")
    );
}

#[tokio::test]
async fn heartbeat_in_other_states_is_accepted_but_not_recorded() {
    let shim = Shim::default().await;
    shim.create("n1", &[MAC], ProvisionState::Deploying).await;
    let token = shim.lookup_token(MAC).await;
    shim.update("n1", |n| n.provision_state = ProvisionState::Active)
        .await;
    let resp = heartbeat(
        &shim,
        "n1",
        "1.68",
        json!({"callback_url": "https://127.0.0.1:9999", "agent_token": token, "agent_version": "13.0.0"}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    assert!(
        shim.node("n1")
            .await
            .driver_internal_info
            .agent_url
            .is_none()
    );
}

fn inspection_body(mac: &str) -> Value {
    json!({
        "inventory": {
            "interfaces": [{"name": "eth0", "mac_address": mac}],
            "cpu": {"count": 2, "architecture": "x86_64"},
            "bmc_address": null,
            "bmc_v6address": null
        },
        "boot_interface": null,
        "configuration": {"collectors": ["default", "logs"]},
        "error": null,
        "logs": "H4sIAAAA"
    })
}

async fn inspect(
    shim: &Shim,
    query: &str,
    version: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = http().post(shim.url(&format!("/v1/continue_inspection{query}")));
    if let Some(v) = version {
        req = req.header(HDR, v);
    }
    req.json(&body).send().await.unwrap()
}

#[tokio::test]
async fn continue_inspection_validation() {
    let shim = Shim::default().await;
    shim.create("n1", &[MAC], ProvisionState::InspectWait).await;
    for bad in [
        json!([1]),
        json!({}),
        json!({"inventory": []}),
        json!({"inventory": {}}),
        json!({"inventory": {"interfaces": []}}),
        json!({"inventory": {"interfaces": [{"name": "eth0"}]}}),
        json!({"inventory": {"interfaces": [{"mac_address": 5}]}}),
        json!({"inventory": {"interfaces": [{"mac_address": MAC}], "bmc_address": 7}}),
    ] {
        let (status, code, text) = fault(inspect(&shim, "", None, bad.clone()).await).await;
        assert_eq!((status, code.as_str()), (400, "Client"), "{bad}: {text}");
    }
    let (status, _, _) = fault(
        http()
            .post(shim.url("/v1/continue_inspection"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, text) =
        fault(inspect(&shim, "", None, inspection_body("not-a-mac")).await).await;
    assert_eq!(
        (status, text.as_str()),
        (400, "No lookup information provided")
    );
    let (status, _, _) =
        fault(inspect(&shim, "", None, inspection_body("02:fc:00:00:00:09")).await).await;
    assert_eq!(status, 404);
    // Only 1.1 (no header) and ≥ 1.84 have this endpoint.
    let (status, _, _) = fault(inspect(&shim, "", Some("1.50"), inspection_body(MAC)).await).await;
    assert_eq!(status, 404);
    // Nothing stored by the failures.
    assert!(shim.node("n1").await.inventory.is_none());
}

#[tokio::test]
async fn continue_inspection_stores_data() {
    let shim = Shim::default().await;
    let node = shim.create("n1", &[MAC], ProvisionState::InspectWait).await;
    let resp = inspect(&shim, "", None, inspection_body("02:FC:00:00:00:01")).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"uuid": node.uuid.to_string()}));
    let stored = shim.node("n1").await;
    assert_eq!(stored.provision_state, ProvisionState::Manageable);
    assert_eq!(stored.inventory.as_ref().unwrap()["cpu"]["count"], 2);
    let data = stored.inspection_data.unwrap();
    assert!(!data.contains_key("inventory"));
    assert_eq!(data["logs"], "H4sIAAAA");
    assert_eq!(data["error"], Value::Null);
    // No token handed out at 1.1.
    assert!(stored.driver_internal_info.agent_secret_token.is_none());
}

#[tokio::test]
async fn continue_inspection_new_endpoint_returns_lookup_data() {
    let shim = Shim::default().await;
    let node = shim.create("n1", &[], ProvisionState::InspectWait).await;
    shim.create("other", &["02:fc:00:00:00:07"], ProvisionState::InspectWait)
        .await;
    // Unknown MAC, but node_uuid at 1.84 finds it.
    let resp = inspect(
        &shim,
        &format!("?node_uuid={}", node.uuid),
        Some("1.84"),
        inspection_body("02:fc:00:00:00:09"),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["node"]["uuid"], json!(node.uuid.to_string()));
    assert_eq!(body["config"]["agent_token"].as_str().unwrap().len(), 43);
    assert_eq!(
        shim.node("n1").await.provision_state,
        ProvisionState::Manageable
    );
}

#[tokio::test]
async fn continue_inspection_finds_nodes_by_bmc_address() {
    let shim = Shim::default().await;
    let node = shim.create("n1", &[], ProvisionState::InspectWait).await;
    shim.update("n1", |n| {
        n.driver_info = json!({"bmc_address": "192.0.2.200"})
            .as_object()
            .unwrap()
            .clone();
    })
    .await;
    let mut body = inspection_body("02:fc:00:00:00:09");
    body["inventory"]["bmc_address"] = json!("192.0.2.200");
    let resp = inspect(&shim, "", None, body).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["uuid"], json!(node.uuid.to_string()));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let shim = Shim::start(ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    shim.create("n1", &[MAC], ProvisionState::InspectWait).await;
    let mut body = inspection_body(MAC);
    body["logs"] = json!("x".repeat(4096));
    let (status, _, _) = fault(inspect(&shim, "", None, body).await).await;
    assert_eq!(status, 413);
}
