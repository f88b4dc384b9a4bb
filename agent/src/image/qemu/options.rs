//! What `qemu-img convert` is given: the spooled source and how to run the tool. Shared by
//! [`super::convert`] and the process runner (`run`).

use std::path::PathBuf;
use std::time::Duration;

/// The spooled image: `len` bytes at byte `offset` of `device` (a block device, or a regular
/// file in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSource {
    /// The disk (or file) holding the spool.
    pub device: PathBuf,
    /// First byte of the image file on `device` (a multiple of its logical sector size).
    pub offset: u64,
    /// Size of the image file.
    pub len: u64,
}

/// A `qemu-img` cache mode (`-t` for the target, `-T` for the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// O_DIRECT, no page cache: the default for both sides.
    None,
    /// O_DIRECT and O_DSYNC on every write (IPA's target mode).
    DirectSync,
    /// Through the page cache (needed where O_DIRECT is not supported, e.g. tmpfs files).
    Writeback,
}

impl CacheMode {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CacheMode::None => "none",
            CacheMode::DirectSync => "directsync",
            CacheMode::Writeback => "writeback",
        }
    }
}

/// How to run `qemu-img`. The defaults are IPA's limits.
pub struct ConvertOptions<'a> {
    /// The `qemu-img` binary (default `qemu-img` from `PATH`).
    pub qemu_img: PathBuf,
    /// RLIMIT_AS of the `qemu-img` process in bytes (default 2048 MiB); `None` for no limit.
    pub address_space_limit: Option<u64>,
    /// `MALLOC_ARENA_MAX` for `qemu-img` (default 3).
    pub malloc_arena_max: Option<u32>,
    /// Runs tried when `qemu-img` fails for lack of memory (default 3).
    pub attempts: u32,
    /// Pause between those runs.
    pub retry_delay: Duration,
    /// How the spool is read (default [`CacheMode::None`]).
    pub source_cache: CacheMode,
    /// How the target is written (default [`CacheMode::None`]).
    pub target_cache: CacheMode,
    /// Called with the percentage done, as `qemu-img -p` reports it.
    pub progress: Option<&'a dyn Fn(f64)>,
}

impl Default for ConvertOptions<'_> {
    fn default() -> Self {
        ConvertOptions {
            qemu_img: PathBuf::from("qemu-img"),
            address_space_limit: Some(2048 << 20),
            malloc_arena_max: Some(3),
            attempts: 3,
            retry_delay: Duration::from_secs(1),
            source_cache: CacheMode::None,
            target_cache: CacheMode::None,
            progress: None,
        }
    }
}

impl std::fmt::Debug for ConvertOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvertOptions")
            .field("qemu_img", &self.qemu_img)
            .field("address_space_limit", &self.address_space_limit)
            .field("malloc_arena_max", &self.malloc_arena_max)
            .field("attempts", &self.attempts)
            .field("source_cache", &self.source_cache)
            .field("target_cache", &self.target_cache)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}
