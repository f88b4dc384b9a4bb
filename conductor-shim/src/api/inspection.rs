//! `POST /v1/continue_inspection[?node_uuid=]`: stores the agent's inspection data.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::lookup::{LookupResponse, issue_token};
use super::version::ApiVersion;
use super::{AppState, base_url, body};
use crate::mac;
use crate::model::JsonMap;
use crate::state::ProvisionState;
use crate::store::StoreError;

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct InspectionQuery {
    /// Node UUID (only honoured at API ≥ 1.84).
    #[serde(default)]
    pub node_uuid: Option<String>,
}

/// The part of the body Ironic's schema checks.
#[derive(Debug, Deserialize)]
pub struct InspectionSchema {
    /// The inventory.
    pub inventory: SchemaInventory,
}

/// `inventory` as far as the schema goes.
#[derive(Debug, Deserialize)]
pub struct SchemaInventory {
    /// At least one interface.
    pub interfaces: Vec<SchemaInterface>,
    /// BMC IPv4 address.
    #[serde(default)]
    pub bmc_address: Option<String>,
    /// BMC IPv6 address.
    #[serde(default)]
    pub bmc_v6address: Option<String>,
}

/// An interface as far as the schema goes.
#[derive(Debug, Deserialize)]
pub struct SchemaInterface {
    /// MAC address.
    pub mac_address: String,
}

/// The 202 body at API < 1.84 (what IPA, sending no version header, gets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InspectionAccepted {
    /// The node's UUID.
    pub uuid: Uuid,
}

/// BMC addresses IPA reports when there is none.
const PLACEHOLDER_BMC: &[&str] = &["0.0.0.0", "::/0", "::"];

/// `POST /v1/continue_inspection`.
pub async fn continue_inspection(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    query: Result<Query<InspectionQuery>, QueryRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new_endpoint = version.at_least(84);
    if !new_endpoint && version != super::version::MIN_VERSION {
        return Err(ApiError::not_found());
    }
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let data: Value = body::json(raw)?;
    let schema = InspectionSchema::deserialize(&data)
        .map_err(|e| ApiError::bad_request(format!("Invalid inspection data: {e}")))?;
    if schema.inventory.interfaces.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid inspection data: inventory.interfaces must have at least one item",
        ));
    }
    let Value::Object(mut plugin_data) = data else {
        return Err(ApiError::bad_request(
            "Invalid inspection data: not an object",
        ));
    };
    let inventory = plugin_data.remove("inventory").unwrap_or(Value::Null);

    let macs: Vec<String> = schema
        .inventory
        .interfaces
        .iter()
        .filter_map(|i| mac::normalize(&i.mac_address))
        .collect();
    let bmc: Vec<String> = [schema.inventory.bmc_address, schema.inventory.bmc_v6address]
        .into_iter()
        .flatten()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty() && !PLACEHOLDER_BMC.contains(&a.as_str()))
        .collect();
    let node_uuid = match (new_endpoint, query.node_uuid.as_deref().map(str::trim)) {
        (true, Some(text)) if !text.is_empty() => {
            Some(Uuid::parse_str(text).map_err(|_| {
                ApiError::bad_request(format!("Expected a UUID but received {text}."))
            })?)
        }
        _ => None,
    };
    if macs.is_empty() && bmc.is_empty() && node_uuid.is_none() {
        return Err(ApiError::bad_request("No lookup information provided"));
    }

    let stored = state
        .store
        .run(move |s| {
            let found = match node_uuid {
                Some(uuid) => s.node_by_uuid(uuid)?,
                None => match s.node_by_macs(&macs)? {
                    Some(node) => Some(node),
                    None => s.node_by_bmc_address(&bmc)?,
                },
            };
            let Some(node) = found else {
                return Ok(None);
            };
            s.update_node(node.uuid, |n| {
                n.inventory = Some(inventory);
                n.inspection_data = Some(JsonMap::from_iter(plugin_data));
                if matches!(
                    n.provision_state,
                    ProvisionState::InspectWait | ProvisionState::Inspecting
                ) {
                    n.provision_state = ProvisionState::Manageable;
                }
                Ok::<_, StoreError>(Some(n.clone()))
            })
        })
        .await;
    let node = match stored {
        Ok(Some(node)) => node,
        Ok(None) | Err(StoreError::AmbiguousPorts(_)) => {
            return Err(ApiError::not_found_msg(
                "Could not find a node for the provided inspection data",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(node = %node.uuid, state = %node.provision_state, "stored inspection data");

    if new_endpoint {
        let (token, node) = issue_token(&state, node.uuid).await?;
        let body = LookupResponse::new(
            &node,
            Some(token),
            &state.config,
            &base_url(&state.config, &headers),
        );
        Ok((StatusCode::ACCEPTED, Json(body)).into_response())
    } else {
        Ok((
            StatusCode::ACCEPTED,
            Json(InspectionAccepted { uuid: node.uuid }),
        )
            .into_response())
    }
}
