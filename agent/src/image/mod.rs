//! The image pipeline: download → decompress → hash → write, and the qemu-img path.

pub mod progress;

pub use progress::{Progress, ProgressSnapshot, Stage};
