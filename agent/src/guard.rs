//! The disk guard: the one check every destructive operation passes first.
//!
//! It lives in `hardware_managers::guard` (the destructive hardware steps run in the generic
//! manager) and is re-exported here so agent code keeps its paths.
pub use hardware_managers::guard::*;
