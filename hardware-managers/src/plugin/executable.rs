//! [`ExecutableManager`]: one plug-in executable seen as a [`HardwareManager`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tracing::debug;

use super::config::PluginConfig;
use super::protocol::{self, Reply, Request};
use crate::error::{HardwareError, HardwareResult};
use crate::inventory::{BlockDevice, BootInfo, Cpu, Memory, NetworkInterface, SystemVendorInfo};
use crate::manager::{HardwareManager, ManagerVersion, StepContext};
use crate::node::Node;
use crate::process::{self, Limits, RunError, truncated_text};
use crate::step::{Step, StepKind};
use crate::support::SupportLevel;

/// Methods of the protocol that are not steps: `execute_step` never forwards them.
pub const RESERVED_METHODS: &[&str] = &["support", "version", "steps", "initialize"];

/// How much stderr goes into an error message.
const STDERR_IN_ERRORS: usize = 4096;
/// How much stderr is kept from one call (all of it is logged at debug).
const STDERR_KEPT: usize = 64 << 10;

/// The `version` reply.
#[derive(Debug, Deserialize)]
struct VersionReply {
    name: String,
    version: String,
    #[serde(default)]
    class_name: Option<String>,
}

/// One `collect_system_logs` entry.
#[derive(Debug, Deserialize)]
struct LogFile {
    name: String,
    content: String,
}

/// A hardware manager implemented by an executable speaking the plug-in protocol (see the
/// [module documentation](super)). Support level and version are queried once, by
/// [`ExecutableManager::load`].
#[derive(Debug, Clone)]
pub struct ExecutableManager {
    path: PathBuf,
    file_name: String,
    class_name: String,
    support: SupportLevel,
    version: ManagerVersion,
    config: PluginConfig,
}

impl ExecutableManager {
    /// Asks the executable at `path` for its `support` level and `version`.
    pub fn load(path: &Path, config: PluginConfig) -> HardwareResult<Self> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut manager = ExecutableManager {
            path: path.to_path_buf(),
            class_name: file_name.clone(),
            file_name,
            support: SupportLevel::NONE,
            version: ManagerVersion {
                name: String::new(),
                version: String::new(),
            },
            config,
        };
        manager.support = SupportLevel(manager.query("support", json!({}))?);
        if manager.support.is_supported() {
            let v: VersionReply = manager.query("version", json!({}))?;
            if let Some(class) = v.class_name.filter(|c| !c.is_empty()) {
                manager.class_name = class;
            }
            manager.version = ManagerVersion {
                name: v.name,
                version: v.version,
            };
        }
        Ok(manager)
    }

    /// The executable.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `method` with `args` (a JSON object) and returns the plug-in's `result`.
    ///
    /// Errors: the plug-in's own error as `Incompatible` or `Ipa`; a crash, non-zero exit,
    /// timeout (the process group is killed) or malformed output as [`HardwareError::Plugin`].
    pub fn call(&self, method: &str, args: &Value, timeout: Duration) -> HardwareResult<Value> {
        let request = serde_json::to_vec(&Request { method, args })
            .map_err(|e| self.plugin_error(format!("cannot encode the {method} request: {e}")))?;
        let mut cmd = Command::new(&self.path);
        cmd.env("IRONIC_AGENT_METHOD", method);
        let limits = Limits {
            timeout,
            max_stdout: self.config.max_response_bytes,
            max_stderr: STDERR_KEPT,
        };
        debug!(plugin = %self.file_name, method, "calling plug-in");
        let finished = match process::run(cmd, Some(request), limits) {
            Ok(f) => f,
            Err(RunError::TimedOut { after, stderr }) => {
                self.log_stderr(method, &stderr.bytes);
                return Err(self.plugin_error(format!(
                    "method {method} timed out after {}s and was killed; stderr: {}",
                    after.as_secs_f64(),
                    truncated_text(&stderr.bytes, STDERR_IN_ERRORS)
                )));
            }
            Err(e) => return Err(self.plugin_error(format!("method {method}: {e}"))),
        };
        self.log_stderr(method, &finished.stderr.bytes);
        let stderr = truncated_text(&finished.stderr.bytes, STDERR_IN_ERRORS);
        if !finished.status.success() {
            return Err(self.plugin_error(format!(
                "method {method} failed ({}); stderr: {stderr}",
                finished.status
            )));
        }
        if finished.stdout.truncated {
            return Err(self.plugin_error(format!(
                "method {method}: response larger than {} bytes",
                self.config.max_response_bytes
            )));
        }
        match protocol::parse_reply(&finished.stdout.bytes) {
            Ok(Reply::Result(v)) => Ok(v),
            Ok(Reply::Error(e)) => Err(e.into_error(method)),
            Err(why) => Err(self.plugin_error(format!(
                "method {method}: {why} ({}); stderr: {stderr}",
                finished.status
            ))),
        }
    }

    /// [`call`](Self::call) with the query timeout, decoding the result as `T`.
    fn query<T: DeserializeOwned>(&self, method: &str, args: Value) -> HardwareResult<T> {
        let value = self.call(method, &args, self.config.query_timeout)?;
        serde_json::from_value(value).map_err(|e| {
            self.plugin_error(format!("method {method} returned an invalid result: {e}"))
        })
    }

    fn plugin_error(&self, message: String) -> HardwareError {
        HardwareError::Plugin {
            manager: self.file_name.clone(),
            message,
        }
    }

    fn log_stderr(&self, method: &str, stderr: &[u8]) {
        for line in String::from_utf8_lossy(stderr)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            debug!(plugin = %self.file_name, method, "stderr: {line}");
        }
    }
}

/// `{"node": ..., "ports": [...]}` for a step context.
fn context_args(ctx: &StepContext) -> Map<String, Value> {
    let mut args = Map::new();
    args.insert(
        "node".into(),
        serde_json::to_value(&ctx.node).unwrap_or(Value::Null),
    );
    args.insert(
        "ports".into(),
        serde_json::to_value(&ctx.ports).unwrap_or(Value::Null),
    );
    args
}

impl HardwareManager for ExecutableManager {
    fn class_name(&self) -> String {
        self.class_name.clone()
    }

    fn evaluate_hardware_support(&self) -> SupportLevel {
        self.support
    }

    /// Calls `initialize`; a plug-in that does not implement it (`Incompatible` or
    /// `HardwareManagerMethodNotFound`) needs no set-up.
    fn initialize(&self) -> HardwareResult<()> {
        match self.call("initialize", &json!({}), self.config.query_timeout) {
            Ok(_) => Ok(()),
            Err(e) if e.is_incompatible() || matches!(e, HardwareError::MethodNotFound(_)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn version(&self) -> ManagerVersion {
        self.version.clone()
    }

    fn list_network_interfaces(&self) -> HardwareResult<Vec<NetworkInterface>> {
        self.query("list_network_interfaces", json!({}))
    }

    fn get_cpus(&self) -> HardwareResult<Cpu> {
        self.query("get_cpus", json!({}))
    }

    fn get_memory(&self) -> HardwareResult<Memory> {
        self.query("get_memory", json!({}))
    }

    fn list_block_devices(&self, include_partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
        self.query(
            "list_block_devices",
            json!({ "include_partitions": include_partitions }),
        )
    }

    fn get_os_install_device(&self, node: Option<&Node>) -> HardwareResult<String> {
        self.query("get_os_install_device", json!({ "node": node }))
    }

    fn get_bmc_address(&self) -> HardwareResult<Option<String>> {
        self.query("get_bmc_address", json!({}))
    }

    fn get_bmc_v6address(&self) -> HardwareResult<Option<String>> {
        self.query("get_bmc_v6address", json!({}))
    }

    fn get_bmc_mac(&self) -> HardwareResult<Option<String>> {
        self.query("get_bmc_mac", json!({}))
    }

    fn get_boot_info(&self) -> HardwareResult<BootInfo> {
        self.query("get_boot_info", json!({}))
    }

    fn get_system_vendor_info(&self) -> HardwareResult<SystemVendorInfo> {
        self.query("get_system_vendor_info", json!({}))
    }

    fn get_hostname(&self) -> HardwareResult<String> {
        self.query("get_hostname", json!({}))
    }

    fn get_steps(&self, kind: StepKind, ctx: &StepContext) -> HardwareResult<Vec<Step>> {
        let mut args = context_args(ctx);
        args.insert("kind".into(), Value::String(kind.as_str().to_string()));
        self.query("steps", Value::Object(args))
    }

    /// Runs step `name` with `{"node", "ports", <args>}` under the step timeout. `node` and
    /// `ports` always come from the context; the reserved protocol methods are never run as
    /// steps.
    fn execute_step(
        &self,
        name: &str,
        ctx: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        if RESERVED_METHODS.contains(&name) {
            return Err(HardwareError::incompatible(name));
        }
        let mut merged = args.clone();
        merged.extend(context_args(ctx));
        self.call(name, &Value::Object(merged), self.config.step_timeout)
    }

    fn collect_system_logs(&self) -> HardwareResult<Vec<(String, Vec<u8>)>> {
        let files: Vec<LogFile> = self.query("collect_system_logs", json!({}))?;
        files
            .into_iter()
            .map(|f| match BASE64.decode(f.content.as_bytes()) {
                Ok(bytes) => Ok((f.name, bytes)),
                Err(e) => Err(self.plugin_error(format!(
                    "collect_system_logs: content of {} is not base64: {e}",
                    f.name
                ))),
            })
            .collect()
    }

    fn full_sync(&self) -> HardwareResult<()> {
        self.call("full_sync", &json!({}), self.config.query_timeout)
            .map(|_| ())
    }
}
