//! Writing qcow2 (and the other formats `qemu-img` reads) without staging the image in RAM.
//!
//! # Design: spool on the target disk's tail
//!
//! IPA downloads a non-raw image to `/tmp` (a tmpfs: RAM) and converts it from there, so the
//! image must fit in memory. We download it instead onto the **end of the target
//! disk** (the pipeline's sink writes there, [`plan_spool`] says where), then `qemu-img
//! convert` reads that region as its source and writes raw output from byte 0 of the same
//! disk:
//!
//! ```text
//!  disk: [0 ........ virtual_size) .......... [offset ... offset+len) [pad]
//!         converted output (written)            spool (read)
//! ```
//!
//! Why this is safe: the output only ever touches `[0, virtual_size)` and the source only ever
//! reads `[offset, offset + len)`, and [`plan_spool`] / [`convert`] require
//! `virtual_size <= offset`. The ranges are disjoint, so the order in which `qemu-img` writes
//! (it writes out of order with `-W`, several requests in flight) cannot clobber a byte it has
//! yet to read, including qcow2 metadata it re-reads late; no sequential-write assumption is
//! needed. `convert` checks the virtual size with `qemu-img info` on the spool itself before
//! writing, so a lying header cannot make it overlap either.
//!
//! The source is qemu's `json:` pseudo-protocol: the format driver over a `raw` node with
//! `offset`/`size` over a `host_device` (or `file`) node, e.g.
//! `json:{"driver":"qcow2","backing":null,"file":{"driver":"raw","offset":O,"size":L,"file":{"driver":"host_device","filename":"/dev/sda"}}}`.
//! The same disk is opened twice (source read-only, target read-write), so qemu's image
//! locking would refuse the target: `-U` (force-share) on the source lets both open. The full
//! command, verified with qemu-img 7.2 (Debian 12) and 10.0:
//!
//! ```text
//! qemu-img convert -U -n -W -S 0 -O raw -f <driver> -t none -T none [-p] 'json:{…}' /dev/sda
//! ```
//!
//! `-n` because the target exists (and a regular-file target must not be truncated: the spool
//! lives in it); `-S 0` writes zeros over unallocated clusters, since the disk holds old data;
//! `-t none -T none` keep both sides out of the page cache, which in a ramdisk is RAM.
//! Afterwards the spool region is zeroed (`BLKZEROOUT`, or a punched hole for files) so no
//! stale copy of the image stays beyond the converted disk.
//!
//! IPA's safety rails stay: RLIMIT_AS of 2 GiB on `qemu-img`, `MALLOC_ARENA_MAX=3`, up to three
//! runs on "Cannot allocate memory"/"Resource temporarily unavailable", stderr in the error.
//!
//! # Limits
//!
//! * The disk must hold both: `virtual_size + image file size` (each rounded to the spool
//!   alignment) `<= disk size`; otherwise [`plan_spool`] says "disk too small to spool and
//!   convert". A qcow2 that is nearly as large as the disk cannot be written this way.
//! * The raw region must be a whole number of logical sectors: the image is read with its
//!   size rounded up; fixed VHDs and streamOptimized VMDKs (footer at the end) are whole
//!   512-byte sectors, so on 4Kn disks only a fixed VHD of an odd sector count fails (qemu says
//!   so in the error).
//! * The spool holds the image file, not a sparse copy: a 2 GiB qcow2 takes 2 GiB of disk
//!   tail while it is written.
//! * Whole disks (or partitions of the spool's disk, whose placement is read from sysfs).
//!
//! # Memory and speed (measured)
//!
//! The agent side holds a 4 KiB stdout buffer and at most 16 KiB of stderr; `qemu-img` is a
//! separate process bounded by RLIMIT_AS. The test `agent_rss_does_not_grow_with_the_image`
//! runs a probe in its own process that converts a 32 MiB and then a 192 MiB qcow2 through a
//! loop device and prints its peak RSS: 14.5 MiB after either (the test harness included;
//! +0.1 MiB between the two), with `qemu-img` peaking at 24–25 MiB (7.2 and 10.0 alike).
//! No tmpfs is used.
//!
//! Throughput, 1 GiB virtual / 683 MiB qcow2 (⅔ random data), 3 GiB loop device, qemu-img
//! 10.0, median of 7 runs: local-file `qemu-img convert -t none` to the device 0.62 s;
//! spool-on-tail with `-T none` 0.49 s; with `-T writeback` 0.92 s. Reading the spool
//! with O_DIRECT is at least as fast as converting from a local file and keeps the page
//! cache (RAM in a ramdisk) out of it, hence the default.

mod convert;
mod device;
mod options;
mod run;
mod spool;

#[cfg(test)]
mod tests;

pub use convert::{convert, virtual_size_of};
pub use options::{CacheMode, ConvertOptions, SpoolSource};
pub use spool::{SpoolPlan, plan_spool};

/// Why the qemu-img path failed.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The disk cannot hold both the converted image and the spool.
    #[error(
        "disk too small to spool and convert: the image needs {virtual_size} bytes once \
         converted plus {image_file_size} bytes of spool, the disk has {disk_size} bytes"
    )]
    DiskTooSmall {
        /// Size of the target disk.
        disk_size: u64,
        /// Size of the image file (the spool).
        image_file_size: u64,
        /// Virtual size of the image (0 when unknown).
        virtual_size: u64,
    },
    /// A request that cannot be carried out as given.
    #[error("invalid qemu-img request: {0}")]
    InvalidArgument(String),
    /// The format is not one the agent converts.
    #[error("images in {0} format cannot be converted by the agent")]
    UnsupportedFormat(String),
    /// The converted image would not fit the target.
    #[error(
        "the image's virtual size ({virtual_size} bytes) exceeds the target ({target_size} bytes)"
    )]
    TargetTooSmall {
        /// Virtual size reported by qemu-img.
        virtual_size: u64,
        /// Size of the target.
        target_size: u64,
    },
    /// The converted image would overwrite the spool before it is read.
    #[error(
        "the converted image ({virtual_size} bytes) would overwrite the spool at byte \
         {spool_offset}: refused"
    )]
    Overlap {
        /// Virtual size reported by qemu-img.
        virtual_size: u64,
        /// Where the spool starts.
        spool_offset: u64,
    },
    /// qemu-img sees something the format inspection should have refused.
    #[error("qemu-img reports {0}: refused")]
    Unsafe(String),
    /// qemu-img's JSON could not be understood.
    #[error("unexpected qemu-img info output: {0}")]
    BadInfo(String),
    /// qemu-img could not be started.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The binary.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// qemu-img ran and failed.
    #[error("qemu-img {action} failed ({status}): {stderr}")]
    Failed {
        /// `convert` or `info`.
        action: &'static str,
        /// Exit code or signal.
        status: String,
        /// The tail of its stderr.
        stderr: String,
    },
    /// Reading, zeroing or flushing a device failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The `qemu-img` the tests run: `$IRONIC_AGENT_TEST_QEMU_IMG` (to try another version, e.g.
/// Debian 12's 7.2 unpacked somewhere) or `qemu-img` from `PATH`.
#[cfg(test)]
pub(crate) fn test_qemu_img() -> std::path::PathBuf {
    std::env::var_os("IRONIC_AGENT_TEST_QEMU_IMG").map_or_else(|| "qemu-img".into(), Into::into)
}
