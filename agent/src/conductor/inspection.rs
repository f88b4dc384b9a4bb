//! In-band inspection: collect the inventory and post it to the inspection callback.

use std::time::Duration;

use hardware_managers::{BlockDevice, HardwareError, Inventory};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use super::client::{http_client, ironic_fault};
use crate::context::AgentContext;

/// `configuration.managers[]`.
#[derive(Debug, Clone, Serialize)]
pub struct ManagerInfo {
    /// Manager name.
    pub name: String,
    /// Manager version.
    pub version: String,
}

/// `configuration`.
#[derive(Debug, Clone, Serialize)]
pub struct InspectionConfiguration {
    /// Collectors that ran.
    pub collectors: Vec<String>,
    /// Managers in the chain.
    pub managers: Vec<ManagerInfo>,
}

/// The body posted to the inspection callback.
#[derive(Debug, Clone, Serialize)]
pub struct InspectionData {
    /// The inventory (`default` collector).
    pub inventory: Inventory,
    /// The disk the no-hints rule picks (absent if none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<BlockDevice>,
    /// `inventory.boot.pxe_interface` (deprecated duplicate).
    pub boot_interface: Option<String>,
    /// Collectors and managers.
    pub configuration: InspectionConfiguration,
    /// Base64 tar.gz of logs (`logs` collector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// Collector errors, or null.
    pub error: Option<String>,
}

/// Why inspection failed (logged; the agent proceeds to lookup).
#[derive(Debug, thiserror::Error)]
pub enum InspectionError {
    /// The inventory could not be collected.
    #[error("collecting the inventory: {0}")]
    Inventory(#[from] HardwareError),
    /// Every attempt failed.
    #[error("posting inspection data: {0}")]
    Post(String),
}

/// Runs the configured collectors.
pub async fn collect(
    ctx: &std::sync::Arc<AgentContext>,
) -> Result<InspectionData, InspectionError> {
    wait_for_dhcp(ctx).await;
    let c = ctx.clone();
    let data = tokio::task::spawn_blocking(move || collect_blocking(&c))
        .await
        .map_err(|e| InspectionError::Post(format!("collector task failed: {e}")))??;
    Ok(data)
}

fn collect_blocking(ctx: &AgentContext) -> Result<InspectionData, InspectionError> {
    let mut errors = Vec::new();
    let mut ran = Vec::new();
    let mut inventory = None;
    let mut logs = None;
    for name in &ctx.config.inspection_collectors {
        match name.as_str() {
            "default" => {
                inventory = Some(ctx.chain.inventory(ctx.skip_bmc_detect())?);
                ran.push(name.clone());
            }
            "logs" => match crate::commands::log::bundle_base64(ctx) {
                Ok(l) => {
                    logs = Some(l);
                    ran.push(name.clone());
                }
                Err(e) => errors.push(format!("collector logs failed: {e}")),
            },
            other => errors.push(format!("collector {other} is not supported by this agent")),
        }
    }
    // Ironic needs an inventory; build it even when `default` was not asked for.
    let inventory = match inventory {
        Some(i) => i,
        None => ctx.chain.inventory(ctx.skip_bmc_detect())?,
    };
    let root_disk = match ctx
        .chain
        .dispatch("get_os_install_device", |m| m.get_os_install_device(None))
    {
        Ok(name) => inventory.disks.iter().find(|d| d.name == name).cloned(),
        Err(e) => {
            warn!(error = %e, "no root disk candidate");
            None
        }
    };
    let managers = ctx
        .chain
        .managers()
        .map(|(m, _)| {
            let v = m.version();
            ManagerInfo {
                name: v.name,
                version: v.version,
            }
        })
        .collect();
    let error = (!errors.is_empty()).then(|| {
        let mut text = String::from("The following errors were encountered:");
        for e in &errors {
            text.push_str("\n* ");
            text.push_str(e);
        }
        text
    });
    Ok(InspectionData {
        boot_interface: inventory.boot.pxe_interface.clone(),
        inventory,
        root_disk,
        configuration: InspectionConfiguration {
            collectors: ran,
            managers,
        },
        logs,
        error,
    })
}

/// Waits (bounded by `ipa-inspection-dhcp-wait-timeout`) until the PXE NIC, or any NIC when
/// there is no `BOOTIF`, has an IPv4 address.
async fn wait_for_dhcp(ctx: &std::sync::Arc<AgentContext>) {
    let limit = ctx.config.inspection_dhcp_wait_timeout;
    if limit.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let pxe_mac = ctx.config.bootif.as_deref().map(bootif_mac);
    loop {
        let c = ctx.clone();
        let nics = tokio::task::spawn_blocking(move || {
            c.chain
                .dispatch("list_network_interfaces", |m| m.list_network_interfaces())
        })
        .await;
        let ready = match nics {
            Ok(Ok(nics)) => nics.iter().any(|n| {
                n.ipv4_address.is_some()
                    && pxe_mac
                        .as_ref()
                        .is_none_or(|mac| n.mac_address.eq_ignore_ascii_case(mac))
            }),
            _ => false,
        };
        if ready {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!("no IPv4 address on the PXE interface after {limit:?}; inspecting anyway");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `01-aa-bb-cc-dd-ee-ff` → `aa:bb:cc:dd:ee:ff`.
pub fn bootif_mac(bootif: &str) -> String {
    let s = bootif.strip_prefix("01-").unwrap_or(bootif);
    s.replace('-', ":").to_ascii_lowercase()
}

/// Posts `data` to each URL in order (moving on after connection errors), retrying up to 5
/// attempts (waits ×1.5 from 5 s, at most 30 s) on connection errors, 5xx and 409. Returns the
/// node UUID Ironic answered with.
pub async fn post(
    ctx: &AgentContext,
    data: &InspectionData,
) -> Result<Option<String>, InspectionError> {
    let urls = ctx.config.inspection_urls();
    let http = http_client(&ctx.config, ctx.config.http_request_timeout, "1.2")
        .map_err(|e| InspectionError::Post(e.to_string()))?;
    let body = serde_json::to_vec(data).map_err(|e| InspectionError::Post(e.to_string()))?;
    let mut wait = Duration::from_secs(5);
    let mut last = String::new();
    for attempt in 1..=5u32 {
        for url in &urls {
            let mut req = http
                .post(url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(body.clone());
            if let Some(id) = &ctx.config.global_request_id {
                req = req.header("X-OpenStack-Request-ID", id);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{url}: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap_or_default();
            if status.is_success() {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let uuid = v
                    .get("uuid")
                    .or_else(|| v.get("node").and_then(|n| n.get("uuid")))
                    .and_then(Value::as_str)
                    .map(String::from);
                info!(node = ?uuid, %url, "inspection data accepted");
                return Ok(uuid);
            }
            let fault = ironic_fault(&bytes);
            if status.is_server_error() || status == StatusCode::CONFLICT {
                last = format!("{url}: {status}: {fault}");
                break;
            }
            return Err(InspectionError::Post(format!(
                "{url}: error {status}: {fault}"
            )));
        }
        if attempt < 5 {
            warn!(attempt, error = %last, "inspection post failed, retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            wait = wait.mul_f64(1.5).min(Duration::from_secs(30));
        }
    }
    Err(InspectionError::Post(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootif_to_mac() {
        assert_eq!(bootif_mac("01-52-54-00-AB-cd-ef"), "52:54:00:ab:cd:ef");
        assert_eq!(bootif_mac("52:54:00:ab:cd:ef"), "52:54:00:ab:cd:ef");
    }
}
