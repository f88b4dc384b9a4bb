//! The `extra-hardware` inspection collector: the `[category, item, key, value]` facts that the
//! `hardware` package's `hardware-detect` prints and Ironic's `extra_hardware` hook nests into
//! the node's `extra` data.
//!
//! `hardware-detect` gathers most of its facts from `lshw`, `lscpu`, `dmidecode`, `ethtool`,
//! `smartctl`, `ipmitool` and `ibstat`. The minimal ramdisk has none of them (and no Python),
//! so the facts are read here from sysfs, procfs and the SMBIOS table, with the same
//! category/item/key names and value formatting. The few small tools that the ramdisk may
//! have (`ethtool`, `smartctl`, `ipmitool`, `lldptool`, `sysbench`, `fio`, ...) are run when
//! present; without them their facts are missing, as in `hardware-detect`.
//!
//! One module per category: [`disk`] (with [`smart`]), [`system`] (system, motherboard,
//! firmware, os, kernel, rtc), [`memory`] (with [`smbios`]), [`network`] (with [`ethtool`] and [`lldptool`]),
//! [`cpu`] (cpu and numa, with [`cpu_arm`]), [`ipmi`], [`infiniband`], [`hw`] (auxv, ahci); [`benchmark`] runs
//! the optional cpu/mem/disk benchmarks.

pub mod benchmark;
pub mod cpu;
pub mod cpu_arm;
pub mod disk;
pub mod ethtool;
pub mod fact;
pub mod hw;
pub mod infiniband;
pub mod ipmi;
pub mod lldptool;
pub mod memory;
pub mod network;
pub mod smart;
pub mod smbios;
pub mod system;
pub mod tools;

use std::path::{Path, PathBuf};

pub use benchmark::{Benchmark, BenchmarkError};
pub use fact::{Fact, Facts};

/// Where the collector reads the system from: `/` on a real machine, a fixture tree in tests.
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

impl Root {
    /// The real system.
    pub fn system() -> Self {
        Root(PathBuf::from("/"))
    }

    /// A tree laid out like `/` (`sys/`, `proc/`, `dev/`, `etc/`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Root(path.into())
    }

    /// `rel` (an absolute-looking path such as `/sys/block`) under this root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel.trim_start_matches('/'))
    }

    /// Whether this is the real system (tools and ioctls are only used then).
    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }
}

/// Collects every fact, in `hardware-detect`'s order (disks, system with memory, network, cpu
/// and numa, os and kernel, ipmi, infiniband, cpu temperatures, ipmi sensors, rtc, auxv,
/// ahci), then runs `benchmarks`.
///
/// # Errors
/// Only a benchmark can fail the collection as a whole ([`BenchmarkError`]): the disk
/// benchmark without `fio`, where `hardware-detect` itself fails.
pub fn collect(root: &Root, benchmarks: &[Benchmark]) -> Result<Facts, BenchmarkError> {
    let mut facts = Facts::default();
    disk::detect(root, &mut facts);
    system::detect(root, &mut facts);
    ipmi::detect(root, &mut facts);
    infiniband::detect(root, &mut facts);
    cpu::detect_temperatures(root, &mut facts);
    ipmi::detect_sdr(root, &mut facts);
    system::detect_rtc(root, &mut facts);
    hw::detect_auxv(root, &mut facts);
    hw::detect_ahci(root, &mut facts);
    benchmark::run(root, benchmarks, &mut facts)?;
    Ok(facts)
}
