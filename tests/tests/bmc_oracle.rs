//! BMC parity with IPA 13: `bmc_address`, `bmc_v6address` and `bmc_mac` of our generic manager
//! and of IPA's `GenericHardwareManager` (run by `tests/oracle/ipa_bmc.py`) over the same
//! captured ipmitool outputs (`hardware-managers/tests/fixtures/bmc/<case>`, sources in each
//! case's `SOURCE`). Fails when the oracle venv is missing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use e2e_tests::oracle;
use hardware_managers::HardwareManager;
use hardware_managers::generic::{GenericConfig, GenericHardwareManager};
use hardware_managers::runner::RecordingRunner;
use serde_json::{Value, json};

fn cases() -> anyhow::Result<Vec<PathBuf>> {
    let dir = e2e_tests::workspace_root().join("hardware-managers/tests/fixtures/bmc");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    Ok(cases)
}

/// Our three values for `case`, with an IPMI device node in a fake root.
fn ours(case: &PathBuf) -> anyhow::Result<Value> {
    let root = tempfile::tempdir()?;
    std::fs::create_dir(root.path().join("dev"))?;
    std::fs::write(root.path().join("dev/ipmi0"), "")?;
    let manager = GenericHardwareManager::new(GenericConfig {
        root: root.path().to_path_buf(),
        runner: Some(Arc::new(RecordingRunner::replaying(case))),
        ..GenericConfig::default()
    });
    Ok(json!({
        "bmc_address": manager.get_bmc_address()?,
        "bmc_v6address": manager.get_bmc_v6address()?,
        "bmc_mac": manager.get_bmc_mac()?,
    }))
}

#[test]
fn bmc_matches_ipa_on_every_fixture() -> anyhow::Result<()> {
    let cases = cases()?;
    assert!(cases.len() >= 8, "fixtures missing: {cases:?}");
    let args: Vec<String> = cases.iter().map(|c| c.display().to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ipa = oracle::run_json("ipa_bmc.py", &args, None)?;
    let mut diffs = Vec::new();
    for (case, arg) in cases.iter().zip(&args) {
        let theirs = &ipa[*arg];
        let mine = ours(case)?;
        for key in ["bmc_address", "bmc_v6address", "bmc_mac"] {
            if theirs[key] != mine[key] {
                diffs.push(format!(
                    "{}: {key}: IPA {} ours {}",
                    case.file_name().unwrap_or_default().to_string_lossy(),
                    theirs[key],
                    mine[key]
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "differences from IPA:\n{}",
        diffs.join("\n")
    );
    Ok(())
}
