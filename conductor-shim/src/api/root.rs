//! `GET /` (Ironic's version discovery document) and `GET /v1/`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::version::{MAX_VERSION, MIN_VERSION};
use super::{AppState, base_url};

/// A link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Target.
    pub href: String,
    /// Relation (`self`, `bookmark`, `describedby`).
    pub rel: String,
    /// Media type, for documentation links.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl Link {
    /// A link without a media type.
    pub fn new(href: String, rel: &str) -> Link {
        Link {
            href,
            rel: rel.to_string(),
            media_type: None,
        }
    }
}

/// One API version entry.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// `v1`.
    pub id: &'static str,
    /// Link to the version root.
    pub links: Vec<Link>,
    /// Lowest microversion.
    pub min_version: String,
    /// `CURRENT`.
    pub status: &'static str,
    /// Highest microversion.
    pub version: String,
}

/// `GET /` body.
#[derive(Debug, Clone, Serialize)]
pub struct RootDoc {
    /// `OpenStack Ironic API`.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// The default version (the only one).
    pub default_version: VersionInfo,
    /// All versions.
    pub versions: Vec<VersionInfo>,
}

/// A media type entry.
#[derive(Debug, Clone, Serialize)]
pub struct MediaType {
    /// `application/json`.
    pub base: &'static str,
    /// Vendor type.
    #[serde(rename = "type")]
    pub media_type: &'static str,
}

/// `GET /v1/` body.
#[derive(Debug, Clone, Serialize)]
pub struct V1Doc {
    /// `v1`.
    pub id: &'static str,
    /// Self and documentation links.
    pub links: Vec<Link>,
    /// Media types.
    pub media_types: Vec<MediaType>,
    /// Link to the lookup endpoint.
    pub lookup: Vec<Link>,
    /// Link to the heartbeat endpoint.
    pub heartbeat: Vec<Link>,
}

fn version_info(base: &str) -> VersionInfo {
    VersionInfo {
        id: "v1",
        links: vec![Link::new(format!("{base}/v1/"), "self")],
        min_version: MIN_VERSION.to_string(),
        status: "CURRENT",
        version: MAX_VERSION.to_string(),
    }
}

/// `GET /`.
pub async fn root(State(state): State<AppState>, headers: HeaderMap) -> Json<RootDoc> {
    let base = base_url(&state.config, &headers);
    Json(RootDoc {
        name: "OpenStack Ironic API",
        description: "Ironic is an OpenStack project which enables the provision and \
                      management of baremetal machines.",
        default_version: version_info(&base),
        versions: vec![version_info(&base)],
    })
}

/// `GET /v1` and `GET /v1/`.
pub async fn v1(State(state): State<AppState>, headers: HeaderMap) -> Json<V1Doc> {
    let base = base_url(&state.config, &headers);
    Json(V1Doc {
        id: "v1",
        links: vec![
            Link::new(format!("{base}/v1/"), "self"),
            Link {
                href: "https://docs.openstack.org/ironic/latest/contributor/webapi.html"
                    .to_string(),
                rel: "describedby".to_string(),
                media_type: Some("text/html".to_string()),
            },
        ],
        media_types: vec![MediaType {
            base: "application/json",
            media_type: "application/vnd.openstack.ironic.v1+json",
        }],
        lookup: vec![
            Link::new(format!("{base}/v1/lookup/"), "self"),
            Link::new(format!("{base}/lookup/"), "bookmark"),
        ],
        heartbeat: vec![
            Link::new(format!("{base}/v1/heartbeat/"), "self"),
            Link::new(format!("{base}/heartbeat/"), "bookmark"),
        ],
    })
}
