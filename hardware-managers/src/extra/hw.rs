//! `hw/auxv/*` (the ELF auxiliary vector `LD_SHOW_AUXV` prints: hwcap, hwcap2, pagesz,
//! flags, platform) and `ahci/<port>/flags` (the AHCI controller flags in the kernel log).

use std::io::{Read, Seek, SeekFrom};

use super::tools;
use super::{Facts, Root};

const AT_PAGESZ: u64 = 6;
const AT_FLAGS: u64 = 8;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_BASE_PLATFORM: u64 = 24;
const AT_HWCAP2: u64 = 26;

/// The `(type, value)` pairs of an auxv image (native-endian words).
pub fn parse_auxv(bytes: &[u8]) -> Vec<(u64, u64)> {
    const W: usize = std::mem::size_of::<usize>();
    bytes
        .chunks_exact(2 * W)
        .map(|c| {
            let word = |b: &[u8]| {
                let mut a = [0u8; W];
                a.copy_from_slice(b);
                usize::from_ne_bytes(a) as u64
            };
            (word(&c[..W]), word(&c[W..]))
        })
        .take_while(|(t, _)| *t != 0)
        .collect()
}

/// The NUL-terminated string at `addr` in this process.
fn own_string(root: &Root, addr: u64) -> Option<String> {
    let mut mem = std::fs::File::open(root.path("/proc/self/mem")).ok()?;
    mem.seek(SeekFrom::Start(addr)).ok()?;
    let mut buf = [0u8; 64];
    let n = mem.read(&mut buf).ok()?;
    let end = buf[..n].iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// `LD_SHOW_AUXV`'s text for one entry (`None` for entries `hardware-detect` ignores).
pub fn auxv_fact(
    kind: u64,
    value: u64,
    string: impl Fn(u64) -> Option<String>,
) -> Option<(&'static str, String)> {
    match kind {
        AT_HWCAP => Some(("hwcap", format!("{value:x}"))),
        AT_PAGESZ => Some(("pagesz", value.to_string())),
        AT_FLAGS => Some(("flags", format!("{value:#x}"))),
        AT_HWCAP2 => Some(("hwcap2", format!("{value:#x}"))),
        AT_PLATFORM => Some(("platform", string(value)?)),
        AT_BASE_PLATFORM => Some(("base_platform", string(value)?)),
        _ => None,
    }
}

/// Adds the auxv facts of this process (the same kernel and CPU as any other).
pub fn detect_auxv(root: &Root, facts: &mut Facts) {
    if !root.is_system() {
        return;
    }
    let Ok(bytes) = std::fs::read(root.path("/proc/self/auxv")) else {
        return;
    };
    for (kind, value) in parse_auxv(&bytes) {
        if let Some((key, text)) = auxv_fact(kind, value, |a| own_string(root, a)) {
            facts.push("hw", "auxv", key, text);
        }
    }
}

/// The `ahci` fact of the kernel log: the last line from the `ahci` driver decides (its
/// flags, sorted, when it lists them).
pub fn parse_ahci(log: &str) -> Option<(String, String)> {
    let mut found = None;
    for line in log.lines() {
        let mut words: Vec<&str> = line.trim().split(' ').collect();
        if words
            .first()
            .is_some_and(|w| w.starts_with('[') && w.ends_with(']'))
        {
            words.remove(0);
        }
        if words.first().is_some_and(|w| w.contains("ahci")) {
            found = (words.len() >= 4 && words[2].contains("flags")).then(|| {
                let mut flags = words[3..].to_vec();
                flags.sort_unstable();
                (words[1].to_string(), flags.join(" ").trim().to_string())
            });
        }
    }
    found
}

/// Adds the `ahci` fact from `dmesg`.
pub fn detect_ahci(root: &Root, facts: &mut Facts) {
    let log = tools::lines(root, "dmesg", &[]).join("\n");
    if let Some((port, flags)) = parse_ahci(&log) {
        facts.push("ahci", &port, "flags", flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auxv_text() {
        let none = |_| None;
        assert_eq!(
            auxv_fact(AT_HWCAP, 0x178b_fbff, none),
            Some(("hwcap", "178bfbff".into()))
        );
        assert_eq!(
            auxv_fact(AT_HWCAP2, 2, none),
            Some(("hwcap2", "0x2".into()))
        );
        assert_eq!(auxv_fact(AT_FLAGS, 0, none), Some(("flags", "0x0".into())));
        assert_eq!(
            auxv_fact(AT_PAGESZ, 4096, none),
            Some(("pagesz", "4096".into()))
        );
        assert_eq!(auxv_fact(AT_PLATFORM, 1, none), None);
        assert_eq!(auxv_fact(3, 1, none), None);
    }

    #[test]
    fn own_auxv_has_the_page_size() {
        let mut facts = Facts::default();
        detect_auxv(&Root::system(), &mut facts);
        let page = facts.get_text("hw", "auxv", "pagesz").expect("pagesz");
        assert!(page.parse::<u64>().is_ok_and(|p| p >= 4096), "{page}");
        assert!(facts.get("hw", "auxv", "platform").is_some());
    }

    #[test]
    fn ahci_flags() {
        let log = "[1.000000] ahci 0000:00:1f.2: AHCI 0001.0300 32 slots 6 ports 6 Gbps\n\
            [1.100000] ahci 0000:00:1f.2: flags: ncq 64bit pmp led\n[1.200000] other\n";
        // As `hardware-detect` splits on single spaces, a padded timestamp hides the line.
        assert_eq!(parse_ahci("[    1.1] ahci 0000:00:1f.2: flags: ncq"), None);
        assert_eq!(
            parse_ahci(log),
            Some(("0000:00:1f.2:".into(), "64bit led ncq pmp".into()))
        );
        assert_eq!(parse_ahci("nothing"), None);
    }
}
