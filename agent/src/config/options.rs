//! The `[DEFAULT]` options of IPA's configuration files this agent honours (IPA's `config.py`),
//! each with its kernel parameter when IPA has one, and how its value is checked.

/// How an option's value is checked (oslo's option types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any string.
    Str,
    /// oslo's strict boolean: `true/false`, `yes/no`, `on/off`, `1/0` (any case).
    Bool,
    /// An integer in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A float.
    Float,
    /// One of the listed strings.
    Choice(&'static [&'static str]),
}

/// One option of IPA's `[DEFAULT]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// Its name in a configuration file.
    pub name: &'static str,
    /// The kernel parameter the file value replaces; `None` for configuration-file-only options.
    pub kernel: Option<&'static str>,
    /// How the value is checked.
    pub kind: Kind,
}

const fn opt(name: &'static str, kernel: &'static str, kind: Kind) -> OptionSpec {
    OptionSpec {
        name,
        kernel: Some(kernel),
        kind,
    }
}

const fn conf(name: &'static str, kind: Kind) -> OptionSpec {
    OptionSpec {
        name,
        kernel: None,
        kind,
    }
}

const NON_NEG: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
const POSITIVE: Kind = Kind::Int {
    min: 1,
    max: i64::MAX,
};
const PORT: Kind = Kind::Int { min: 0, max: 65535 };

/// Every option honoured, with its kernel parameter (note `ip_lookup_sleep` ↔
/// `ipa-ip-lookup-timeout`, as in IPA).
pub const OPTIONS: &[OptionSpec] = &[
    opt("api_url", "ipa-api-url", Kind::Str),
    opt("global_request_id", "ipa-global-request-id", Kind::Str),
    opt("listen_host", "ipa-listen-host", Kind::Str),
    opt("listen_port", "ipa-listen-port", PORT),
    opt("advertise_host", "ipa-advertise-host", Kind::Str),
    opt("advertise_port", "ipa-advertise-port", PORT),
    opt(
        "advertise_protocol",
        "ipa-advertise-protocol",
        Kind::Choice(&["http", "https"]),
    ),
    opt("ip_lookup_attempts", "ipa-ip-lookup-attempts", POSITIVE),
    opt("ip_lookup_sleep", "ipa-ip-lookup-timeout", NON_NEG),
    opt("network_interface", "ipa-network-interface", Kind::Str),
    opt("lookup_timeout", "ipa-lookup-timeout", NON_NEG),
    opt("lookup_interval", "ipa-lookup-interval", NON_NEG),
    opt("lldp_timeout", "ipa-lldp-timeout", Kind::Float),
    opt("collect_lldp", "ipa-collect-lldp", Kind::Bool),
    opt(
        "inspection_callback_url",
        "ipa-inspection-callback-url",
        Kind::Str,
    ),
    opt(
        "inspection_collectors",
        "ipa-inspection-collectors",
        Kind::Str,
    ),
    opt(
        "inspection_dhcp_wait_timeout",
        "ipa-inspection-dhcp-wait-timeout",
        NON_NEG,
    ),
    opt(
        "inspection_dhcp_all_interfaces",
        "ipa-inspection-dhcp-all-interfaces",
        Kind::Bool,
    ),
    opt(
        "hardware_initialization_delay",
        "ipa-hardware-initialization-delay",
        NON_NEG,
    ),
    opt("disk_wait_attempts", "ipa-disk-wait-attempts", NON_NEG),
    opt("disk_wait_delay", "ipa-disk-wait-delay", NON_NEG),
    opt("insecure", "ipa-insecure", Kind::Bool),
    opt("ntp_server", "ipa-ntp-server", Kind::Str),
    opt("agent_token", "ipa-agent-token", Kind::Str),
    opt(
        "image_download_connection_timeout",
        "ipa-image-download-connection-timeout",
        POSITIVE,
    ),
    opt(
        "image_download_connection_retries",
        "ipa-image-download-connection-retries",
        NON_NEG,
    ),
    opt(
        "image_download_connection_retry_interval",
        "ipa-image-download-connection-retry-interval",
        NON_NEG,
    ),
    opt(
        "image_download_max_duration",
        "ipa-image-download-max-duration",
        NON_NEG,
    ),
    opt("ironic_api_version", "ipa-ironic-api-version", Kind::Str),
    opt(
        "enable_vlan_interfaces",
        "ipa-enable-vlan-interfaces",
        Kind::Str,
    ),
    opt(
        "ignore_bootloader_failure",
        "ipa-ignore-bootloader-failure",
        Kind::Bool,
    ),
    opt(
        "inject_files_priority",
        "ipa-inject-files-priority",
        Kind::Int { min: 0, max: 99 },
    ),
    opt("http_request_timeout", "ipa-http-request-timeout", POSITIVE),
    // IPA has no kernel parameter for it; this agent reads one (see `Config`).
    opt(
        "enable_bios_bootloader_install",
        "ipa-enable-bios-bootloader-install",
        Kind::Bool,
    ),
    conf("cafile", Kind::Str),
    conf("certfile", Kind::Str),
    conf("keyfile", Kind::Str),
    conf("enable_auto_tls", Kind::Bool),
    conf("fail_if_clock_not_set", Kind::Bool),
    // oslo.log's; `ipa-debug` on the kernel command line overrides it, as in IPA.
    conf("debug", Kind::Bool),
];

/// IPA's (and oslo.log's) `[DEFAULT]` options this agent knows but does not act on: a file
/// setting one gets a warning that says so rather than "unknown option".
pub const NOT_SUPPORTED: &[&str] = &[
    "listen_tls",
    "tls_cert_file",
    "tls_key_file",
    "auto_tls_allowed_clock_skew",
    "tls_min_version",
    "tls_cipher_suites",
    "tls_certificate_curve",
    "introspection_daemon",
    "introspection_daemon_post_interval",
    "image_server_user",
    "image_server_password",
    "image_server_auth_strategy",
    "guard-special-filesystems",
    "guard_special_filesystems",
    "enable_discard_erase",
    "md5_enabled",
    "config_drive_rebuild",
    "disable_deep_image_inspection",
    "permitted_image_formats",
    "disable_bootc_deploy",
    "log_file",
    "log_dir",
    "log_config_append",
    "use_stderr",
    "use_syslog",
    "use_journal",
    "log_date_format",
    "default_log_levels",
    "logging_context_format_string",
];

/// The spec of option `name`.
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// oslo's strict boolean; `None` when not one of its spellings.
pub fn strict_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

impl Kind {
    /// Checks `value`; returns it normalised (trimmed, booleans as `true`/`false`) or why it
    /// is invalid.
    pub fn check(self, value: &str) -> Result<String, String> {
        let v = value.trim();
        match self {
            Kind::Str => Ok(value.to_string()),
            Kind::Bool => strict_bool(v)
                .map(|b| b.to_string())
                .ok_or_else(|| format!("`{v}` is not a boolean (true/false)")),
            Kind::Int { min, max } => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                Ok(n) if n < min => Err(format!("{n} is less than the minimum {min}")),
                Ok(n) => Err(format!("{n} is greater than the maximum {max}")),
                Err(_) => Err(format!("`{v}` is not an integer")),
            },
            Kind::Float => match v.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(v.to_string()),
                _ => Err(format!("`{v}` is not a number")),
            },
            Kind::Choice(choices) => {
                if choices.contains(&v) {
                    Ok(v.to_string())
                } else {
                    Err(format!("`{v}` is not one of {}", choices.join(", ")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(
                OPTIONS[..i].iter().all(|p| p.name != o.name),
                "{} twice",
                o.name
            );
            assert!(!NOT_SUPPORTED.contains(&o.name), "{}", o.name);
            if let Some(k) = o.kernel {
                assert!(k.starts_with("ipa-"), "{k}");
            }
        }
        assert_eq!(
            find("ip_lookup_sleep").and_then(|o| o.kernel),
            Some("ipa-ip-lookup-timeout")
        );
        assert_eq!(find("cafile").and_then(|o| o.kernel), None);
    }

    #[test]
    fn values_are_checked_as_oslo() {
        assert_eq!(Kind::Bool.check(" Yes "), Ok("true".into()));
        assert_eq!(Kind::Bool.check("OFF"), Ok("false".into()));
        assert!(Kind::Bool.check("maybe").is_err());
        assert_eq!(POSITIVE.check("6"), Ok("6".into()));
        assert!(POSITIVE.check("0").is_err());
        assert!(NON_NEG.check("1.5").is_err());
        assert!(PORT.check("65536").is_err());
        assert!(Kind::Float.check("inf").is_err());
        assert_eq!(Kind::Float.check("2.5"), Ok("2.5".into()));
        assert!(Kind::Choice(&["http", "https"]).check("ftp").is_err());
        assert_eq!(Kind::Str.check(" kept "), Ok(" kept ".into()));
    }
}
