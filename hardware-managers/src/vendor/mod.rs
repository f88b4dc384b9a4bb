//! IPA's in-tree vendor managers that matter for inspection and networking, built in:
//!
//! * [`mlnx::MellanoxDeviceHardwareManager`] (IPA's `mlnx`): InfiniBand ports of Mellanox
//!   NICs get IPA's 6-byte `mac_address` and DHCP `client_id`, derived from the port GUID.
//! * [`cna::IntelCnaHardwareManager`] (IPA's `cna`): with `ipa-collect-lldp`, stops the
//!   firmware LLDP agent of Intel i40e NICs at start so the OS receives LLDP frames.
//!
//! Both claim [`SupportLevel::MAINLINE`](crate::SupportLevel::MAINLINE) only when their
//! hardware is present, so they rank above the generic manager, as in IPA. IPA's `mlnx` also
//! offers NVIDIA NIC firmware steps (`update_nvidia_nic_firmware_*`); those are not ported.

pub mod cna;
pub mod mlnx;

#[cfg(test)]
mod tests;
