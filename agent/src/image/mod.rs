//! The image pipeline: download → decompress → hash → write, and the qemu-img path.

pub mod buffer;
pub mod channel;
pub mod checksum;
pub mod decompress;
pub mod error;
pub mod format;
pub mod hash;
pub mod head;
pub mod info;
pub mod options;
pub mod pipeline;
pub mod progress;
pub mod qemu;
pub mod sink;
pub mod source;

#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod testserver;

pub use progress::{Progress, ProgressSnapshot, Stage};
