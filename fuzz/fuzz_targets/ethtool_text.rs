//! `ethtool_text`: `hardware_managers::extra::ethtool::parse_text`, which turns `ethtool -a` /
//! `ethtool -k` output into `hardware-detect`'s network facts. No process runs.
//!
//! Input: the interface name, a NUL byte, then the tool's output (without a NUL byte the whole
//! input is the output, for `eth0`); decoded lossily.
//!
//! Checked: no panic; every fact is `network`/<interface>, its key and value have no tab and
//! are trimmed, the value is not empty; at most one fact per input line, none for a line that
//! names the interface.

#![no_main]

use hardware_managers::extra::Facts;
use hardware_managers::extra::ethtool::parse_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (ifname, text) = input.split_once('\0').unwrap_or(("eth0", &input));
    let mut facts = Facts::default();
    parse_text(&mut facts, ifname, text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(ifname)).collect();
    assert!(facts.iter().count() <= lines.len());
    for f in facts.iter() {
        assert_eq!(f.category(), "network");
        assert_eq!(f.item(), ifname);
        let value = f.value().as_str().expect("a text value");
        assert!(
            !value.is_empty() && value.trim() == value && !value.contains('\t'),
            "{value:?}"
        );
        let key = f.key();
        assert!(key.trim() == key && !key.contains('\t'), "{key:?}");
    }
});
