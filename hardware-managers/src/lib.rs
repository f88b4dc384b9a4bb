//! The hardware-manager framework of ironic-agent.
//!
//! Hardware questions ("which disks are there?", "erase this disk") are answered by a chain of
//! [`HardwareManager`]s ordered by their [`SupportLevel`]. A manager answers
//! [`HardwareError::Incompatible`] to pass a call on to the next one, exactly as
//! ironic-python-agent's `dispatch_to_managers` does. The [`Chain`] implements the dispatch
//! rules, step de-duplication and the version map that Ironic echoes back.
//!
//! Destructive operations pass the [`guard::DiskGuard`] first; root-device hints and the disk
//! skip list are parsed and matched by [`hints`].
//!
//! The managers shipped here: the [`generic::GenericHardwareManager`] (reads /sys and /proc),
//! IPA's in-tree vendor managers in [`vendor`] (Mellanox InfiniBand, Intel CNA) and the
//! [`plugin::ExecutableManager`] (a vendor executable speaking JSON on stdin/stdout).
//!
//! External programs, the managers' own and the agent's, run through [`process::run`]: with a
//! deadline, in their own process group (killed as a whole on timeout) and with bounded output.

pub mod chain;
pub mod collectors;
pub mod error;
pub mod extra;
pub mod generic;
pub mod guard;
pub mod hints;
pub mod inventory;
pub mod ipa_error;
pub mod lldp;
pub mod manager;
pub mod node;
pub mod plugin;
pub mod process;
pub mod runner;
pub mod step;
pub mod support;
pub mod vendor;

pub use chain::Chain;
pub use error::{HardwareError, HardwareResult};
pub use inventory::{
    BlockDevice, BootInfo, Cpu, Firmware, Inventory, Memory, NetworkInterface, SystemVendorInfo,
};
pub use ipa_error::{IpaClass, IpaError};
pub use manager::{HardwareManager, ManagerVersion, StepContext};
pub use node::{Node, Port};
pub use step::{ArgInfo, Step, StepKind};
pub use support::SupportLevel;
