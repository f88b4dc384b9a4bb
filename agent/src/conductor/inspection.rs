//! In-band inspection: collect the inventory and post it to the inspection callback.
//!
//! Collectors (`ipa-inspection-collectors`), every one IPA 13 ships: `default` (the
//! inventory), `logs`, `lldp` (`lldp_raw`), `extra-hardware` (`data`: hardware-detect's facts,
//! [`hardware_managers::extra`]), `pci-devices`, `numa-topology`, `dmi-decode`, `usb-devices`
//! (see [`hardware`]); see [`collectors`] for names IPA does not know.

pub mod collectors;
pub mod hardware;

use std::time::Duration;

use hardware_managers::generic::lldp::LldpRaw;
use hardware_managers::{BlockDevice, HardwareError, Inventory, NetworkInterface};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, error, info, warn};

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

/// What the `default` collector adds to [`InspectionData`].
#[derive(Debug, Clone, Serialize)]
pub struct DefaultData {
    /// The inventory.
    pub inventory: Inventory,
    /// The disk the no-hints rule picks (absent if none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<BlockDevice>,
    /// `inventory.boot.pxe_interface` (deprecated duplicate).
    pub boot_interface: Option<String>,
    /// Collectors and managers.
    pub configuration: InspectionConfiguration,
}

/// The body posted to the inspection callback.
#[derive(Debug, Clone, Serialize)]
pub struct InspectionData {
    /// `inventory`, `root_disk`, `boot_interface`, `configuration`; absent only when the
    /// collectors could not be loaded (then the body is `{"error": ...}` alone, as IPA's).
    #[serde(flatten)]
    pub default: Option<DefaultData>,
    /// `lldp` collector: interface name → `[[type, hex], ...]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lldp_raw: Option<LldpRaw>,
    /// `extra-hardware` collector: `hardware-detect`'s `[category, item, key, value]` facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<hardware_managers::extra::Facts>,
    /// Base64 tar.gz of logs (`logs` collector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// `pci_devices`, `numa_topology`, `dmi`, `usb_devices`.
    #[serde(flatten)]
    pub hardware: hardware::HardwareData,
    /// Collector errors, or null.
    pub error: Option<String>,
    /// The collectors could not be loaded (an unknown name): [`post`] still posts the error,
    /// then fails, as IPA does.
    #[serde(skip)]
    pub load_failed: bool,
}

impl InspectionData {
    /// IPA's body when loading the collectors failed: `{"error": "...* <failure>"}`.
    pub fn load_failure(failure: String) -> Self {
        InspectionData {
            default: None,
            lldp_raw: None,
            data: None,
            logs: None,
            hardware: hardware::HardwareData::default(),
            error: collectors::error_text(&[failure]),
            load_failed: true,
        }
    }
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
    /// The collectors could not be loaded; only the error was posted.
    #[error("{0}")]
    Collectors(String),
}

/// Runs the configured collectors, waiting first for the PXE NIC's address (today's
/// behaviour; see [`collect_with`]).
pub async fn collect(
    ctx: &std::sync::Arc<AgentContext>,
) -> Result<InspectionData, InspectionError> {
    collect_with(ctx, false).await
}

/// Runs the configured collectors after [`wait_for_dhcp`] (every interface when
/// `all_interfaces`: `ipa-inspection-dhcp-all-interfaces`).
pub async fn collect_with(
    ctx: &std::sync::Arc<AgentContext>,
    all_interfaces: bool,
) -> Result<InspectionData, InspectionError> {
    // As IPA: the collectors are loaded first; an unknown name fails them all, before
    // `default` could wait for DHCP.
    let unknown = collectors::unknown(&ctx.config.inspection_collectors);
    if !unknown.is_empty() {
        let failure = collectors::load_failure(&unknown);
        error!(%failure, "cannot load the inspection collectors; posting only the error");
        return Ok(InspectionData::load_failure(failure));
    }
    wait_for_dhcp(ctx, all_interfaces).await;
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
    let mut lldp_raw = None;
    let mut extra = None;
    let mut hw = hardware::HardwareData::default();
    let root = std::path::Path::new("/");
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
            // As IPA: `dispatch_to_managers('collect_lldp_data')`, whatever ipa-collect-lldp
            // says; the generic manager reuses LLDPDUs the inventory just received.
            "lldp" => match ctx
                .chain
                .dispatch("collect_lldp_data", |m| m.collect_lldp_data(None))
            {
                Ok(raw) => {
                    lldp_raw = Some(raw);
                    ran.push(name.clone());
                }
                Err(e) => errors.push(format!("collector lldp failed: {e}")),
            },
            "extra-hardware" => {
                // IPA passes `ipa-inspection-benchmarks` to `hardware-detect --benchmark`.
                let benchmarks = ctx.config.kernel.get("ipa-inspection-benchmarks");
                match hardware_managers::extra::Benchmark::parse_list(benchmarks.unwrap_or(""))
                    .and_then(|b| {
                        hardware_managers::extra::collect(
                            &hardware_managers::extra::Root::system(),
                            &b,
                        )
                    }) {
                    Ok(facts) => {
                        extra = Some(facts);
                        ran.push(name.clone());
                    }
                    Err(e) => errors.push(format!("failed to run hardware-detect utility: {e}")),
                }
            }
            "pci-devices" | "numa-topology" | "dmi-decode" | "usb-devices" => {
                hardware::collect(name, root, &mut hw, &mut errors);
                ran.push(name.clone());
            }
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
    Ok(InspectionData {
        default: Some(DefaultData {
            boot_interface: inventory.boot.pxe_interface.clone(),
            inventory,
            root_disk,
            configuration: InspectionConfiguration {
                collectors: ran,
                managers,
            },
        }),
        lldp_raw,
        data: extra,
        logs,
        hardware: hw,
        error: collectors::error_text(&errors),
        load_failed: false,
    })
}

/// How often [`wait_for_ipv4`] lists the interfaces again.
pub const DHCP_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Waits (bounded by `ipa-inspection-dhcp-wait-timeout`, 0 for no wait) until the interfaces
/// inspection needs have IPv4 addresses; see [`wait_for_ipv4`].
pub async fn wait_for_dhcp(ctx: &std::sync::Arc<AgentContext>, all_interfaces: bool) -> bool {
    let limit = ctx.config.inspection_dhcp_wait_timeout;
    let pxe_mac = ctx.config.bootif.as_deref().map(bootif_mac);
    wait_for_ipv4(
        limit,
        pxe_mac.as_deref(),
        all_interfaces,
        DHCP_RETRY_INTERVAL,
        || {
            let c = ctx.clone();
            async move {
                tokio::task::spawn_blocking(move || c.chain.list_network_interfaces())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        },
    )
    .await
}

/// Which listed interfaces still lack an IPv4 address. With `all_interfaces`, every one
/// (IPA's `inspection_dhcp_all_interfaces`); otherwise the one whose MAC is `pxe_mac`
/// (`BOOTIF`) or, without `BOOTIF`, any one (none is missing once one has an address).
pub fn missing_ipv4(
    nics: &[NetworkInterface],
    pxe_mac: Option<&str>,
    all_interfaces: bool,
) -> Vec<String> {
    if all_interfaces {
        return nics
            .iter()
            .filter(|n| n.ipv4_address.is_none())
            .map(|n| n.name.clone())
            .collect();
    }
    let wanted: Vec<&NetworkInterface> = nics
        .iter()
        .filter(|n| pxe_mac.is_none_or(|mac| n.mac_address.eq_ignore_ascii_case(mac)))
        .collect();
    if wanted.iter().any(|n| n.ipv4_address.is_some()) {
        return Vec::new();
    }
    match (wanted.is_empty(), pxe_mac) {
        (true, Some(mac)) => vec![mac.to_string()],
        (true, None) => vec!["(any interface)".to_string()],
        (false, _) => wanted.iter().map(|n| n.name.clone()).collect(),
    }
}

/// Lists the interfaces (`list`, `None` when listing failed) every `interval` until none is
/// [`missing_ipv4`] or `timeout` passed (a zero timeout does not wait at all). Returns whether
/// the addresses came; a timeout is logged with the interfaces still missing one.
pub async fn wait_for_ipv4<F, Fut>(
    timeout: Duration,
    pxe_mac: Option<&str>,
    all_interfaces: bool,
    interval: Duration,
    mut list: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Vec<NetworkInterface>>>,
{
    if timeout.is_zero() {
        return true;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let missing = match list().await {
            Some(nics) => missing_ipv4(&nics, pxe_mac, all_interfaces),
            None => vec!["(listing the interfaces failed)".to_string()],
        };
        if missing.is_empty() {
            return true;
        }
        debug!(
            ?missing,
            "still waiting for interfaces to get IPv4 addresses"
        );
        if tokio::time::Instant::now() >= deadline {
            warn!(
                ?missing,
                "not all network interfaces received IPv4 addresses in {timeout:?}; inspecting anyway"
            );
            return false;
        }
        tokio::time::sleep(interval).await;
    }
}

/// `01-aa-bb-cc-dd-ee-ff` → `aa:bb:cc:dd:ee:ff`.
pub fn bootif_mac(bootif: &str) -> String {
    let s = bootif.strip_prefix("01-").unwrap_or(bootif);
    s.replace('-', ":").to_ascii_lowercase()
}

/// Posts `data` to each URL in order (moving on after connection errors), retrying up to 5
/// attempts (waits ×1.5 from 5 s, at most 30 s) on connection errors, 5xx and 409. Returns the
/// node UUID Ironic answered with. When the collectors could not be loaded
/// ([`InspectionData::load_failed`]) the error is posted all the same and the result is
/// [`InspectionError::Collectors`], as IPA re-raises after posting.
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
                if data.load_failed {
                    return Err(InspectionError::Collectors(
                        data.error.clone().unwrap_or_default(),
                    ));
                }
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

    fn nic(name: &str, mac: &str, ip: Option<&str>) -> NetworkInterface {
        NetworkInterface {
            name: name.into(),
            mac_address: mac.into(),
            ipv4_address: ip.map(String::from),
            ipv6_address: None,
            has_carrier: true,
            lldp: None,
            vendor: None,
            product: None,
            client_id: None,
            biosdevname: None,
            speed_mbps: None,
            pci_address: None,
            driver: None,
        }
    }

    #[test]
    fn which_interfaces_are_missing_an_address() {
        let nics = [
            nic("eth0", "52:54:00:00:00:01", Some("192.0.2.5")),
            nic("eth1", "52:54:00:00:00:02", None),
        ];
        // The PXE NIC only.
        assert!(missing_ipv4(&nics, Some("52:54:00:00:00:01"), false).is_empty());
        assert_eq!(
            missing_ipv4(&nics, Some("52:54:00:00:00:02"), false),
            ["eth1"]
        );
        assert_eq!(
            missing_ipv4(&nics, Some("52:54:00:00:00:09"), false),
            ["52:54:00:00:00:09"]
        );
        // No BOOTIF: any NIC with an address will do (this agent's rule; IPA does not wait).
        assert!(missing_ipv4(&nics, None, false).is_empty());
        assert_eq!(missing_ipv4(&[], None, false), ["(any interface)"]);
        // All interfaces, BOOTIF or not.
        assert_eq!(
            missing_ipv4(&nics, Some("52:54:00:00:00:01"), true),
            ["eth1"]
        );
        assert_eq!(missing_ipv4(&nics, None, true), ["eth1"]);
        assert!(missing_ipv4(&nics[..1], None, true).is_empty());
    }

    #[tokio::test]
    async fn waits_for_every_interface_when_asked() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let list = || {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let second = (n >= 2).then_some("192.0.2.6");
            async move {
                Some(vec![
                    nic("eth0", "52:54:00:00:00:01", Some("192.0.2.5")),
                    nic("eth1", "52:54:00:00:00:02", second),
                ])
            }
        };
        let t = Duration::from_secs(5);
        let ms = Duration::from_millis(10);
        assert!(wait_for_ipv4(t, Some("52:54:00:00:00:01"), false, ms, list).await);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(wait_for_ipv4(t, Some("52:54:00:00:00:01"), true, ms, list).await);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// A manager that counts how often the interfaces were listed.
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl hardware_managers::HardwareManager for Counting {
        fn class_name(&self) -> String {
            "GenericHardwareManager".into()
        }
        fn evaluate_hardware_support(&self) -> hardware_managers::SupportLevel {
            hardware_managers::SupportLevel::GENERIC
        }
        fn list_network_interfaces(
            &self,
        ) -> hardware_managers::HardwareResult<Vec<NetworkInterface>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(vec![nic("eth0", "52:54:00:00:00:01", Some("192.0.2.5"))])
        }
    }

    /// Answers one POST on 127.0.0.1 with 200 `{"uuid": "node-1"}`; returns its URL and the
    /// body it received.
    fn one_post_server() -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
        use std::io::{BufRead, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/continue", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((conn, _)) = listener.accept() else {
                return;
            };
            let mut reader = std::io::BufReader::new(&conn);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(body);
            let answer = br#"{"uuid": "node-1"}"#;
            let mut conn = &conn;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            );
            let _ = conn.write_all(answer);
        });
        (url, rx)
    }

    /// IPA 13: an unknown collector name fails loading; no collector runs (no DHCP wait, no
    /// inventory), only `{"error": ...}` is posted, and inspection fails (lookup follows).
    #[tokio::test]
    async fn unknown_collector_posts_only_the_error_and_fails() {
        use clap::Parser;
        let (url, bodies) = one_post_server();
        let flags = crate::config::Flags::parse_from(["ironic-agent"]);
        let params = crate::config::KernelParams::parse(&format!(
            "ipa-inspection-callback-url={url} ipa-inspection-collectors=default,foo,logs"
        ));
        let config = crate::config::Config::from_parts(&flags, params).unwrap();
        let listed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let chain =
            hardware_managers::Chain::new(vec![std::sync::Arc::new(Counting(listed.clone()))
                as std::sync::Arc<dyn hardware_managers::HardwareManager>])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = std::sync::Arc::new(AgentContext::new(
            config,
            chain,
            std::sync::Arc::new(crate::power::RecordingPower::new(&dir.path().join("power"))),
            crate::logbuf::LogBuffer::new(16),
        ));
        let data = collect_with(&ctx, true).await.unwrap();
        let expected = serde_json::json!({
            "error": "The following errors were encountered:\n* Failed to load collector {'foo'}"
        });
        assert_eq!(serde_json::to_value(&data).unwrap(), expected);
        let err = post(&ctx, &data).await.unwrap_err();
        assert!(matches!(err, InspectionError::Collectors(_)), "{err}");
        assert!(err.to_string().contains("Failed to load collector {'foo'}"));
        let posted: Value = serde_json::from_slice(&bodies.recv().unwrap()).unwrap();
        assert_eq!(posted, expected);
        assert_eq!(listed.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn lldp_raw_shape() {
        let mut raw = LldpRaw::new();
        raw.insert(
            "eth0".into(),
            vec![
                (1, "04525400123456".into()),
                (3, "0078".into()),
                (0, String::new()),
            ],
        );
        raw.insert("eth1".into(), Vec::new());
        let data = InspectionData {
            default: None,
            lldp_raw: Some(raw),
            data: None,
            logs: None,
            hardware: hardware::HardwareData::default(),
            error: None,
            load_failed: false,
        };
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            serde_json::json!({
                "lldp_raw": {
                    "eth0": [[1, "04525400123456"], [3, "0078"], [0, ""]],
                    "eth1": [],
                },
                "error": null,
            })
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_timeout_and_zero_does_not_wait() {
        let started = std::time::Instant::now();
        let never = || async { Some(vec![nic("eth0", "52:54:00:00:00:01", None)]) };
        let ms = Duration::from_millis(20);
        assert!(!wait_for_ipv4(Duration::from_millis(100), None, true, ms, never).await);
        assert!(started.elapsed() >= Duration::from_millis(100));
        let failing = || async { None };
        assert!(!wait_for_ipv4(Duration::from_millis(50), None, false, ms, failing).await);
        assert!(wait_for_ipv4(Duration::ZERO, None, true, ms, never).await);
    }
}
