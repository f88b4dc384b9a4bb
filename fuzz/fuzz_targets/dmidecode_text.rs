//! `dmidecode_text`: the `dmi-decode` collector's reader of `dmidecode`'s text output,
//! `hardware_managers::collectors::dmi::parse` (IPA's `parse_dmi`: blocks, `DMI type N`,
//! `Key: value` rows and indented lists, the memory arrays' summed `Number Of Devices`).
//!
//! Input: `dmidecode -t bios -t processor -t memory` output (decoded lossily, as the command
//! runner decodes it).
//!
//! Checked: no panic; an error is one of the two documented kinds, raised only with a type 16
//! table; every key, text value, list item and `Handle` line of a table is text of the input
//! (the key non-empty or not, stripped), besides the collector's own `Number Of Devices`
//! (a count) and `devices`; `memory` has no `Handle`, and is either `devices` alone or (with
//! a type 16 table) a table with the count; the result serialises to a JSON object with one member per key.

#![no_main]

use hardware_managers::collectors::dmi::{DmiInfo, DmiParseError, DmiSection, DmiValue, parse};
use libfuzzer_sys::fuzz_target;

fn check_section(text: &str, section: &DmiSection, memory: bool) {
    for (k, v) in &section.0 {
        if memory && (k == "Number Of Devices" || k == "devices") {
            continue;
        }
        assert!(text.contains(k.as_str()), "key {k:?} not in the input");
        assert_eq!(k.trim(), k.as_str(), "key {k:?} not stripped");
        match v {
            DmiValue::Text(t) => {
                assert!(!t.is_empty() && text.contains(t.as_str()), "{k:?}: {t:?}");
            }
            DmiValue::List(items) => {
                for i in items {
                    assert!(text.contains(i.as_str()), "{k:?}: item {i:?}");
                }
            }
            other => panic!("{k:?}: {other:?} in a table"),
        }
    }
    let json = serde_json::to_value(section).expect("a table serialises");
    let object = json.as_object().expect("a table is a JSON object");
    assert_eq!(
        object.len(),
        section.0.len(),
        "duplicate keys in {section:?}"
    );
}

fn check(text: &str, info: &DmiInfo) {
    check_section(text, &info.bios, false);
    for cpu in &info.cpu {
        check_section(text, cpu, false);
    }
    let memory = &info.memory;
    check_section(text, memory, true);
    assert!(memory.get("Handle").is_none(), "{memory:?}");
    // With a type 16 table, `memory` is that table plus the count (and `devices` only with
    // type 17 tables); without one it is just `devices`.
    let arrays = match memory.get("Number Of Devices") {
        Some(DmiValue::Count(_)) => true,
        None => false,
        Some(other) => panic!("Number Of Devices: {other:?}"),
    };
    assert!(!arrays || text.contains("Number Of Devices"));
    match memory.get("devices") {
        Some(DmiValue::Sections(devices)) => {
            for d in devices {
                check_section(text, d, false);
            }
        }
        other => assert!(arrays, "memory devices without a type 16 table: {other:?}"),
    }
    assert!(arrays || memory.0.len() == 1, "{memory:?}");
    let json = serde_json::to_string(info).expect("the dmi structure serialises");
    let back: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert!(back.is_object());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse(&text) {
        Ok(info) => check(&text, &info),
        Err(DmiParseError::Value(e) | DmiParseError::Raised(e)) => {
            assert!(!e.is_empty());
            assert!(text.contains("Handle 0x"), "{e}");
        }
    }
});
