//! `clean_uefi_nvram` (clean and deploy step, priority 0, `deploy` interface): removes the UEFI
//! boot entries whose device path matches one of `match_patterns` (regular expressions,
//! case-insensitive; by default `^HD\(`, `shim.*\.efi` and `grub.*\.efi`: entries booting from
//! a disk, leaving network and firmware entries alone).
//!
//! The entries come from `efibootmgr -v` (UTF-8, or UTF-16 from older versions), each matching
//! one is removed with `efibootmgr -b XXXX -B`. The patterns are compiled with
//! `regex-automata` (already built for the log filter) in ASCII mode: `(?i)` folds ASCII
//! letters only, which is all a device path holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hardware_managers::ipa_error::PyException;
use hardware_managers::{ArgInfo, HardwareError, HardwareResult, Step, StepContext, StepKind};
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::syntax;
use serde_json::{Map, Value};
use tracing::{debug, info};

use crate::clean::deploy_step;
use crate::efibootmgr::{decode_output, parse_efibootmgr};
use crate::tools::{self, Tools};

/// `clean_uefi_nvram`.
pub const CLEAN_UEFI_NVRAM: &str = "clean_uefi_nvram";

/// IPA's default `match_patterns`.
pub const DEFAULT_MATCH_PATTERNS: &[&str] = &[r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"];

/// How long one `efibootmgr` run may take.
const EFIBOOTMGR_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the kernel shows that it was booted through UEFI.
const EFI_SYSFS: &str = "/sys/firmware/efi";

/// The NVRAM step of `kind`: a clean and a deploy step, as IPA offers it.
pub fn steps(kind: StepKind) -> Vec<Step> {
    let step = || {
        let mut s = deploy_step(CLEAN_UEFI_NVRAM, 0, true);
        s.argsinfo = Some(BTreeMap::from([(
            "match_patterns".to_string(),
            ArgInfo {
                description: format!(
                    "A list of regular expressions matched case-insensitively against each \
                     UEFI boot entry's device path; matching entries are deleted. Default \
                     value is '[\"{}\"]'",
                    DEFAULT_MATCH_PATTERNS.join("\", \"")
                ),
                required: false,
            },
        )]));
        s
    };
    match kind {
        StepKind::Clean | StepKind::Deploy => vec![step()],
        StepKind::Service => Vec::new(),
    }
}

/// Runs `clean_uefi_nvram`; `Incompatible` for other names.
///
/// # Errors
/// `InvalidArgs` (400) for a `match_patterns` that is not a list of valid regular expressions;
/// a failure when the machine was not booted through UEFI or `efibootmgr` fails.
pub fn execute(
    name: &str,
    _step_ctx: &StepContext,
    args: &Map<String, Value>,
) -> HardwareResult<Value> {
    if name != CLEAN_UEFI_NVRAM {
        return Err(HardwareError::incompatible(name));
    }
    let patterns = Patterns::from_args(args)?;
    clean_nvram(&tools::SystemTools, Path::new(EFI_SYSFS), &patterns)?;
    Ok(Value::Null)
}

/// Compiled `match_patterns`.
pub struct Patterns(Vec<(String, dense::DFA<Vec<u32>>)>);

impl Patterns {
    /// The `match_patterns` argument (IPA's defaults when absent or null), compiled.
    ///
    /// # Errors
    /// `InvalidArgs` when it is not a list of strings or one is not a valid expression.
    pub fn from_args(args: &Map<String, Value>) -> HardwareResult<Self> {
        let given: Vec<String> = match args.get("match_patterns") {
            None | Some(Value::Null) => DEFAULT_MATCH_PATTERNS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| not_a_list(&Value::Array(items.clone())))?,
            Some(other) => return Err(not_a_list(other)),
        };
        given
            .into_iter()
            .map(|p| compile(&p).map(|re| (p, re)))
            .collect::<HardwareResult<_>>()
            .map(Patterns)
    }

    /// The first pattern found in `path`.
    pub fn first_match(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, re)| {
                re.try_search_fwd(&regex_automata::Input::new(path))
                    .is_ok_and(|m| m.is_some())
            })
            .map(|(p, _)| p.as_str())
    }
}

fn not_a_list(got: &Value) -> HardwareError {
    HardwareError::InvalidArgs(format!(
        "The match_patterns must be a list of strings: {got}"
    ))
}

/// One case-insensitive expression, searched anywhere in the text.
fn compile(pattern: &str) -> HardwareResult<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .syntax(
            syntax::Config::new()
                .case_insensitive(true)
                .unicode(false)
                .utf8(false),
        )
        .configure(
            dense::Config::new()
                .dfa_size_limit(Some(8 << 20))
                .determinize_size_limit(Some(8 << 20)),
        )
        .build(pattern)
        .map_err(|e| {
            HardwareError::InvalidArgs(format!(
                "The match_patterns must be a list of strings: {pattern:?} is not a valid \
                 regular expression: {e}"
            ))
        })
}

/// Removes every entry whose device path matches one of `patterns`.
///
/// # Errors
/// A failure when `efi_dir` is missing (not booted through UEFI) or `efibootmgr` fails.
pub fn clean_nvram(tools: &dyn Tools, efi_dir: &Path, patterns: &Patterns) -> HardwareResult<()> {
    if !efi_dir.is_dir() {
        return Err(HardwareError::Unexpected {
            exception: PyException::ProcessExecutionError,
            message: format!(
                "Cannot clean the UEFI NVRAM: the machine was not booted in UEFI mode ({} is \
                 missing)",
                efi_dir.display()
            ),
        });
    }
    let failed = |message: String| HardwareError::Unexpected {
        exception: PyException::ProcessExecutionError,
        message,
    };
    let listing =
        tools::run_ok(tools, "efibootmgr", &["-v"], EFIBOOTMGR_TIMEOUT).map_err(failed)?;
    let mut removed: Vec<String> = Vec::new();
    for entry in parse_efibootmgr(&decode_output(&listing)) {
        let Some(pattern) = patterns.first_match(&entry.path) else {
            debug!(boot = %entry.num, label = %entry.label, path = %entry.path, "kept");
            continue;
        };
        if removed.contains(&entry.num) {
            continue;
        }
        info!(boot = %entry.num, label = %entry.label, path = %entry.path, pattern,
              "deleting UEFI boot entry");
        tools::run_ok(
            tools,
            "efibootmgr",
            &["-b", &entry.num, "-B"],
            EFIBOOTMGR_TIMEOUT,
        )
        .map_err(failed)?;
        removed.push(entry.num);
    }
    info!(removed = ?removed, "UEFI NVRAM cleaned");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::efibootmgr::BootEntry;
    use crate::tools::fake::FakeTools;

    /// efibootmgr 17: tab between label and path, `File(...)` nodes.
    const V17: &str = "BootCurrent: 0001\n\
Timeout: 1 seconds\n\
BootOrder: 0001,0000,0002,0003\n\
Boot0000* UEFI PXEv4 (MAC:525400123456)\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv4(0.0.0.0:0<->0.0.0.0:0,0,0)N.....YM....R,Y.\n\
Boot0001* debian\tHD(1,GPT,2a7e1f3c-54f4-4d0c-8a5e-5a1b6e2c9d11,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)\n\
Boot0002* UEFI HTTPv6 (MAC:525400123456)\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv6([::]:<->[::]:,0,0)/Uri()N.....YM....R,Y.\n\
Boot0003* EFI Internal Shell\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(7c04a583-9e3e-4f1c-ad65-e05268d0b4d1)\n\
Boot0004  ubuntu (inactive)\tHD(1,GPT,0f0e0d0c-0b0a-0908-0706-050403020100,0x800,0x100000)/File(\\EFI\\ubuntu\\grubx64.efi)\n";

    /// efibootmgr 18: two spaces or a single space before the path, `dp:` lines.
    const V18: &str = "BootCurrent: 0001\n\
BootOrder: 0001,0000,0005\n\
Boot0000* UEFI PXEv4 (MAC:525400123456)  PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv4(0.0.0.0,0,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)\n\
      dp: 02 01 0c 00 d0 41 03 0a 00 00 00 00 / 7f ff 04 00\n\
Boot0001* debian  HD(1,GPT,2a7e1f3c-54f4-4d0c-8a5e-5a1b6e2c9d11,0x800,0x100000)/\\EFI\\debian\\shimx64.efi\n\
Boot0005* Rocky Linux HD(2,GPT,aa,0x1000,0x2000)/\\EFI\\rocky\\SHIMX64.EFI\n\
Boot0006* UEFI Misc Device\tPciRoot(0x0)/Pci(0x4,0x0){auto_created_boot_option}\n";

    fn nums(entries: &[BootEntry], patterns: &Patterns) -> Vec<String> {
        entries
            .iter()
            .filter(|e| patterns.first_match(&e.path).is_some())
            .map(|e| e.num.clone())
            .collect()
    }

    fn defaults() -> HardwareResult<Patterns> {
        Patterns::from_args(&Map::new())
    }

    #[test]
    fn parses_efibootmgr_17() -> anyhow::Result<()> {
        let entries = parse_efibootmgr(V17);
        assert_eq!(entries.len(), 5);
        assert_eq!(
            entries[1],
            BootEntry {
                num: "0001".into(),
                label: "debian".into(),
                path: "HD(1,GPT,2a7e1f3c-54f4-4d0c-8a5e-5a1b6e2c9d11,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)".into(),
            }
        );
        assert_eq!(entries[0].label, "UEFI PXEv4 (MAC:525400123456)");
        assert!(entries[0].path.starts_with("PciRoot(0x0)"));
        assert_eq!(entries[4].num, "0004");
        assert_eq!(entries[4].label, "ubuntu (inactive)");
        // Disk entries go, network and firmware entries stay.
        assert_eq!(nums(&entries, &defaults()?), ["0001", "0004"]);
        Ok(())
    }

    #[test]
    fn parses_efibootmgr_18() -> anyhow::Result<()> {
        let entries = parse_efibootmgr(V18);
        let got: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.num.as_str(), e.label.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("0000", "UEFI PXEv4 (MAC:525400123456)"),
                ("0001", "debian"),
                ("0005", "Rocky Linux"),
                ("0006", "UEFI Misc Device"),
            ]
        );
        assert!(entries[1].path.starts_with("HD(1,GPT,"));
        assert!(entries[2].path.ends_with("\\SHIMX64.EFI"));
        assert_eq!(nums(&entries, &defaults()?), ["0001", "0005"]);
        Ok(())
    }

    #[test]
    fn decodes_utf16_output() {
        let bytes: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(V17.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let lossy = String::from_utf8_lossy(&bytes);
        assert_eq!(decode_output(&lossy), V17);
        assert_eq!(decode_output(V18), V18);
    }

    #[test]
    fn custom_patterns_are_case_insensitive() -> anyhow::Result<()> {
        let p = Patterns::from_args(
            &json!({"match_patterns": ["ipv4\\("]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )?;
        assert_eq!(nums(&parse_efibootmgr(V17), &p), ["0000"]);
        Ok(())
    }

    #[test]
    fn bad_match_patterns_are_400() {
        for bad in [
            json!("^HD\\("),
            json!([1, 2]),
            json!(["ok", null]),
            json!({"a": "b"}),
        ] {
            let args = json!({ "match_patterns": bad })
                .as_object()
                .cloned()
                .unwrap_or_default();
            match Patterns::from_args(&args) {
                Err(e @ HardwareError::InvalidArgs(_)) => {
                    assert_eq!(e.code(), 400);
                    assert!(e.to_string().contains("match_patterns"), "{e}");
                }
                Err(other) => panic!("{bad}: expected InvalidArgs, got {other:?}"),
                Ok(_) => panic!("{bad}: accepted"),
            }
        }
        let args = json!({ "match_patterns": ["HD\\(", "grub(["] });
        match Patterns::from_args(args.as_object().unwrap_or(&Map::new())) {
            Err(e @ HardwareError::InvalidArgs(_)) => {
                assert!(e.to_string().contains("\"grub([\""), "{e}");
            }
            other => panic!("expected InvalidArgs, got {:?}", other.err()),
        }
    }

    #[test]
    fn deletes_matching_entries_with_efibootmgr() -> anyhow::Result<()> {
        let efi = tempfile::tempdir()?;
        let tools = FakeTools::new()
            .ok("efibootmgr -v", V17)
            .ok("efibootmgr -b 0001 -B", "")
            .ok("efibootmgr -b 0004 -B", "");
        clean_nvram(&tools, efi.path(), &defaults()?)?;
        assert_eq!(
            tools.calls(),
            [
                "efibootmgr -v",
                "efibootmgr -b 0001 -B",
                "efibootmgr -b 0004 -B"
            ]
        );
        Ok(())
    }

    #[test]
    fn refuses_without_uefi_and_reports_tool_failures() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let tools = FakeTools::new().ok("efibootmgr -v", V17);
        let err = clean_nvram(&tools, &tmp.path().join("efi"), &defaults()?)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not booted in UEFI mode"), "{err}");
        assert!(tools.calls().is_empty());

        let tools = FakeTools::new().ok("efibootmgr -v", V17);
        let err = clean_nvram(&tools, tmp.path(), &defaults()?)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("efibootmgr -b 0001 -B"), "{err}");
        Ok(())
    }

    #[test]
    fn listed_for_clean_and_deploy() {
        for kind in [StepKind::Clean, StepKind::Deploy] {
            let s = steps(kind);
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].step, CLEAN_UEFI_NVRAM);
            assert_eq!(s[0].interface, "deploy");
            assert_eq!(s[0].priority, 0);
            assert_eq!(s[0].abortable, Some(true));
            let info = s[0].argsinfo.as_ref().and_then(|a| a.get("match_patterns"));
            assert!(info.is_some_and(|i| !i.required && i.description.contains("^HD\\(")));
        }
        assert!(steps(StepKind::Service).is_empty());
    }
}
