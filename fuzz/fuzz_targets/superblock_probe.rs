//! `superblock_probe`: everything the agent reads from the start of a disk or image — the
//! superblock probe (ext, xfs, btrfs, vfat, swap, iso9660, MD, LVM2, LUKS), the MBR parser with
//! its extended-partition chain, the GPT reader, the combined partition-table reader with a
//! probe of every partition (as the config-drive search does), and the image-format inspector
//! (qcow2, vmdk, vhd, vhdx, vdi, luks, iso, gpt/raw) both on an in-memory head and on a file.
//!
//! Input: the first bytes of a disk or image. The probes read files, so the input is written to
//! a scratch file in /dev/shm (removed after each run); nothing else is opened.
//!
//! Checked: no panic or hang; a probe's magic ranges lie inside the probed range; the first
//! probe result equals the single-probe answer; a detected image format is a known one and the
//! in-memory and file-backed inspections agree.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ironic_agent::disk::{gpt_table, mbr, probe, table};
use ironic_agent::image::format::{self, KNOWN_FORMATS};
use libfuzzer_sys::fuzz_target;

/// Most partitions probed per input (a GPT may list hundreds).
const MAX_PROBED_PARTITIONS: usize = 16;

fn scratch_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        dir.join(format!(
            "ironic-agent-fuzz-probe-{}.img",
            std::process::id()
        ))
    })
}

fn check_probe(hit: &probe::Probed, len: u64) {
    for (off, n) in &hit.magic {
        assert!(
            off.checked_add(*n).is_some_and(|end| end <= len),
            "{} magic at {off}+{n} outside {len} bytes",
            hit.fstype
        );
    }
}

fn run(path: &std::path::Path, data: &[u8]) {
    let len = data.len() as u64;

    // Superblocks of the whole device.
    let all = probe::probe_all_range(path, 0, len).expect("probing a readable file");
    for hit in &all {
        check_probe(hit, len);
    }
    let first = probe::probe(path).expect("probing a readable file");
    assert_eq!(first.as_ref(), all.first());

    // Partition tables.
    if data.len() >= 512 {
        let _ = mbr::parse(&data[..512]);
    }
    for sector in [512, 4096] {
        let _ = mbr::read_mbr(path, sector);
    }
    let _ = gpt_table::read_gpt(path);
    if let Ok(Some(t)) = table::read_table(path) {
        let _ = t.numbers();
        for p in t
            .partitions
            .iter()
            .filter(|p| !p.is_extended())
            .take(MAX_PROBED_PARTITIONS)
        {
            let _ = t.get(p.number);
            if let Ok(hits) = probe::probe_all_range(path, p.start, p.size) {
                for hit in &hits {
                    check_probe(hit, p.size);
                }
            }
        }
        if t.partitions.len() <= MAX_PROBED_PARTITIONS {
            let _ = table::find_config_drive(path);
        }
    }

    // Image format: the head in memory, and the same bytes as a file.
    let in_memory = format::inspect(data, Some(len));
    let from_file = format::inspect_file(path);
    match (&in_memory, &from_file) {
        (Ok(a), Ok(b)) => {
            assert!(KNOWN_FORMATS.contains(&a.name), "unknown format {}", a.name);
            assert_eq!(a, b, "in-memory and file inspection disagree");
            for permitted in [&["raw".to_string()][..], &["qcow2".into(), "gpt".into()]] {
                for declared in [None, Some("raw"), Some("qcow2"), Some("vpc"), Some("bogus")] {
                    let _ = format::check_allowed(a, declared, permitted);
                }
            }
            let _ = a.qemu_driver();
            let _ = a.is_raw_bytes();
        }
        (Err(_), Err(_)) => {}
        _ => panic!("in-memory ({in_memory:?}) and file ({from_file:?}) inspection disagree"),
    }
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_file();
    std::fs::write(path, data).expect("writing the scratch image");
    run(path, data);
    let _ = std::fs::remove_file(path);
});
