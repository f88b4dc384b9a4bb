//! Talking to the conductor: inspection, lookup and heartbeats.

pub mod advertise;
pub mod client;
pub mod heartbeat;
pub mod inspection;
pub mod lookup;

pub use client::IronicClient;
