//! `ipa_conf`: IPA's configuration files: the oslo INI parser (`config/ini.rs`), the option
//! table and value checks (`ConfValues::apply`), and `Config::from_sources` with the values
//! merged over an empty kernel command line.
//!
//! Input: the text of one `.conf` file (non-UTF-8 input is refused by the agent's
//! `read_to_string` before parsing, and skipped here).
//!
//! Checked: no panic; an error names the file and a line that exists; parsed keys are
//! non-empty and trimmed, every entry's line exists; values accepted by `apply` are the last
//! ones of their key; `Debug` of the configuration never shows an agent token set in the file.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use clap::Parser;
use ironic_agent::config::{ConfValues, Config, Flags, KernelParams, ini, options};
use libfuzzer_sys::fuzz_target;

fn flags() -> &'static Flags {
    static FLAGS: OnceLock<Flags> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let scratch =
            std::env::temp_dir().join(format!("ironic-agent-fuzz-{}", std::process::id()));
        Flags::parse_from([
            "ironic-agent".to_string(),
            format!("--power=record:{}", scratch.join("power").display()),
            format!("--network=record:{}", scratch.join("network").display()),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/fuzz/ipa.conf");
    let lines = text.split('\n').count();
    let parsed = match ini::parse(file, text) {
        Ok(p) => p,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("/fuzz/ipa.conf:{}: ", e.line))
            );
            return;
        }
    };
    for (_, entries) in &parsed.sections {
        for e in entries {
            assert!(!e.key.is_empty() && e.key.trim() == e.key, "{e:?}");
            assert!(e.line >= 1 && e.line <= lines, "{e:?}");
        }
    }
    let mut values = ConfValues::default();
    let mut notes = Vec::new();
    if let Err(e) = values.apply(file, text, &mut notes) {
        assert!(e.to_string().starts_with("/fuzz/ipa.conf:"), "{e}");
        return;
    }
    // The last assignment of a known option is the one kept.
    for e in parsed.section("DEFAULT") {
        let last = parsed
            .section("DEFAULT")
            .iter()
            .rev()
            .find(|x| x.key == e.key);
        if options::find(&e.key).is_some() {
            let origin = values.origin(&e.key).map(|o| o.line);
            assert_eq!(origin, last.map(|l| l.line), "{e:?}");
        } else {
            assert!(values.origin(&e.key).is_none(), "{e:?}");
        }
    }
    let Ok(config) = Config::from_sources(flags(), KernelParams::parse(""), &values) else {
        return;
    };
    if let Some(t) = values.get("agent_token").filter(|t| !t.is_empty()) {
        let shown = format!("{config:?}");
        assert!(
            !shown.contains(&format!("agent_token: Some({t:?})")),
            "token in Debug of the configuration: {shown}"
        );
    }
});
