//! The hardware inventory, field for field as IPA serialises it (`list_hardware_info`).
//!
//! Field order and `null`s match IPA 13 so Ironic's inspection hooks and root-device hints read
//! our inventory exactly as they read IPA's.

use serde::{Deserialize, Serialize};

/// One network interface (`inventory.interfaces[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// Permanent MAC (lower-case, colon separated).
    pub mac_address: String,
    /// First IPv4 address, if any.
    pub ipv4_address: Option<String>,
    /// First IPv6 address (may carry `%scope`), if any.
    pub ipv6_address: Option<String>,
    /// `/sys/class/net/<if>/carrier == 1`.
    pub has_carrier: bool,
    /// Raw LLDP TLVs (`[[type, hex], ...]`) when collected, else null.
    pub lldp: Option<Vec<(u8, String)>>,
    /// PCI vendor id text, e.g. `0x8086`.
    pub vendor: Option<String>,
    /// PCI device id text, e.g. `0x1572`.
    pub product: Option<String>,
    /// DHCP client id (InfiniBand only).
    pub client_id: Option<String>,
    /// biosdevname's name for the NIC, when known.
    pub biosdevname: Option<String>,
    /// Link speed in Mbit/s, when known.
    pub speed_mbps: Option<u64>,
    /// Basename of the `device` symlink (PCI address or e.g. `virtio2`).
    pub pci_address: Option<String>,
    /// Basename of the `device/driver` symlink.
    pub driver: Option<String>,
}

/// CPU summary (`inventory.cpu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// `model name` from /proc/cpuinfo.
    pub model_name: String,
    /// Maximum (or current) MHz **as a string**, as IPA reports it; may be empty.
    pub frequency: String,
    /// Number of logical CPUs.
    pub count: u64,
    /// `uname -m` style architecture, e.g. `x86_64`, `aarch64`.
    pub architecture: String,
    /// CPU feature flags.
    pub flags: Vec<String>,
    /// Number of sockets, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_count: Option<u64>,
}

/// Memory summary (`inventory.memory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Usable memory in bytes (MemTotal).
    pub total: u64,
    /// Installed memory in MiB (sum of DIMMs, or an estimate), when known.
    pub physical_mb: Option<u64>,
}

/// A block device (`inventory.disks[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Device path, e.g. `/dev/sda`.
    pub name: String,
    /// Model string, if any.
    pub model: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Whether the device is rotational.
    pub rotational: bool,
    /// World-wide name.
    pub wwn: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Vendor string (`/sys/class/block/<k>/device/vendor`).
    pub vendor: Option<String>,
    /// WWN with extension.
    pub wwn_with_extension: Option<String>,
    /// WWN vendor extension.
    pub wwn_vendor_extension: Option<String>,
    /// SCSI host:channel:target:lun.
    pub hctl: Option<String>,
    /// `/dev/disk/by-path/...` link pointing at this device.
    pub by_path: Option<String>,
    /// Logical sector size in bytes.
    pub logical_sectors: Option<u64>,
    /// Physical sector size in bytes.
    pub physical_sectors: Option<u64>,
    /// Transport (`sata`, `sas`, `nvme`, `usb`, ...).
    pub tran: Option<String>,
    /// Filesystem UUID (internal, not serialised, as in IPA).
    #[serde(skip)]
    pub uuid: Option<String>,
    /// Partition UUID (internal, not serialised, as in IPA).
    #[serde(skip)]
    pub partuuid: Option<String>,
}

/// Firmware (BIOS/UEFI) identification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Firmware {
    /// BIOS vendor.
    pub vendor: String,
    /// BIOS version.
    pub version: String,
    /// BIOS release date.
    pub build_date: String,
}

/// System identification from DMI (`inventory.system_vendor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemVendorInfo {
    /// DMI product name.
    pub product_name: String,
    /// DMI product serial.
    pub serial_number: String,
    /// DMI system manufacturer.
    pub manufacturer: String,
    /// BIOS/UEFI firmware identification.
    pub firmware: Firmware,
}

/// How the ramdisk booted (`inventory.boot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootInfo {
    /// `uefi` when /sys/firmware/efi exists, else `bios`.
    pub current_boot_mode: String,
    /// The raw `BOOTIF` kernel parameter, verbatim.
    pub pxe_interface: Option<String>,
}

/// The whole inventory posted at inspection and returned by `poll.get_hardware_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Network interfaces.
    pub interfaces: Vec<NetworkInterface>,
    /// CPU summary.
    pub cpu: Cpu,
    /// Disks.
    pub disks: Vec<BlockDevice>,
    /// Memory.
    pub memory: Memory,
    /// BMC IPv4 address (null without a BMC).
    pub bmc_address: Option<String>,
    /// BMC IPv6 address (null without a BMC).
    pub bmc_v6address: Option<String>,
    /// DMI identification.
    pub system_vendor: SystemVendorInfo,
    /// Boot mode and PXE interface.
    pub boot: BootInfo,
    /// Host name.
    pub hostname: String,
    /// BMC MAC, omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_mac: Option<String>,
}

impl Inventory {
    /// The MACs of all interfaces, as sent in lookup's `addresses`.
    pub fn macs(&self) -> Vec<String> {
        self.interfaces
            .iter()
            .map(|i| i.mac_address.clone())
            .filter(|m| !m.is_empty())
            .collect()
    }
}
