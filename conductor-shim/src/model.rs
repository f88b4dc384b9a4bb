//! The typed records the shim stores: nodes, ports and the well-known parts of
//! `driver_internal_info`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::ProvisionState;

/// A free-form JSON object as Ironic keeps in `properties`, `instance_info`, ... .
pub type JsonMap = Map<String, Value>;

/// A node's power state as Ironic names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    /// `power on`.
    #[serde(rename = "power on")]
    On,
    /// `power off`.
    #[serde(rename = "power off")]
    Off,
}

/// A bare-metal node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Primary key.
    pub uuid: Uuid,
    /// Optional unique name (never shaped like a UUID).
    pub name: Option<String>,
    /// Provision state.
    pub provision_state: ProvisionState,
    /// Power state, when known (the shim has no BMC access and usually does not know).
    pub power_state: Option<PowerState>,
    /// `properties` (root_device hints, capabilities, ...).
    pub properties: JsonMap,
    /// `instance_info` (image source, ...).
    pub instance_info: JsonMap,
    /// `driver_info` (BMC address, ...).
    pub driver_info: JsonMap,
    /// `driver_internal_info`: agent session data and cached steps.
    pub driver_internal_info: DriverInternalInfo,
    /// The inventory posted by the agent's inspection, if any.
    pub inventory: Option<Value>,
    /// The rest of the inspection data (Ironic's "plugin data").
    pub inspection_data: Option<JsonMap>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Time of the last change.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Where the running operation leads (`available` for automated cleaning, `manageable`
    /// for manual cleaning), as Ironic's `target_provision_state`.
    #[serde(default)]
    pub target_provision_state: Option<ProvisionState>,
    /// The clean step being run (Ironic's `node.clean_step`).
    #[serde(default)]
    pub clean_step: Option<Step>,
    /// The RAID configuration wanted by `raid.create_configuration` (Ironic's
    /// `node.target_raid_config`).
    #[serde(default)]
    pub target_raid_config: JsonMap,
    /// The RAID configuration built by the last `raid.create_configuration` (Ironic's
    /// `node.raid_config`, with `last_updated`).
    #[serde(default)]
    pub raid_config: JsonMap,
    /// The node must never be powered off (Ironic's `node.disable_power_off`): a deploy ends
    /// with `system.lockdown` instead of `standby.power_off`.
    #[serde(default)]
    pub disable_power_off: bool,
}

/// A port (a NIC) of a node, identified by its MAC address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Primary key.
    pub uuid: Uuid,
    /// The node this port belongs to.
    pub node_uuid: Uuid,
    /// Lower-case, colon-separated MAC address (unique).
    pub address: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One step as reported by the agent's `get_*_steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Interface (`deploy`, `raid`, `bios`, ...).
    pub interface: String,
    /// Step name.
    pub step: String,
    /// Priority (0 = manual only).
    pub priority: i64,
    /// `reboot_requested`, `abortable`, `argsinfo`, `requires_ramdisk`, ...
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Step {
    /// `interface.step` with `priority` and no other keys.
    pub fn new(interface: &str, step: &str, priority: i64) -> Step {
        Step {
            interface: interface.to_string(),
            step: step.to_string(),
            priority,
            extra: JsonMap::new(),
        }
    }
}

/// Steps cached from the agent, grouped by interface (as Ironic stores them).
pub type CachedSteps = BTreeMap<String, Vec<Step>>;

/// `driver_internal_info`: the keys the shim reads and writes, plus anything else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriverInternalInfo {
    /// The agent's callback URL (from its first heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_url: Option<String>,
    /// The agent token handed out at lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_secret_token: Option<String>,
    /// The agent's reported version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Time of the last accepted heartbeat.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_last_heartbeat: Option<OffsetDateTime>,
    /// The PEM certificate the agent sent as `agent_verify_ca` (its auto-TLS certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_verify_ca: Option<String>,
    /// Number of accepted heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_heartbeat_count: Option<u64>,
    /// Hardware-manager versions reported with the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_manager_version: Option<BTreeMap<String, Value>>,
    /// Cached deploy steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_cached_deploy_steps: Option<CachedSteps>,
    /// When the deploy steps were cached.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_cached_deploy_steps_refreshed: Option<OffsetDateTime>,
    /// Cached clean steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_cached_clean_steps: Option<CachedSteps>,
    /// When the clean steps were cached.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_cached_clean_steps_refreshed: Option<OffsetDateTime>,
    /// Cached service steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_cached_service_steps: Option<CachedSteps>,
    /// When the service steps were cached.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_cached_service_steps_refreshed: Option<OffsetDateTime>,
    /// Where a deploy requested with `conductor-shim deploy` stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_phase: Option<DeployPhase>,
    /// The deploy steps to run, in order (Ironic's `driver_internal_info.deploy_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_steps: Option<Vec<Step>>,
    /// Index into `deploy_steps` of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_step_index: Option<usize>,
    /// The current deploy step (Ironic keeps it in `node.deploy_step`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_step: Option<Step>,
    /// Progress of the running in-band step as last reported by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_progress: Option<DeployProgress>,
    /// `deploy_result` of the agent's `write_image` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_result: Option<Value>,
    /// Non-fatal problems of the last deploy (e.g. a skipped bootloader installation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploy_warnings: Vec<String>,
    /// `root uuid` from `standby.get_partition_uuids` (a filesystem UUID for partition
    /// images, the MBR disk identifier for whole-disk images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_uuid_or_disk_id: Option<String>,
    /// `efi system partition uuid` from `standby.get_partition_uuids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efi_system_partition_uuid: Option<String>,
    /// Whether the deployed image is a whole-disk image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_whole_disk_image: Option<bool>,
    /// Where cleaning requested with `conductor-shim node provide` / `clean` stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_phase: Option<CleanPhase>,
    /// The steps of a manual cleaning as the operator gave them (absent for automated
    /// cleaning); resolved against the agent's steps when cleaning starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_clean_steps: Option<Vec<RequestedStep>>,
    /// The clean steps to run, in order (Ironic's `driver_internal_info.clean_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_steps: Option<Vec<Step>>,
    /// Index into `clean_steps` of the current step (Ironic's `clean_step_index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_step_index: Option<usize>,
    /// Progress of the running clean step as last reported by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_progress: Option<DeployProgress>,
    /// How often cleaning restarted after a hardware-manager version mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_restarts: Option<u32>,
    /// How many commands the agent listed when the conductor last looked, before it sent the
    /// current deploy or clean step: if the agent received that step, its
    /// `execute_*_step` comes after them. A shim restarted between sending the step and
    /// recording the answer (phase `step_running`) finds it there and does not send it
    /// again. Cleared when a plan starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_commands_seen: Option<usize>,
    /// Every other key.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The phase of a deploy driven by the shim, stored in `driver_internal_info.deploy_phase` so
/// that a restarted shim resumes where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployPhase {
    /// Requested by the CLI; starts on the agent's next heartbeat (node `wait call-back`).
    Requested,
    /// The conductor is starting `deploy_steps[deploy_step_index]` (node `deploying`; after a
    /// busy agent also `wait call-back`, retried on the next heartbeat).
    StepRunning,
    /// `deploy.execute_deploy_step` was accepted; the result is checked on each heartbeat
    /// (node `wait call-back`).
    AgentStep,
    /// `image.install_bootloader` was sent and is being polled (node `deploying`).
    InstallBootloader,
    /// `standby.power_off` is being sent (node `deploying`).
    PowerOff,
    /// Finished (node `active`).
    Done,
    /// Failed (node `deploy failed`, see `last_error`).
    Failed,
}

impl DeployPhase {
    /// Whether a deploy in this phase still needs work.
    pub fn in_progress(self) -> bool {
        !matches!(self, DeployPhase::Done | DeployPhase::Failed)
    }

    /// The wire name (`agent_step`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeployPhase::Requested => "requested",
            DeployPhase::StepRunning => "step_running",
            DeployPhase::AgentStep => "agent_step",
            DeployPhase::InstallBootloader => "install_bootloader",
            DeployPhase::PowerOff => "power_off",
            DeployPhase::Done => "done",
            DeployPhase::Failed => "failed",
        }
    }
}

/// The phase of cleaning driven by the shim, stored in `driver_internal_info.clean_phase` so
/// that a restarted shim resumes where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanPhase {
    /// Requested by the CLI; starts on the agent's next heartbeat (node `clean wait`).
    Requested,
    /// The conductor is starting `clean_steps[clean_step_index]` (node `cleaning`; after a
    /// busy agent also `clean wait`, retried on the next heartbeat).
    StepRunning,
    /// `clean.execute_clean_step` was accepted; the result is checked on each heartbeat
    /// (node `clean wait`).
    AgentStep,
    /// All steps are done; `standby.power_off` is being sent (node `cleaning`).
    PowerOff,
    /// Finished (node `available` or `manageable`).
    Done,
    /// Failed (node `clean failed`, see `last_error`).
    Failed,
}

impl CleanPhase {
    /// Whether cleaning in this phase still needs work.
    pub fn in_progress(self) -> bool {
        !matches!(self, CleanPhase::Done | CleanPhase::Failed)
    }

    /// The wire name (`agent_step`).
    pub fn as_str(self) -> &'static str {
        match self {
            CleanPhase::Requested => "requested",
            CleanPhase::StepRunning => "step_running",
            CleanPhase::AgentStep => "agent_step",
            CleanPhase::PowerOff => "power_off",
            CleanPhase::Done => "done",
            CleanPhase::Failed => "failed",
        }
    }
}

/// A clean step as the operator asked for it (`conductor-shim clean --step`): the interface
/// may be left to be found in the agent's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedStep {
    /// Interface (`deploy`, `raid`, ...); `None`: the agent's step of that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Step name.
    pub step: String,
    /// Arguments (`None`: no `args` key is sent, as with Ironic's API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<JsonMap>,
}

/// The `progress` object the agent puts into a RUNNING `execute_deploy_step` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployProgress {
    /// Pipeline stage (`starting`, `writing`, `spooling`, `converting`, `verifying`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Bytes written to the target disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// Bytes received from the image server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_downloaded: Option<u64>,
    /// Expected download size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Average download rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bytes_per_s: Option<f64>,
    /// Seconds since the write started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<f64>,
    /// Any other key the agent reports.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl DriverInternalInfo {
    /// Forgets the agent session (token, URL, certificate, version, heartbeats), as Ironic
    /// does when it boots a node into a new ramdisk.
    pub fn reset_agent(&mut self) {
        self.agent_url = None;
        self.agent_secret_token = None;
        self.agent_version = None;
        self.agent_last_heartbeat = None;
        self.agent_verify_ca = None;
        self.agent_heartbeat_count = None;
        self.agent_commands_seen = None;
        self.clear_cached_steps();
    }

    /// Forgets the agent's token, URL and certificate (Ironic's `wipe_token_and_url`): the
    /// next ramdisk boot must look up again.
    pub fn wipe_token_and_url(&mut self) {
        self.agent_secret_token = None;
        self.agent_url = None;
        self.agent_verify_ca = None;
    }

    /// Forgets everything about a previous deploy (Ironic's `wipe_deploy_internal_info`
    /// plus the shim's own deploy keys).
    pub fn wipe_deploy_info(&mut self) {
        self.deploy_phase = None;
        self.deploy_steps = None;
        self.deploy_step_index = None;
        self.deploy_step = None;
        self.deploy_progress = None;
        self.deploy_result = None;
        self.deploy_warnings.clear();
        self.root_uuid_or_disk_id = None;
        self.efi_system_partition_uuid = None;
        self.is_whole_disk_image = None;
        self.agent_commands_seen = None;
        self.agent_cached_deploy_steps = None;
        self.agent_cached_deploy_steps_refreshed = None;
    }

    /// Forgets everything about a previous cleaning (Ironic's `wipe_cleaning_internal_info`
    /// without the token: the shim cannot boot a new ramdisk, so the agent session stays).
    pub fn wipe_clean_info(&mut self) {
        self.clean_phase = None;
        self.requested_clean_steps = None;
        self.clean_steps = None;
        self.clean_step_index = None;
        self.clean_progress = None;
        self.clean_restarts = None;
        self.agent_commands_seen = None;
        self.agent_cached_clean_steps = None;
        self.agent_cached_clean_steps_refreshed = None;
    }

    /// Forgets cached steps (they belong to one operation).
    pub fn clear_cached_steps(&mut self) {
        self.hardware_manager_version = None;
        self.agent_cached_deploy_steps = None;
        self.agent_cached_deploy_steps_refreshed = None;
        self.agent_cached_clean_steps = None;
        self.agent_cached_clean_steps_refreshed = None;
        self.agent_cached_service_steps = None;
        self.agent_cached_service_steps_refreshed = None;
    }
}

/// What is needed to create a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNode {
    /// UUID; generated when `None`.
    pub uuid: Option<Uuid>,
    /// Optional unique name.
    pub name: Option<String>,
    /// Initial provision state.
    pub provision_state: ProvisionState,
    /// `properties`.
    pub properties: JsonMap,
    /// `instance_info`.
    pub instance_info: JsonMap,
    /// `driver_info`.
    pub driver_info: JsonMap,
    /// MAC addresses to create ports for.
    pub macs: Vec<String>,
    /// Ironic's `disable_power_off`.
    pub disable_power_off: bool,
}

impl Default for NewNode {
    fn default() -> Self {
        NewNode {
            uuid: None,
            name: None,
            provision_state: ProvisionState::Enroll,
            properties: JsonMap::new(),
            instance_info: JsonMap::new(),
            driver_info: JsonMap::new(),
            macs: Vec::new(),
            disable_power_off: false,
        }
    }
}

/// Checks a node name the way Ironic does in spirit: non-empty, at most 255 characters of
/// `[A-Za-z0-9._~-]`, and not parseable as a UUID (which would make lookups ambiguous).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!(
            "invalid node name {name:?}: must be 1 to 255 characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
    {
        return Err(format!(
            "invalid node name {name:?}: only letters, digits and . _ ~ - are allowed"
        ));
    }
    if Uuid::parse_str(name).is_ok() {
        return Err(format!(
            "invalid node name {name:?}: a name cannot be a UUID"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn driver_internal_info_keeps_unknown_keys() {
        let v = json!({
            "agent_url": "https://1.2.3.4:9999",
            "agent_last_heartbeat": "2026-01-02T03:04:05Z",
            "agent_cached_deploy_steps": {"deploy": [{"interface": "deploy", "step": "write_image", "priority": 80, "abortable": false}]},
            "some_driver_key": [1]
        });
        let dii: DriverInternalInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(dii.agent_url.as_deref(), Some("https://1.2.3.4:9999"));
        assert_eq!(dii.extra["some_driver_key"], json!([1]));
        let steps = dii.agent_cached_deploy_steps.as_ref().unwrap();
        assert_eq!(steps["deploy"][0].priority, 80);
        assert_eq!(serde_json::to_value(&dii).unwrap(), v);
    }

    #[test]
    fn cleaning_keys_round_trip() {
        let v = json!({
            "clean_phase": "agent_step",
            "requested_clean_steps": [{"step": "erase_devices"},
                                      {"interface": "raid", "step": "create_configuration", "args": {}}],
            "clean_steps": [{"interface": "deploy", "step": "erase_devices", "priority": 10, "abortable": true}],
            "clean_step_index": 0,
            "clean_restarts": 1
        });
        let dii: DriverInternalInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(dii.clean_phase, Some(CleanPhase::AgentStep));
        assert!(dii.clean_phase.unwrap().in_progress());
        assert!(!CleanPhase::Done.in_progress() && !CleanPhase::Failed.in_progress());
        let requested = dii.requested_clean_steps.as_ref().unwrap();
        assert_eq!(requested[0].interface, None);
        assert_eq!(requested[1].args, Some(JsonMap::new()));
        assert_eq!(serde_json::to_value(&dii).unwrap(), v);
        let mut dii = dii;
        dii.wipe_clean_info();
        assert_eq!(serde_json::to_value(&dii).unwrap(), json!({}));
    }

    #[test]
    fn names() {
        assert!(validate_name("node-1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("8c2e0381-7dd8-49bb-aea8-47445bf88872").is_err());
    }
}
