//! The plug-in's configuration file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::PluginError;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/ironic-agent/firmware-manager.json";
/// Environment variable naming another configuration file.
pub const CONFIG_ENV: &str = "FIRMWARE_MANAGER_CONFIG";

/// `firmware-manager.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The flasher's argv; `{file}` becomes the downloaded file, `{component}` the component.
    pub flasher: Vec<String>,
    /// Prints the installed firmware version on stdout; `{component}` may appear in it.
    pub version_command: Vec<String>,
    /// Support level reported to the agent (3 = service provider).
    #[serde(default = "default_support")]
    pub support: i64,
    /// Only claim machines whose DMI `sys_vendor` is one of these (empty: any machine).
    #[serde(default)]
    pub sys_vendors: Vec<String>,
    /// The component when a step names none, and the one whose version the inventory shows.
    #[serde(default = "default_component")]
    pub default_component: String,
    /// Where firmware files are downloaded to (default: the temporary directory).
    #[serde(default)]
    pub download_dir: Option<PathBuf>,
    /// Largest firmware file accepted, in bytes.
    #[serde(default = "default_max_size")]
    pub max_size_bytes: u64,
    /// Extra CA certificates (PEM) for https URLs, added to the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Do not verify https certificates.
    #[serde(default)]
    pub insecure: bool,
    /// Limit for the whole download, in seconds.
    #[serde(default = "default_download_timeout")]
    pub download_timeout_secs: u64,
    /// Limit for one flasher run, in seconds.
    #[serde(default = "default_flash_timeout")]
    pub flash_timeout_secs: u64,
    /// Limit for one version_command run, in seconds.
    #[serde(default = "default_version_timeout")]
    pub version_timeout_secs: u64,
    /// The DMI directory (`/sys/class/dmi/id`; tests point it at a fake tree).
    #[serde(default = "default_dmi_dir")]
    pub dmi_dir: PathBuf,
}

fn default_support() -> i64 {
    3
}
fn default_component() -> String {
    "bios".into()
}
fn default_max_size() -> u64 {
    4 << 30
}
fn default_download_timeout() -> u64 {
    1800
}
fn default_flash_timeout() -> u64 {
    3600
}
fn default_version_timeout() -> u64 {
    60
}
fn default_dmi_dir() -> PathBuf {
    PathBuf::from("/sys/class/dmi/id")
}

impl Config {
    /// The configuration file to read: `$FIRMWARE_MANAGER_CONFIG`, else the default.
    pub fn path() -> PathBuf {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
    }

    /// Reads and checks `path`; `Ok(None)` when it does not exist (the plug-in then opts out).
    pub fn load(path: &Path) -> Result<Option<Config>, PluginError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(PluginError::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let config: Config = serde_json::from_str(&text)
            .map_err(|e| PluginError::Config(format!("{}: {e}", path.display())))?;
        config
            .check()
            .map_err(|e| PluginError::Config(format!("{}: {e}", path.display())))?;
        Ok(Some(config))
    }

    fn check(&self) -> Result<(), String> {
        if self.flasher.first().is_none_or(|p| p.is_empty()) {
            return Err("`flasher` must name a program".into());
        }
        if !self.flasher.iter().any(|a| a.contains("{file}")) {
            return Err("`flasher` must contain the {file} placeholder".into());
        }
        if self.version_command.first().is_none_or(|p| p.is_empty()) {
            return Err("`version_command` must name a program".into());
        }
        if self.default_component.is_empty() {
            return Err("`default_component` must not be empty".into());
        }
        Ok(())
    }

    /// The download directory.
    pub fn download_dir(&self) -> PathBuf {
        self.download_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// The download limit.
    pub fn download_timeout(&self) -> Duration {
        Duration::from_secs(self.download_timeout_secs.max(1))
    }

    /// The flasher limit.
    pub fn flash_timeout(&self) -> Duration {
        Duration::from_secs(self.flash_timeout_secs.max(1))
    }

    /// The version_command limit.
    pub fn version_timeout(&self) -> Duration {
        Duration::from_secs(self.version_timeout_secs.max(1))
    }
}

/// `argv` with `{file}` and `{component}` replaced.
pub fn expand(argv: &[String], file: Option<&Path>, component: &str) -> Vec<String> {
    argv.iter()
        .map(|a| {
            let a = a.replace("{component}", component);
            match file {
                Some(f) => a.replace("{file}", &f.display().to_string()),
                None => a,
            }
        })
        .collect()
}
