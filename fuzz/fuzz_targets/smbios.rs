//! `smbios`: the SMBIOS structure-table reader `hardware_managers::extra::smbios::parse` (what
//! `hardware-detect`'s memory facts read from `/sys/firmware/dmi/tables/DMI`), the accessors of
//! its `Structure`, and the memory banks built from it (`extra::memory::banks`, `bank`,
//! `bank_facts`).
//!
//! Input: a structure table as the firmware exposes it.
//!
//! Checked: no panic (no read past the table); structures follow each other inside the table
//! (formatted areas are the table's bytes at their place, headers agree with `kind`, `handle`
//! and the length, end-of-table only last); every string is free of NUL and (when valid UTF-8) bytes of the table followed by a NUL;
//! `byte`/`word`/`dword` agree with the formatted area and `string` is a trimmed string of the
//! set or empty; one bank per memory device (type 17), its vendor, product, serial and slot
//! strings of that structure, its size a multiple of 1 KiB, its clock of 1 MHz; one fact per
//! non-empty bank field, under `memory`.

#![no_main]

use hardware_managers::extra::Facts;
use hardware_managers::extra::memory::{bank, bank_facts, banks};
use hardware_managers::extra::smbios::{Structure, parse};
use libfuzzer_sys::fuzz_target;

fn check_accessors(s: &Structure) {
    for off in 0..s.data.len() + 8 {
        assert_eq!(s.byte(off), s.data.get(off).copied());
        let w = s.word(off);
        assert_eq!(w.is_some(), off + 2 <= s.data.len());
        if let Some(w) = w {
            assert_eq!(w.to_le_bytes(), [s.data[off], s.data[off + 1]]);
        }
        assert_eq!(s.dword(off).is_some(), off + 4 <= s.data.len());
        let text = s.string(off);
        match s.byte(off) {
            Some(n) if n > 0 && usize::from(n) <= s.strings.len() => {
                assert_eq!(text, s.strings[usize::from(n) - 1].trim());
            }
            _ => assert!(text.is_empty()),
        }
    }
}

fn check_bank_string(s: &Structure, v: &str) {
    assert!(
        v.is_empty() || s.strings.iter().any(|x| x.trim() == v),
        "{v:?} not in {s:?}"
    );
}

fuzz_target!(|table: &[u8]| {
    let structures = parse(table);
    // Byte positions are tracked while strings hold no U+FFFD (which may stand for up to
    // three bytes).
    let mut pos = Some(0);
    for (i, s) in structures.iter().enumerate() {
        let len = s.data.len();
        assert!(len >= 4);
        if let Some(p) = pos {
            assert_eq!(table.get(p..p + len), Some(&s.data[..]), "structure {i}");
        }
        assert_eq!(s.data[0], s.kind);
        assert_eq!(usize::from(s.data[1]), len);
        assert_eq!(s.handle.to_le_bytes(), [s.data[2], s.data[3]]);
        assert!(
            s.kind != 127 || i + 1 == structures.len(),
            "end-of-table before the end"
        );
        for text in &s.strings {
            assert!(!text.contains('\0'));
            if !text.contains('\u{fffd}') {
                let mut needle = text.as_bytes().to_vec();
                needle.push(0);
                assert!(
                    table.windows(needle.len()).any(|w| w == needle),
                    "{text:?} is not in the table"
                );
            }
        }
        // The string set: each string and its NUL, then one more NUL (two without strings).
        let set = if s.strings.is_empty() {
            2
        } else {
            s.strings.iter().map(|t| t.len() + 1).sum::<usize>() + 1
        };
        pos = pos
            .filter(|_| !s.strings.iter().any(|t| t.contains('\u{fffd}')))
            .map(|p| p + len + set);
        if let Some(p) = pos {
            assert!(p <= table.len(), "structure {i} ends past the table");
        }
        check_accessors(s);
    }

    let groups = banks(&structures);
    let devices: Vec<&Structure> = structures.iter().filter(|s| s.kind == 17).collect();
    assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), devices.len());
    assert!(groups.iter().all(|g| !g.is_empty()));
    for s in &devices {
        let b = bank(s);
        assert_eq!(b.size % 1024, 0);
        assert_eq!(b.clock % 1_000_000, 0);
        assert!(!b.description.starts_with(' ') && !b.description.ends_with(' '));
        for v in [&b.vendor, &b.product, &b.serial, &b.slot] {
            check_bank_string(s, v);
        }
    }
    let mut facts = Facts::default();
    let count = bank_facts(&groups, &mut facts);
    assert_eq!(count, devices.len());
    let fields: usize = groups
        .iter()
        .flatten()
        .map(|b| {
            usize::from(b.size > 0)
                + usize::from(b.clock > 0)
                + [&b.description, &b.vendor, &b.product, &b.serial, &b.slot]
                    .iter()
                    .filter(|v| !v.is_empty())
                    .count()
        })
        .sum();
    assert_eq!(facts.iter().count(), fields);
    assert!(facts.iter().all(|f| f.category() == "memory"));
});
