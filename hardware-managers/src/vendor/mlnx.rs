//! IPA's `MellanoxDeviceHardwareManager`: InfiniBand addresses of Mellanox ports.
//!
//! An IPoIB interface (ARPHRD_INFINIBAND, `type` 32) has a 20-byte hardware address: 4 bytes
//! of flags and queue pair number, then the 16-byte port GID whose last 8 bytes are the port
//! GUID. Like IPA, an interface qualifies when its address has that length (59 characters as
//! text) and its PCI vendor is Mellanox (`0x15b3`); its inventory entry then carries
//!
//! * `mac_address`: bytes 1–3 and 6–8 of the GUID (Mellanox's GUID-to-MAC translation), and
//! * `client_id`: `ff:00:00:00:00:00:02:00:00:02:c9:00:` followed by the GUID (the DHCP client
//!   identifier of RFC 4390 that Ironic configures for the port),
//!
//! and, as in IPA, no IPv6 address, speed, PCI address, driver or biosdevname.

use std::path::{Path, PathBuf};

use tracing::debug;

use crate::error::{HardwareError, HardwareResult};
use crate::generic::sysfs::{list_dir, read_trimmed};
use crate::inventory::NetworkInterface;
use crate::manager::{HardwareManager, ManagerVersion};
use crate::support::SupportLevel;

/// Mellanox's PCI vendor id as sysfs prints it.
pub const MLNX_VENDOR_ID: &str = "0x15b3";
/// The fixed part of the InfiniBand DHCP client identifier; the port GUID follows.
pub const CLIENT_ID_PREFIX: &str = "ff:00:00:00:00:00:02:00:00:02:c9:00:";
/// Length of a 20-byte InfiniBand hardware address as colon-separated text.
pub const INFINIBAND_ADDR_LEN: usize = 59;

/// IPA's `mlnx` manager (`MellanoxDeviceHardwareManager`, version 1).
#[derive(Debug, Clone)]
pub struct MellanoxDeviceHardwareManager {
    root: PathBuf,
}

impl MellanoxDeviceHardwareManager {
    /// A manager reading `<root>/sys/class/net`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MellanoxDeviceHardwareManager { root: root.into() }
    }

    fn class_net(&self) -> PathBuf {
        self.root.join("sys/class/net")
    }
}

/// The PCI vendor of interface `name`.
fn vendor(class_net: &Path, name: &str) -> Option<String> {
    read_trimmed(&class_net.join(name).join("device/vendor"))
}

/// Mellanox's MAC for InfiniBand address `address` (59 characters): GUID bytes 1–3 and 6–8.
pub fn infiniband_address_to_mac(address: &str) -> Option<String> {
    let head = address.get(36..45)?;
    let tail = address.get(51..)?;
    Some(format!("{head}{tail}"))
}

/// The DHCP client identifier for InfiniBand address `address`: the prefix and the GUID.
pub fn client_id(address: &str) -> Option<String> {
    Some(format!("{CLIENT_ID_PREFIX}{}", address.get(36..)?))
}

impl HardwareManager for MellanoxDeviceHardwareManager {
    fn class_name(&self) -> String {
        "MellanoxDeviceHardwareManager".to_string()
    }

    fn version(&self) -> ManagerVersion {
        ManagerVersion {
            name: self.class_name(),
            version: "1".to_string(),
        }
    }

    /// Mainline when any network interface sits on a Mellanox PCI device.
    fn evaluate_hardware_support(&self) -> SupportLevel {
        let class_net = self.class_net();
        let found = list_dir(&class_net)
            .iter()
            .any(|n| vendor(&class_net, n).as_deref() == Some(MLNX_VENDOR_ID));
        if found {
            debug!("Found Mellanox device");
            SupportLevel::MAINLINE
        } else {
            debug!("No Mellanox devices found");
            SupportLevel::NONE
        }
    }

    fn get_interface_info(&self, base: &NetworkInterface) -> HardwareResult<NetworkInterface> {
        let incompatible = || HardwareError::incompatible("get_interface_info");
        let address = base.mac_address.as_str();
        let vendor = vendor(&self.class_net(), &base.name);
        if address.len() != INFINIBAND_ADDR_LEN || vendor.as_deref() != Some(MLNX_VENDOR_ID) {
            return Err(incompatible());
        }
        let mac = infiniband_address_to_mac(address).ok_or_else(incompatible)?;
        let client_id = client_id(address).ok_or_else(incompatible)?;
        Ok(NetworkInterface {
            name: base.name.clone(),
            mac_address: mac,
            ipv4_address: base.ipv4_address.clone(),
            ipv6_address: None,
            has_carrier: base.has_carrier,
            lldp: None,
            vendor,
            product: read_trimmed(&self.class_net().join(&base.name).join("device/device")),
            client_id: Some(client_id),
            biosdevname: None,
            speed_mbps: None,
            pci_address: None,
            driver: None,
        })
    }
}
