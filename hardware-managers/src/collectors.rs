//! IPA 13's hardware inspection collectors, read from sysfs (and `dmidecode`'s text), each
//! producing exactly the structure IPA posts under its key:
//!
//! | collector       | key             | module   |
//! |-----------------|-----------------|----------|
//! | `pci-devices`   | `pci_devices`   | [`pci`]  |
//! | `numa-topology` | `numa_topology` | [`numa`] |
//! | `dmi-decode`    | `dmi`           | [`dmi`]  |
//! | `usb-devices`   | `usb_devices`   | [`usb`]  |
//!
//! Every reader takes a root directory (`/` on a machine, a fake tree in tests).

pub mod dmi;
pub mod numa;
pub mod pci;
pub mod pyfmt;
pub mod usb;
