//! Which inspection collectors exist, and IPA's text when one does not.
//!
//! IPA loads its collectors by name from the `ironic_python_agent.inspector.collectors`
//! entry points. A configured name with no entry point makes loading fail as a whole: IPA
//! then runs no collector at all (not even `default`), posts only
//! `{"error": "The following errors were encountered:\n* Failed to load collector {'name'}"}`
//! and treats inspection as failed (the agent logs it and goes on with lookup).

use hardware_managers::collectors::pyfmt::repr_str;

/// IPA 13's collector entry points, all implemented.
pub const IPA_COLLECTORS: [&str; 8] = [
    "default",
    "dmi-decode",
    "extra-hardware",
    "lldp",
    "logs",
    "numa-topology",
    "pci-devices",
    "usb-devices",
];

/// The configured names IPA has no collector for, in configuration order, each once.
pub fn unknown(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !IPA_COLLECTORS.contains(&name.as_str()) && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// IPA's failure text for names that could not be loaded: the message of its
/// `InspectionError('Failed to load collector %s' % names)` with `names` a Python set.
pub fn load_failure(missing: &[String]) -> String {
    let set: Vec<String> = missing.iter().map(|n| repr_str(n)).collect();
    format!("Failed to load collector {{{}}}", set.join(", "))
}

/// IPA's `AccumulatedFailures.get_error()`: `None` without failures.
pub fn error_text(failures: &[String]) -> Option<String> {
    (!failures.is_empty()).then(|| {
        let mut text = String::from("The following errors were encountered:");
        for f in failures {
            text.push_str("\n* ");
            text.push_str(f);
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_names_and_ipas_message() {
        assert!(unknown(&names(&["default", "logs", "lldp", "pci-devices"])).is_empty());
        let missing = unknown(&names(&["default", "foo", "bar", "foo"]));
        assert_eq!(missing, ["foo", "bar"]);
        assert_eq!(
            load_failure(&missing[..1]),
            "Failed to load collector {'foo'}"
        );
        assert_eq!(
            load_failure(&missing),
            "Failed to load collector {'foo', 'bar'}"
        );
        assert_eq!(
            load_failure(&names(&["it's"])),
            "Failed to load collector {\"it's\"}"
        );
        assert_eq!(
            error_text(&[load_failure(&missing[..1])]).as_deref(),
            Some("The following errors were encountered:\n* Failed to load collector {'foo'}")
        );
        assert_eq!(error_text(&[]), None);
    }
}
