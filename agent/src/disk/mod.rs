//! Disks: block-device facts, a superblock probe, partition tables, IPA's partition-image layout,
//! config drives, `get_partition_uuids` results and metadata wipes.
//!
//! Every public function that **writes** takes the device path and must only be called after the
//! agent's disk guard ([`hardware_managers::guard::DiskGuard::check_writable`]) accepted that device. Nothing in
//! this module checks the guard itself.
//!
//! External tools the ramdisk must ship for this module: `partx` (util-linux; only when the kernel
//! does not re-read a table on `BLKRRPART`), `mkfs.vfat` (dosfstools), `mkswap` (util-linux),
//! `mkfs.<ephemeral_format>` (e2fsprogs / xfsprogs / …) and, when present, `wipefs` (util-linux).

pub mod blockdev;
pub(crate) mod cmd;
pub mod configdrive;
pub mod error;
pub mod gpt_table;
pub(crate) mod ioctl;
pub mod layout;
pub mod mbr;
pub mod node_info;
pub mod probe;
pub mod table;
pub mod uuids;
pub mod wipe;

#[cfg(test)]
pub(crate) mod testing;

pub use error::DiskError;

/// One mebibyte, the unit of every partition size and alignment here.
pub const MIB: u64 = 1024 * 1024;
