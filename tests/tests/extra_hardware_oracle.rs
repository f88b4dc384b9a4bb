//! ORACLE: the `extra-hardware` collector against `hardware-detect` (the `hardware` package,
//! 0.33.0, in the oracle venv) on this same machine.
//!
//! The agent inspects end to end (`ipa-inspection-collectors=default,extra-hardware`,
//! `ipa-inspection-benchmarks=cpu,mem`) and posts to the conductor shim; the facts it posted
//! under `data` must carry the same `(category, item, key)` triples as
//! `hardware-detect --benchmark cpu mem` printed, with equal values, except:
//!
//! - [`LSHW_ONLY`]: `network/*/vendor` and `network/*/product` are `lshw`'s names from the
//!   PCI ID database, which the ramdisk does not ship; they are absent from ours.
//! - [`varying`]: the memory benchmark results (`*bandwidth_*`) and `loops_per_sec` are
//!   timings, and which block sizes run depends on `MemFree` at that moment (other work on
//!   the machine moves it): neither their values nor their presence are compared.
//!
//! Not comparable on this host (no DMI, no IPMI, no InfiniBand, no SMART-capable disk, no
//! RAID tools) and covered by unit tests on fixtures instead: the SMBIOS memory banks,
//! `system/product/*`, `system/motherboard/*`, `firmware/bios/*`, ipmi, infiniband, SMART.
//! Not implemented at all: the Areca/HP/MegaRAID controller and HP BIOS facts
//! (`areca`, `hpa`, `megaraid`, `hp` categories), which need proprietary tools.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use e2e_tests::oracle;
use serde_json::Value;

/// Keys `hardware-detect` reports from `lshw` only (PCI ID database names).
const LSHW_ONLY: [(&str, &str); 2] = [("network", "vendor"), ("network", "product")];

/// Whether a key is a benchmark timing (neither presence nor value compared).
fn varying(key: &str) -> bool {
    key == "loops_per_sec" || key.contains("bandwidth_")
}

type Triples = BTreeMap<(String, String, String), Vec<Value>>;

fn triples(facts: &Value) -> anyhow::Result<Triples> {
    let mut out = Triples::new();
    for f in facts.as_array().context("facts are not a list")? {
        let f = f.as_array().context("a fact is not a list")?;
        if f.len() != 4 {
            bail!("a fact has {} fields: {f:?}", f.len());
        }
        let text = |v: &Value| v.as_str().map(String::from).context("non-text name");
        out.entry((text(&f[0])?, text(&f[1])?, text(&f[2])?))
            .or_default()
            .push(f[3].clone());
    }
    Ok(out)
}

fn hardware_detect() -> anyhow::Result<Value> {
    let exe = oracle::venv()?.join("bin/hardware-detect");
    let out = Command::new(&exe)
        .args(["--benchmark", "cpu", "mem"])
        .output()
        .with_context(|| exe.display().to_string())?;
    if !out.status.success() {
        bail!(
            "hardware-detect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("hardware-detect printed no JSON")
}

fn agent_facts() -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = oracle::inspect_host(
        dir.path(),
        "ipa-inspection-collectors=default,extra-hardware ipa-inspection-benchmarks=cpu,mem",
        Duration::from_secs(180),
    )?;
    let data = &node["inspection_data"];
    assert!(
        data["error"].is_null(),
        "collector errors: {}",
        data["error"]
    );
    assert_eq!(
        data["configuration"]["collectors"],
        serde_json::json!(["default", "extra-hardware"])
    );
    Ok(data["data"].clone())
}

#[test]
fn extra_hardware_matches_hardware_detect() -> anyhow::Result<()> {
    let theirs = triples(&hardware_detect()?)?;
    let ours = triples(&agent_facts()?)?;
    let excepted =
        |(c, _, k): &(String, String, String)| LSHW_ONLY.iter().any(|(lc, lk)| c == lc && k == lk);
    let mut problems = Vec::new();
    for (t, values) in &theirs {
        if excepted(t) || varying(&t.2) {
            continue;
        }
        match ours.get(t) {
            None => problems.push(format!("missing {t:?} = {values:?}")),
            Some(v) if v != values => {
                problems.push(format!("{t:?}: ours {v:?}, hardware-detect {values:?}"))
            }
            Some(_) => {}
        }
    }
    for (t, values) in &ours {
        if !theirs.contains_key(t) && !varying(&t.2) {
            problems.push(format!("extra {t:?} = {values:?}"));
        }
    }
    let categories = |m: &Triples| {
        m.keys()
            .map(|(c, _, _)| c.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(categories(&ours), categories(&theirs), "categories differ");
    assert!(
        problems.is_empty(),
        "{} differences from hardware-detect:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The cpu benchmark's deterministic facts were compared.
    assert!(
        ours.keys().any(|(c, _, k)| c == "cpu" && k == "bogomips"),
        "no cpu benchmark facts"
    );
    // The comparison saw the categories this host has.
    for c in ["disk", "memory", "network", "cpu", "numa", "system", "hw"] {
        assert!(categories(&ours).contains(c), "no {c} facts");
    }
    Ok(())
}
