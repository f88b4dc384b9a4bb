//! `kernel_cmdline`: `/proc/cmdline` parsing ([`KernelParams::parse`]) and everything the agent
//! builds from it: [`Config::from_parts`] (URLs, listen address, timeouts, booleans, API
//! version), the inspection URLs, the `BOOTIF` MAC, the `inject_files` priority and the image
//! download options.
//!
//! Input: the command line (the agent reads it with `read_to_string`, so non-UTF-8 input is
//! refused before parsing and skipped here).
//!
//! Checked: no panic; every parsed key is non-empty and `get` agrees with `iter`; `Debug` of the
//! parameters and of the configuration never shows the agent token; API URLs of an accepted
//! configuration start with `http://` or `https://`.

#![no_main]

use std::sync::{Arc, OnceLock};

use clap::Parser;
use hardware_managers::{Chain, HardwareManager, SupportLevel};
use ironic_agent::config::{Config, Flags, KernelParams};
use ironic_agent::context::AgentContext;
use ironic_agent::logbuf::LogBuffer;
use ironic_agent::power::RecordingPower;
use libfuzzer_sys::fuzz_target;

struct Minimal;

impl HardwareManager for Minimal {
    fn class_name(&self) -> String {
        "Minimal".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
}

struct Fixture {
    flags: Flags,
    chain: Chain,
    power: Arc<RecordingPower>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch =
            std::env::temp_dir().join(format!("ironic-agent-fuzz-{}", std::process::id()));
        Fixture {
            flags: Flags::parse_from([
                "ironic-agent".to_string(),
                format!("--power=record:{}", scratch.join("power").display()),
                format!("--network=record:{}", scratch.join("network").display()),
            ]),
            chain: Chain::new(vec![Arc::new(Minimal) as Arc<dyn HardwareManager>])
                .expect("one supported manager"),
            power: Arc::new(RecordingPower::new(&scratch.join("power"))),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    let params = KernelParams::parse(text);
    for (k, v) in params.iter() {
        assert!(!k.is_empty(), "empty key parsed from {text:?}");
        assert_eq!(params.get(k), Some(v));
        let _ = params.get_bool(k);
    }
    // The token must never be printed: neither as a parameter nor as the config's field.
    let token = params
        .get("ipa-agent-token")
        .filter(|t| !t.is_empty())
        .map(String::from);
    if let Some(t) = &token {
        let shown = format!("{params:?}");
        assert!(
            !shown.contains(&format!("{:?}: {t:?}", "ipa-agent-token")),
            "token in Debug of the parameters: {shown}"
        );
    }

    let Ok(config) = Config::from_parts(&f.flags, params) else {
        return;
    };
    for url in &config.api_urls {
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "{url}"
        );
    }
    let _ = config.inspection_urls();
    if let Some(bootif) = &config.bootif {
        let _ = ironic_agent::conductor::inspection::bootif_mac(bootif);
    }
    let priority = ironic_agent::deploy::inject::priority(&config.kernel);
    assert!((0..=99).contains(&priority));
    if let Some(t) = &token {
        let shown = format!("{config:?}");
        assert!(
            !shown.contains(&format!("agent_token: Some({t:?})")),
            "token in Debug of the configuration: {shown}"
        );
    }
    let ctx = AgentContext::new(
        config,
        f.chain.clone(),
        f.power.clone(),
        LogBuffer::new(1024),
    );
    let settings =
        ironic_agent::deploy::DeploySettings::new(&ctx.config, ctx.state.lookup.clone());
    let _ = settings.download_options();
    let _ = settings.md5_enabled();
});
