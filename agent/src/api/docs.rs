//! The discovery documents served at `/` and `/v1/`.

use serde_json::{Value, json};

const DOCS_URL: &str = "https://docs.openstack.org/ironic-python-agent/";

fn version_links(root: &str) -> Value {
    json!([
        {"href": format!("{root}/v1"), "rel": "self"},
        {"href": DOCS_URL, "rel": "describedby", "type": "text/html"}
    ])
}

/// `GET /`.
pub fn root(root: &str) -> Value {
    let version = json!({"id": "v1", "links": version_links(root)});
    json!({
        "name": "OpenStack Ironic Python Agent API",
        "description": "Ironic Python Agent is a provisioning agent for OpenStack Ironic",
        "versions": [version.clone()],
        "default_version": version,
    })
}

/// `GET /v1/`.
pub fn v1(root: &str) -> Value {
    let link = |name: &str| {
        json!([
            {"href": format!("{root}/v1/{name}"), "rel": "self"},
            {"href": format!("{root}/{name}"), "rel": "bookmark"}
        ])
    };
    json!({
        "id": "v1",
        "links": version_links(root),
        "media_types": [{"base": "application/json",
                          "type": "application/vnd.openstack.ironic-python-agent.v1+json"}],
        "commands": link("commands"),
        "status": link("status"),
    })
}
