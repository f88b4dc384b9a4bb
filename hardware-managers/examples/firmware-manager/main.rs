//! `firmware-manager`: an example vendor hardware manager for ironic-agent, speaking the
//! executable plug-in protocol (hardware-managers/README.md).
//!
//! * support level 3 (service provider) when its configuration file exists (0 otherwise);
//! * the `update_firmware` clean and service step: download by URL (http/https), verify the
//!   sha256/sha512 checksum, run the configured flasher, report the versions before and after;
//! * `get_system_vendor_info`: the DMI identification with `firmware.version` from the
//!   vendor's `version_command`, so the inventory shows that the plug-in outranks the generic
//!   manager;
//! * every other method: `IncompatibleHardwareMethodError`.
//!
//! See README.md next to this file for the configuration file and installation.

mod config;
mod download;
mod run;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use hardware_managers::{ArgInfo, Firmware, Step, SystemVendorInfo};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Config, expand};
use crate::download::Checksum;

/// The class name Ironic sees the steps under.
const CLASS_NAME: &str = "FirmwareHardwareManager";
/// The manager's name in the agent's version map.
const NAME: &str = "firmware_manager";
/// Largest request read from stdin.
const MAX_REQUEST: u64 = 64 << 20;

/// An error answered to the agent: `type` is [`PluginError::class`], `message` the text.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not implemented here: the agent asks the next manager.
    #[error("{0}")]
    Incompatible(String),
    /// Bad step arguments.
    #[error("{0}")]
    InvalidArgs(String),
    /// The configuration file is unusable.
    #[error("{0}")]
    Config(String),
    /// The firmware could not be downloaded.
    #[error("{0}")]
    Download(String),
    /// The firmware's checksum did not match.
    #[error("{0}")]
    Checksum(String),
    /// The flasher or the version command failed.
    #[error("{0}")]
    Flash(String),
}

impl PluginError {
    /// The error class name reported to the agent (and Ironic).
    fn class(&self) -> &'static str {
        match self {
            PluginError::Incompatible(_) => "IncompatibleHardwareMethodError",
            PluginError::InvalidArgs(_) => "InvalidCommandParamsError",
            PluginError::Config(_) => "HardwareManagerConfigurationError",
            PluginError::Download(_) => "FirmwareDownloadError",
            PluginError::Checksum(_) => "FirmwareChecksumError",
            PluginError::Flash(_) => "FirmwareUpdateError",
        }
    }
}

/// One request on stdin.
#[derive(Debug, Deserialize)]
struct Request {
    method: String,
    #[serde(default)]
    args: Value,
}

/// `steps` arguments (the node and ports are not needed).
#[derive(Debug, Deserialize)]
struct StepsArgs {
    kind: String,
}

/// `update_firmware` arguments (the agent adds `node` and `ports`, ignored here).
#[derive(Debug, Deserialize)]
struct UpdateArgs {
    url: String,
    checksum: String,
    #[serde(default)]
    component: Option<String>,
}

/// `update_firmware`'s result.
#[derive(Debug, serde::Serialize)]
struct UpdateResult {
    component: String,
    version_before: String,
    version_after: String,
    sha256: String,
}

fn main() -> ExitCode {
    // reqwest is built without a default crypto provider (as in the agent): install ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reply = match read_request().and_then(|r| handle(&r.method, &r.args)) {
        Ok(result) => json!({ "result": result }),
        Err(e) => {
            if !matches!(e, PluginError::Incompatible(_)) {
                eprintln!("firmware-manager: {}: {e}", e.class());
            }
            json!({ "error": { "type": e.class(), "message": e.to_string() } })
        }
    };
    println!("{reply}");
    ExitCode::SUCCESS
}

fn read_request() -> Result<Request, PluginError> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_REQUEST)
        .read_to_string(&mut text)
        .map_err(|e| PluginError::InvalidArgs(format!("cannot read the request: {e}")))?;
    let mut request: Request = serde_json::from_str(&text)
        .map_err(|e| PluginError::InvalidArgs(format!("the request is not valid JSON: {e}")))?;
    // The agent also names the method in the environment; the two always agree.
    if let Ok(method) = std::env::var("IRONIC_AGENT_METHOD")
        && !method.is_empty()
    {
        request.method = method;
    }
    Ok(request)
}

/// The configuration, or "incompatible" when there is none (the plug-in is then inactive).
fn config(method: &str) -> Result<Config, PluginError> {
    let path = Config::path();
    Config::load(&path)?.ok_or_else(|| {
        PluginError::Incompatible(format!(
            "firmware-manager is not configured ({} does not exist), so it does not handle {method}",
            path.display()
        ))
    })
}

fn handle(method: &str, args: &Value) -> Result<Value, PluginError> {
    match method {
        "support" => Ok(json!(support()?)),
        "version" => Ok(json!({
            "name": NAME,
            "version": env!("CARGO_PKG_VERSION"),
            "class_name": CLASS_NAME,
        })),
        "steps" => {
            let a: StepsArgs = serde_json::from_value(args.clone())
                .map_err(|e| PluginError::InvalidArgs(format!("steps: {e}")))?;
            to_value(steps(&a.kind))
        }
        "get_system_vendor_info" => to_value(system_vendor_info(&config(method)?)),
        "update_firmware" => {
            let a: UpdateArgs = serde_json::from_value(args.clone())
                .map_err(|e| PluginError::InvalidArgs(format!("update_firmware: {e}")))?;
            to_value(update_firmware(&config(method)?, &a)?)
        }
        other => Err(PluginError::Incompatible(format!(
            "firmware-manager does not implement {other}"
        ))),
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, PluginError> {
    serde_json::to_value(v).map_err(|e| PluginError::Flash(format!("cannot encode a result: {e}")))
}

/// The configured level when the machine is one of ours, else 0.
fn support() -> Result<i64, PluginError> {
    let path = Config::path();
    let Some(config) = Config::load(&path)? else {
        eprintln!(
            "firmware-manager: {} does not exist: not taking part",
            path.display()
        );
        return Ok(0);
    };
    if !config.sys_vendors.is_empty() {
        let vendor = dmi(&config.dmi_dir, "sys_vendor");
        if !config
            .sys_vendors
            .iter()
            .any(|v| v.eq_ignore_ascii_case(&vendor))
        {
            eprintln!("firmware-manager: sys_vendor {vendor:?} is not ours: not taking part");
            return Ok(0);
        }
    }
    Ok(config.support)
}

/// `update_firmware` for clean and service steps; nothing for deploy.
fn steps(kind: &str) -> Vec<Step> {
    if kind == "deploy" {
        return Vec::new();
    }
    let arg = |description: &str, required: bool| ArgInfo {
        description: description.to_string(),
        required,
    };
    let argsinfo = BTreeMap::from([
        (
            "url".to_string(),
            arg("URL (http or https) of the firmware file", true),
        ),
        (
            "checksum".to_string(),
            arg(
                "Checksum of the firmware file: sha256:HEX or sha512:HEX; a mismatch fails \
                 the step without flashing",
                true,
            ),
        ),
        (
            "component".to_string(),
            arg(
                "Firmware component to flash (passed to the flasher as {component}); \
                 default from the configuration (usually bios)",
                false,
            ),
        ),
    ]);
    let mut step = Step::new("update_firmware", "management", 0);
    step.reboot_requested = true;
    step.abortable = Some(false);
    step.argsinfo = Some(argsinfo);
    vec![step]
}

/// One DMI attribute, trimmed; empty when absent.
fn dmi(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The installed version of `component`, from the vendor's version command.
fn installed_version(config: &Config, component: &str) -> Result<String, PluginError> {
    let argv = expand(&config.version_command, None, component);
    let ran = run::run(&argv, config.version_timeout()).map_err(PluginError::Flash)?;
    let version = ran.stdout.lines().next().unwrap_or("").trim().to_string();
    if !ran.success || version.is_empty() {
        return Err(PluginError::Flash(format!(
            "version_command for {component} failed ({}); stderr: {}",
            ran.status,
            ran.stderr.trim()
        )));
    }
    Ok(version)
}

/// DMI as the generic manager reads it, with the firmware version the vendor tool reports
/// (DMI's `bios_version` when the tool fails: the inventory must not fail for this).
fn system_vendor_info(config: &Config) -> SystemVendorInfo {
    let d = &config.dmi_dir;
    let version = installed_version(config, &config.default_component).unwrap_or_else(|e| {
        eprintln!("firmware-manager: {e}; reporting DMI's bios_version");
        dmi(d, "bios_version")
    });
    SystemVendorInfo {
        product_name: dmi(d, "product_name"),
        serial_number: dmi(d, "product_serial"),
        manufacturer: dmi(d, "sys_vendor"),
        firmware: Firmware {
            vendor: dmi(d, "bios_vendor"),
            version,
            build_date: dmi(d, "bios_date"),
        },
    }
}

fn update_firmware(config: &Config, a: &UpdateArgs) -> Result<UpdateResult, PluginError> {
    let url = reqwest::Url::parse(&a.url).map_err(|e| {
        PluginError::InvalidArgs(format!(
            "update_firmware: `url` {:?} is invalid: {e}",
            a.url
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PluginError::InvalidArgs(format!(
            "update_firmware: `url` must be http or https, got {}",
            url.scheme()
        )));
    }
    let checksum = Checksum::parse(&a.checksum)?;
    let component = match a.component.as_deref().map(str::trim) {
        None | Some("") => config.default_component.clone(),
        Some(c) => c.to_string(),
    };
    let version_before = installed_version(config, &component)?;
    let firmware = download::fetch(config, &url, &checksum)?;
    let argv = expand(&config.flasher, Some(firmware.path()), &component);
    eprintln!(
        "firmware-manager: flashing {component} from {} ({} bytes): {argv:?}",
        url, firmware.size
    );
    let ran = run::run(&argv, config.flash_timeout()).map_err(PluginError::Flash)?;
    if !ran.success {
        return Err(PluginError::Flash(format!(
            "flashing {component} failed ({}); stderr: {}",
            ran.status,
            ran.stderr.trim()
        )));
    }
    let version_after = installed_version(config, &component)?;
    eprintln!("firmware-manager: {component}: {version_before} -> {version_after}");
    Ok(UpdateResult {
        component,
        version_before,
        version_after,
        sha256: firmware.sha256.clone(),
    })
}
