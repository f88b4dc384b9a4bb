//! `memory` facts: the total size and, from the SMBIOS memory devices (type 17), one item per
//! bank (`bank:N`, or `bank:A:N` with several memory arrays) with size, clock, description,
//! vendor, product, serial and slot, as `lshw` reports them; then the bank count.
//!
//! The total is the sum of the banks; without SMBIOS banks (or when their sum is below what
//! the kernel manages) it is the online memory blocks of `/sys/devices/system/memory` (what
//! `lshw` reports then), else `MemTotal`.

use std::collections::BTreeMap;

use super::smbios::{self, Structure};
use super::{Facts, Root};
use crate::generic::sysfs::{list_dir, read_trimmed};

/// One memory bank as `lshw` describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bank {
    /// Size in bytes (0: empty slot).
    pub size: u64,
    /// Clock in Hz (0: unknown).
    pub clock: u64,
    /// "DIMM DDR4 Synchronous Registered (Buffered) 2666 MHz (0.4 ns)".
    pub description: String,
    /// Manufacturer.
    pub vendor: String,
    /// Part number.
    pub product: String,
    /// Serial number.
    pub serial: String,
    /// Device locator.
    pub slot: String,
}

const FORM_FACTORS: [&str; 17] = [
    "",
    "",
    "",
    "SIMM",
    "SIP",
    "Chip",
    "DIP",
    "ZIP",
    "Proprietary Card",
    "DIMM",
    "TSOP",
    "Row of chips",
    "RIMM",
    "SODIMM",
    "SRIMM",
    "FB-DIMM",
    "Die",
];

fn memory_type(t: u8) -> &'static str {
    match t {
        0x03 => "DRAM",
        0x04 => "EDRAM",
        0x05 => "VRAM",
        0x06 => "SRAM",
        0x07 => "RAM",
        0x08 => "ROM",
        0x09 => "FLASH",
        0x0A => "EEPROM",
        0x0B => "FEPROM",
        0x0C => "EPROM",
        0x0D => "CDRAM",
        0x0E => "3DRAM",
        0x0F => "SDRAM",
        0x10 => "SGRAM",
        0x11 => "RDRAM",
        0x12 => "DDR",
        0x13 => "DDR2",
        0x14 => "DDR2 FB-DIMM",
        0x18 => "DDR3",
        0x19 => "FBD2",
        0x1A => "DDR4",
        0x1B => "LPDDR",
        0x1C => "LPDDR2",
        0x1D => "LPDDR3",
        0x1E => "LPDDR4",
        0x1F => "Logical non-volatile device",
        0x20 => "HBM",
        0x21 => "HBM2",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        0x24 => "HBM3",
        _ => "",
    }
}

/// Type detail bits 1..=15.
const DETAILS: [&str; 15] = [
    "Other",
    "Unknown",
    "Fast-paged",
    "Static column",
    "Pseudo-static",
    "RAMBUS",
    "Synchronous",
    "CMOS",
    "EDO",
    "Window DRAM",
    "Cache DRAM",
    "Non-volatile",
    "Registered (Buffered)",
    "Unbuffered (Unregistered)",
    "LRDIMM",
];

/// A memory device (type 17) as a [`Bank`].
pub fn bank(s: &Structure) -> Bank {
    let size = match s.word(0x0C) {
        None | Some(0xFFFF) | Some(0) => 0,
        // The extended size (in MiB) holds sizes of 32 GiB and more.
        Some(0x7FFF) => u64::from(s.dword(0x1C).unwrap_or(0) & 0x7FFF_FFFF) << 20,
        Some(w) if w & 0x8000 != 0 => u64::from(w & 0x7FFF) << 10,
        Some(w) => u64::from(w) << 20,
    };
    let mut words: Vec<String> = Vec::new();
    let ff = usize::from(s.byte(0x0E).unwrap_or(0));
    words.push(FORM_FACTORS.get(ff).copied().unwrap_or("").to_string());
    words.push(memory_type(s.byte(0x12).unwrap_or(0)).to_string());
    let detail = s.word(0x13).unwrap_or(0);
    if detail & 0x1FFE != 0 {
        for (bit, name) in DETAILS.iter().enumerate() {
            if detail & (1 << (bit + 1)) != 0 {
                words.push((*name).to_string());
            }
        }
    }
    let speed = s.word(0x15).unwrap_or(0);
    if speed != 0 && speed != 0xFFFF {
        words.push(format!("{speed} MHz ({:.1} ns)", 1000.0 / f64::from(speed)));
    }
    if size == 0 {
        words.push("[empty]".to_string());
    }
    let description = words
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Bank {
        size,
        clock: if speed == 0xFFFF {
            0
        } else {
            u64::from(speed) * 1_000_000
        },
        description,
        vendor: s.string(0x17),
        product: s.string(0x1A),
        serial: s.string(0x18),
        slot: s.string(0x10),
    }
}

/// The banks grouped by memory array (type 16, in table order; devices naming no known array
/// form their own group at the end).
pub fn banks(structures: &[Structure]) -> Vec<Vec<Bank>> {
    let arrays: Vec<u16> = structures
        .iter()
        .filter(|s| s.kind == 16)
        .map(|s| s.handle)
        .collect();
    let mut groups: BTreeMap<usize, Vec<Bank>> = BTreeMap::new();
    for s in structures.iter().filter(|s| s.kind == 17) {
        let array = s.word(0x04).unwrap_or(0xFFFF);
        let idx = arrays
            .iter()
            .position(|h| *h == array)
            .unwrap_or(arrays.len());
        groups.entry(idx).or_default().push(bank(s));
    }
    groups.into_values().collect()
}

/// Adds the bank facts for `groups`; returns the number of banks.
pub fn bank_facts(groups: &[Vec<Bank>], facts: &mut Facts) -> usize {
    let mut count = 0;
    for (a, group) in groups.iter().enumerate() {
        for (n, b) in group.iter().enumerate() {
            let item = if groups.len() > 1 {
                format!("bank:{a}:{n}")
            } else {
                format!("bank:{n}")
            };
            count += 1;
            if b.size > 0 {
                facts.push("memory", &item, "size", b.size.to_string());
            }
            if b.clock > 0 {
                facts.push("memory", &item, "clock", b.clock.to_string());
            }
            for (key, v) in [
                ("description", &b.description),
                ("vendor", &b.vendor),
                ("product", &b.product),
                ("serial", &b.serial),
                ("slot", &b.slot),
            ] {
                if !v.is_empty() {
                    facts.push("memory", &item, key, v.as_str());
                }
            }
        }
    }
    count
}

/// Online memory blocks × block size, as `lshw` sizes memory without SMBIOS.
pub fn sysfs_memory(root: &Root) -> Option<u64> {
    let dir = root.path("/sys/devices/system/memory");
    let block = u64::from_str_radix(&read_trimmed(&dir.join("block_size_bytes"))?, 16).ok()?;
    let online = list_dir(&dir)
        .into_iter()
        .filter(|n| n.starts_with("memory"))
        .filter(|n| read_trimmed(&dir.join(n).join("online")).as_deref() == Some("1"))
        .count() as u64;
    (online > 0).then(|| online * block)
}

fn meminfo_total(root: &Root) -> Option<u64> {
    let text = std::fs::read_to_string(root.path("/proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Adds the `memory` facts.
pub fn detect(root: &Root, facts: &mut Facts) {
    let table = std::fs::read(root.path("/sys/firmware/dmi/tables/DMI")).unwrap_or_default();
    let groups = banks(&smbios::parse(&table));
    let dimms: u64 = groups.iter().flatten().map(|b| b.size).sum();
    // As `lshw`: the banks' sum unless it is smaller than what the kernel manages.
    let total = if dimms > 0 && dimms >= meminfo_total(root).unwrap_or(0) {
        Some(dimms)
    } else {
        sysfs_memory(root).or_else(|| meminfo_total(root))
    };
    if let Some(t) = total {
        facts.push("memory", "total", "size", t.to_string());
    }
    let count = bank_facts(&groups, facts);
    if count > 0 {
        facts.push("memory", "banks", "count", count.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extra::smbios::tests::structure;

    /// A type 17 body (after the header) of SMBIOS 3.2 length.
    fn dimm(array: u16, size: u16, speed: u16, strings: [u8; 4]) -> Vec<u8> {
        let mut b = vec![0u8; 0x28 - 4];
        let mut put =
            |off: usize, bytes: &[u8]| b[off - 4..off - 4 + bytes.len()].copy_from_slice(bytes);
        put(0x04, &array.to_le_bytes());
        put(0x08, &72u16.to_le_bytes());
        put(0x0A, &64u16.to_le_bytes());
        put(0x0C, &size.to_le_bytes());
        put(0x0E, &[0x09]); // DIMM
        put(0x10, &[strings[0]]);
        put(0x12, &[0x1A]); // DDR4
        put(0x13, &0x2080u16.to_le_bytes()); // Synchronous, Registered
        put(0x15, &speed.to_le_bytes());
        put(0x17, &[strings[1], strings[2], 0, strings[3]]);
        b
    }

    #[test]
    fn banks_from_smbios() {
        let mut t = structure(16, 0x1000, &[3, 3, 6, 0, 0, 0, 0x80, 0xFE, 0xFF, 2, 0], &[]);
        t.extend(structure(
            17,
            0x1100,
            &dimm(0x1000, 16384, 2666, [1, 2, 3, 4]),
            &["A1", "Samsung", "12345678", "M393A2K43CB2-CTD"],
        ));
        t.extend(structure(
            17,
            0x1101,
            &dimm(0x1000, 0, 0, [1, 0, 0, 0]),
            &["A2"],
        ));
        t.extend(structure(127, 0xFEFF, &[], &[]));
        let groups = banks(&smbios::parse(&t));
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0][0],
            Bank {
                size: 16 << 30,
                clock: 2_666_000_000,
                description: "DIMM DDR4 Synchronous Registered (Buffered) 2666 MHz (0.4 ns)".into(),
                vendor: "Samsung".into(),
                product: "M393A2K43CB2-CTD".into(),
                serial: "12345678".into(),
                slot: "A1".into(),
            }
        );
        assert_eq!(
            groups[0][1].description,
            "DIMM DDR4 Synchronous Registered (Buffered) [empty]"
        );
        let mut facts = Facts::default();
        assert_eq!(bank_facts(&groups, &mut facts), 2);
        assert_eq!(
            facts.get_text("memory", "bank:0", "size").as_deref(),
            Some("17179869184")
        );
        assert_eq!(
            facts.get_text("memory", "bank:0", "clock").as_deref(),
            Some("2666000000")
        );
        assert_eq!(
            facts.get_text("memory", "bank:1", "slot").as_deref(),
            Some("A2")
        );
        assert_eq!(facts.get("memory", "bank:1", "size"), None);

        // The table as the kernel exposes it: total from the banks, then the banks and count.
        let dir = tempfile::tempdir().expect("tmp");
        let tables = dir.path().join("sys/firmware/dmi/tables");
        std::fs::create_dir_all(&tables).expect("mk");
        std::fs::write(tables.join("DMI"), &t).expect("w");
        let mut facts = Facts::default();
        detect(&Root::at(dir.path()), &mut facts);
        let keys: Vec<String> = facts
            .iter()
            .map(|f| format!("{}/{}", f.item(), f.key()))
            .collect();
        assert_eq!(
            keys,
            [
                "total/size",
                "bank:0/size",
                "bank:0/clock",
                "bank:0/description",
                "bank:0/vendor",
                "bank:0/product",
                "bank:0/serial",
                "bank:0/slot",
                "bank:1/description",
                "bank:1/slot",
                "banks/count",
            ]
        );
        assert_eq!(
            facts.get_text("memory", "total", "size").as_deref(),
            Some("17179869184")
        );
        assert_eq!(
            facts.get_text("memory", "banks", "count").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn extended_and_kib_sizes() {
        let mut body = dimm(1, 0x7FFF, 3200, [0, 0, 0, 0]);
        body.extend_from_slice(&(65536u32).to_le_bytes()); // 0x28: not used
        let mut s = smbios::parse(&structure(17, 1, &body, &[]))[0].clone();
        s.data[0x1C..0x20].copy_from_slice(&(65536u32).to_le_bytes());
        assert_eq!(bank(&s).size, 64 << 30);
        s.data[0x0C..0x0E].copy_from_slice(&(0x8000u16 | 512).to_le_bytes());
        assert_eq!(bank(&s).size, 512 << 10);
    }

    #[test]
    fn sysfs_total() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = dir.path().join("sys/devices/system/memory");
        for (n, online) in [(0, "1"), (1, "1"), (2, "0")] {
            std::fs::create_dir_all(m.join(format!("memory{n}"))).expect("mk");
            std::fs::write(m.join(format!("memory{n}/online")), online).expect("w");
        }
        std::fs::write(m.join("block_size_bytes"), "8000000\n").expect("w");
        let mut facts = Facts::default();
        detect(&Root::at(dir.path()), &mut facts);
        assert_eq!(
            facts.get_text("memory", "total", "size").as_deref(),
            Some("268435456")
        );
        assert_eq!(facts.0.len(), 1);
    }
}
