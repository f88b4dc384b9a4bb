//! The generic hardware manager: answers from /sys, /proc and standard tools.

use std::path::PathBuf;

use crate::manager::HardwareManager;
use crate::support::SupportLevel;

/// Settings of the generic manager.
#[derive(Debug, Clone)]
pub struct GenericConfig {
    /// Root of the filesystem to read (`/` in production; a temp tree in tests), under which
    /// `sys/`, `proc/`, `dev/` are looked up.
    pub root: PathBuf,
    /// The raw `BOOTIF` kernel parameter, reported as `boot.pxe_interface`.
    pub bootif: Option<String>,
    /// The disk guard's allow-list. When non-empty, loop devices named here are listed as disks
    /// (so they can be install targets in tests).
    pub allowed_devices: Vec<PathBuf>,
}

impl Default for GenericConfig {
    fn default() -> Self {
        GenericConfig { root: PathBuf::from("/"), bootif: None, allowed_devices: Vec::new() }
    }
}

/// IPA's `GenericHardwareManager` (`generic_hardware_manager`, version 1.2).
#[derive(Debug, Clone)]
pub struct GenericHardwareManager {
    config: GenericConfig,
}

impl GenericHardwareManager {
    /// A generic manager reading the system described by `config`.
    pub fn new(config: GenericConfig) -> Self {
        GenericHardwareManager { config }
    }

    /// The settings this manager was built with.
    pub fn config(&self) -> &GenericConfig {
        &self.config
    }
}

impl HardwareManager for GenericHardwareManager {
    fn class_name(&self) -> String {
        "GenericHardwareManager".to_string()
    }

    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
}
