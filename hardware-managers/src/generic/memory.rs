//! Memory summary: usable memory from `/proc/meminfo`, installed memory from the SMBIOS
//! memory-device records (type 17) or, failing that, from the memory-hotplug blocks.

use std::fs;
use std::path::Path;

use super::sysfs::{list_dir, read_trimmed, read_u64};
use crate::error::{HardwareError, HardwareResult};
use crate::inventory::Memory;

const MIB: u64 = 1 << 20;

/// Reads the memory summary under `root`.
pub(crate) fn get_memory(root: &Path) -> HardwareResult<Memory> {
    let path = root.join("proc/meminfo");
    let text = fs::read_to_string(&path)
        .map_err(|e| HardwareError::io(format!("reading {}", path.display()), e))?;
    let total = mem_total_kib(&text).ok_or_else(|| {
        let missing = std::io::Error::new(std::io::ErrorKind::InvalidData, "no MemTotal line");
        HardwareError::io(format!("reading {}", path.display()), missing)
    })?;
    Ok(Memory {
        total: total.saturating_mul(1024),
        physical_mb: dmi_physical_mb(root).or_else(|| hotplug_physical_mb(root)),
    })
}

/// `MemTotal:  24683116 kB` → 24683116.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Sum of the SMBIOS type-17 device sizes in MiB; `None` without records or when all are
/// empty/unknown.
fn dmi_physical_mb(root: &Path) -> Option<u64> {
    let dir = root.join("sys/firmware/dmi/entries");
    let total: u64 = list_dir(&dir)
        .iter()
        .filter(|n| n.starts_with("17-"))
        .filter_map(|n| fs::read(dir.join(n).join("raw")).ok())
        .filter_map(|raw| memory_device_mib(&raw))
        .sum();
    (total > 0).then_some(total)
}

/// The size in MiB of one SMBIOS type-17 (Memory Device) record; `None` if empty or unknown.
///
/// Layout (SMBIOS 3.x, §7.18): byte 1 is the formatted length, bytes 0x0C..0x0E the size
/// (0 = empty slot, 0xFFFF = unknown, 0x7FFF = see the 32-bit extended size at 0x1C; bit 15
/// set means the unit is KiB instead of MiB).
fn memory_device_mib(raw: &[u8]) -> Option<u64> {
    if raw.first() != Some(&17) {
        return None;
    }
    let len = usize::from(*raw.get(1)?);
    let formatted = raw.get(..len)?;
    let size = u16::from_le_bytes([*formatted.get(0x0C)?, *formatted.get(0x0D)?]);
    match size {
        0 | 0xFFFF => None,
        0x7FFF => {
            let ext = formatted.get(0x1C..0x20)?;
            let mib = u32::from_le_bytes([ext[0], ext[1], ext[2], ext[3]]) & 0x7FFF_FFFF;
            (mib > 0).then_some(u64::from(mib))
        }
        s if s & 0x8000 != 0 => Some(u64::from(s & 0x7FFF) / 1024),
        s => Some(u64::from(s)),
    }
}

/// `block_size_bytes` (hex) × the number of online `memoryN` blocks, in MiB.
fn hotplug_physical_mb(root: &Path) -> Option<u64> {
    let dir = root.join("sys/devices/system/memory");
    let block = read_trimmed(&dir.join("block_size_bytes"))?;
    let block = u64::from_str_radix(block.trim_start_matches("0x"), 16).ok()?;
    let online = list_dir(&dir)
        .iter()
        .filter(|n| {
            n.strip_prefix("memory")
                .is_some_and(|r| r.parse::<u64>().is_ok())
        })
        .filter(|n| {
            let d = dir.join(n);
            read_u64(&d.join("online")) == Some(1)
                || read_trimmed(&d.join("state")).as_deref() == Some("online")
        })
        .count() as u64;
    let mb = block.checked_mul(online)? / MIB;
    (mb > 0).then_some(mb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u16, ext: u32) -> Vec<u8> {
        let mut r = vec![0u8; 0x28];
        r[0] = 17;
        r[1] = 0x28;
        r[0x0C..0x0E].copy_from_slice(&size.to_le_bytes());
        r[0x1C..0x20].copy_from_slice(&ext.to_le_bytes());
        r.extend_from_slice(b"DIMM 0\0\0");
        r
    }

    #[test]
    fn memory_device_sizes() {
        assert_eq!(memory_device_mib(&record(16384, 0)), Some(16384));
        assert_eq!(memory_device_mib(&record(0x7FFF, 65536)), Some(65536));
        assert_eq!(memory_device_mib(&record(0x8000 | 2048, 0)), Some(2));
        assert_eq!(memory_device_mib(&record(0, 0)), None);
        assert_eq!(memory_device_mib(&record(0xFFFF, 0)), None);
        assert_eq!(memory_device_mib(&[17, 0x28, 0]), None, "truncated record");
        assert_eq!(memory_device_mib(&[16; 0x28]), None, "wrong type");
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            mem_total_kib("MemTotal:       24683116 kB\nMemFree: 1 kB\n"),
            Some(24683116)
        );
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
    }
}
