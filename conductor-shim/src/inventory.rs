//! A typed, lenient view of the hardware inventory posted by inspection, for display.
//!
//! The stored inventory stays exactly what the agent sent; this module only reads the
//! fields an operator wants at a glance (CPU, memory, disks, NICs, BMC).

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The inventory fields shown by `node show`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Inventory {
    /// CPU.
    pub cpu: Option<Cpu>,
    /// Memory.
    pub memory: Option<Memory>,
    /// Disks.
    pub disks: Vec<Disk>,
    /// NICs.
    pub interfaces: Vec<Interface>,
    /// BMC IPv4 address.
    pub bmc_address: Option<String>,
    /// BMC IPv6 address.
    pub bmc_v6address: Option<String>,
    /// Vendor data.
    pub system_vendor: Option<SystemVendor>,
    /// Boot information.
    pub boot: Option<Boot>,
    /// Host name.
    pub hostname: Option<String>,
}

/// `inventory.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// Model name.
    pub model_name: Option<String>,
    /// Logical CPU count.
    #[serde(deserialize_with = "lenient_u64")]
    pub count: Option<u64>,
    /// Architecture (`x86_64`).
    pub architecture: Option<String>,
    /// Sockets.
    #[serde(deserialize_with = "lenient_u64")]
    pub socket_count: Option<u64>,
}

/// `inventory.memory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Usable bytes.
    #[serde(deserialize_with = "lenient_u64")]
    pub total: Option<u64>,
    /// Installed MiB.
    #[serde(deserialize_with = "lenient_u64")]
    pub physical_mb: Option<u64>,
}

/// One of `inventory.disks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// Device path.
    pub name: Option<String>,
    /// Bytes.
    #[serde(deserialize_with = "lenient_u64")]
    pub size: Option<u64>,
    /// Model.
    pub model: Option<String>,
    /// Spinning?
    pub rotational: Option<bool>,
    /// Serial number.
    pub serial: Option<String>,
}

/// One of `inventory.interfaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Interface {
    /// Interface name.
    pub name: Option<String>,
    /// MAC address.
    pub mac_address: Option<String>,
    /// IPv4 address.
    pub ipv4_address: Option<String>,
    /// Link up?
    pub has_carrier: Option<bool>,
}

/// `inventory.system_vendor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemVendor {
    /// Product.
    pub product_name: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
}

/// `inventory.boot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Boot {
    /// `uefi` or `bios`.
    pub current_boot_mode: Option<String>,
    /// PXE interface.
    pub pxe_interface: Option<String>,
}

impl Inventory {
    /// Reads the summary fields from a stored inventory.
    pub fn from_value(value: &Value) -> Result<Inventory, serde_json::Error> {
        Inventory::deserialize(value)
    }

    /// `(label, text)` lines: cpu, memory, disks, nics, bmc, system, boot.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let mut lines = Vec::new();
        if let Some(cpu) = &self.cpu {
            let mut text = format!(
                "{} x {}",
                cpu.count.map_or("?".to_string(), |c| c.to_string()),
                cpu.architecture.as_deref().unwrap_or("?")
            );
            if let Some(model) = cpu.model_name.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(" ({model})"));
            }
            lines.push(("cpu", text));
        }
        if let Some(memory) = &self.memory {
            let mut text = memory.total.map_or("?".to_string(), human_bytes);
            if let Some(mb) = memory.physical_mb.filter(|mb| *mb > 0) {
                text.push_str(&format!(" (physical {mb} MiB)"));
            }
            lines.push(("memory", text));
        }
        let disks: Vec<String> = self
            .disks
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d.name.as_deref().unwrap_or("?"),
                    d.size.map_or("?".to_string(), human_bytes)
                )
            })
            .collect();
        lines.push((
            "disks",
            if disks.is_empty() {
                "none".into()
            } else {
                disks.join(", ")
            },
        ));
        let nics: Vec<String> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut text = format!(
                    "{} {}",
                    i.name.as_deref().unwrap_or("?"),
                    i.mac_address.as_deref().unwrap_or("?")
                );
                if let Some(ip) = i.ipv4_address.as_deref() {
                    text.push_str(&format!(" {ip}"));
                }
                text
            })
            .collect();
        lines.push((
            "nics",
            if nics.is_empty() {
                "none".into()
            } else {
                nics.join(", ")
            },
        ));
        let bmc: Vec<&str> = [self.bmc_address.as_deref(), self.bmc_v6address.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !bmc.is_empty() {
            lines.push(("bmc", bmc.join(", ")));
        }
        if let Some(vendor) = &self.system_vendor {
            let parts: Vec<&str> = [
                vendor.manufacturer.as_deref(),
                vendor.product_name.as_deref(),
                vendor.serial_number.as_deref(),
            ]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
            if !parts.is_empty() {
                lines.push(("system", parts.join(" ")));
            }
        }
        if let Some(mode) = self
            .boot
            .as_ref()
            .and_then(|b| b.current_boot_mode.as_deref())
        {
            lines.push(("boot mode", mode.to_string()));
        }
        lines
    }
}

/// `1073741824` → `1.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Accepts a number, a numeric string, or null.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summarises_ipa_inventory() {
        let inv = Inventory::from_value(&json!({
            "interfaces": [{"name": "eth0", "mac_address": "02:fc:00:00:00:01", "ipv4_address": "192.0.2.2"}],
            "cpu": {"model_name": "AMD EPYC", "frequency": "", "count": 2, "architecture": "x86_64"},
            "disks": [{"name": "/dev/vda", "size": 274877906944u64, "rotational": true}],
            "memory": {"total": "4294967296", "physical_mb": 4096},
            "bmc_address": null,
            "boot": {"current_boot_mode": "bios", "pxe_interface": null},
            "unknown": 1
        }))
        .unwrap();
        let summary = inv.summary();
        let get = |k: &str| summary.iter().find(|(l, _)| *l == k).unwrap().1.clone();
        assert_eq!(get("cpu"), "2 x x86_64 (AMD EPYC)");
        assert_eq!(get("memory"), "4.0 GiB (physical 4096 MiB)");
        assert_eq!(get("disks"), "/dev/vda 256.0 GiB");
        assert_eq!(get("nics"), "eth0 02:fc:00:00:00:01 192.0.2.2");
        assert_eq!(get("boot mode"), "bios");
        assert_eq!(human_bytes(512), "512 B");
    }
}
