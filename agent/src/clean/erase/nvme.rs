//! NVMe secure erase with nvme-cli: Format NVM with a secure-erase setting (IPA's method), or,
//! when the node opts in with `agent_enable_nvme_sanitize`, the Sanitize command.
//!
//! The capabilities come from `nvme id-ctrl <dev> -o json`: `oacs` bit 1 (Format NVM
//! supported), `fna` bit 2 (cryptographic erase supported by Format), `sanicap` bits 0–2
//! (sanitize crypto erase, block erase, overwrite).

use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use crate::tools::{Tools, run_ok};

/// `oacs` bit: the controller supports the Format NVM command.
const OACS_FORMAT: u64 = 0x2;
/// `fna` bit: Format supports cryptographic erase (secure erase setting 2).
const FNA_CRYPTO: u64 = 0x4;
/// `sanicap` bit: sanitize crypto erase.
const SANICAP_CRYPTO: u64 = 0x1;
/// `sanicap` bit: sanitize block erase.
const SANICAP_BLOCK: u64 = 0x2;

/// The capabilities of an NVMe controller that decide the erase method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NvmeCaps {
    /// Optional Admin Command Support.
    pub oacs: u64,
    /// Format NVM Attributes.
    pub fna: u64,
    /// Sanitize Capabilities (0 when the field is absent).
    pub sanicap: u64,
}

/// A Sanitize action (`nvme sanitize -a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanitizeAction {
    /// `-a 4`: cryptographic erase.
    CryptoErase,
    /// `-a 2`: block erase.
    BlockErase,
}

/// How an NVMe namespace is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvmeMethod {
    /// `nvme format <dev> -s <ses> -f`: 1 = user-data erase, 2 = cryptographic erase.
    Format {
        /// Secure erase setting.
        ses: u8,
    },
    /// `nvme sanitize <dev> -a <action>`, then the sanitize log is polled until it finishes.
    Sanitize(SanitizeAction),
}

impl NvmeMethod {
    /// The method's short name for logs (`nvme-format`, `nvme-sanitize`).
    pub fn name(self) -> &'static str {
        match self {
            NvmeMethod::Format { .. } => "nvme-format",
            NvmeMethod::Sanitize(_) => "nvme-sanitize",
        }
    }

    /// A human description: `NVMe format (user-data erase, ses=1)`.
    pub fn describe(self) -> String {
        match self {
            NvmeMethod::Format { ses: 2 } => "NVMe format (cryptographic erase, ses=2)".into(),
            NvmeMethod::Format { ses } => format!("NVMe format (user-data erase, ses={ses})"),
            NvmeMethod::Sanitize(SanitizeAction::CryptoErase) => {
                "NVMe sanitize (crypto erase, sanact=4)".into()
            }
            NvmeMethod::Sanitize(SanitizeAction::BlockErase) => {
                "NVMe sanitize (block erase, sanact=2)".into()
            }
        }
    }

    /// The `nvme` arguments that start it on `dev`.
    pub fn args(self, dev: &str) -> Vec<String> {
        match self {
            NvmeMethod::Format { ses } => vec![
                "format".into(),
                dev.into(),
                "-s".into(),
                ses.to_string(),
                "-f".into(),
            ],
            NvmeMethod::Sanitize(action) => {
                let a = match action {
                    SanitizeAction::CryptoErase => "4",
                    SanitizeAction::BlockErase => "2",
                };
                vec!["sanitize".into(), dev.into(), "-a".into(), a.into()]
            }
        }
    }
}

/// Time limits of the NVMe commands.
#[derive(Debug, Clone, Copy)]
pub struct NvmeTiming {
    /// `id-ctrl`, `sanitize-log` and starting a sanitize.
    pub query: Duration,
    /// `nvme format` (it returns when the format is done).
    pub format: Duration,
    /// The whole sanitize operation, polled through the sanitize log.
    pub sanitize: Duration,
    /// Pause between two reads of the sanitize log.
    pub poll: Duration,
}

impl Default for NvmeTiming {
    fn default() -> Self {
        NvmeTiming {
            query: Duration::from_secs(120),
            format: Duration::from_secs(3600),
            sanitize: Duration::from_secs(4 * 3600),
            poll: Duration::from_secs(5),
        }
    }
}

/// A register value: a JSON number, or a string in decimal or `0x` hex (older nvme-cli).
fn register(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// Parses `nvme id-ctrl <dev> -o json`.
///
/// # Errors
/// Empty or invalid output, or no `oacs`/`fna` field.
pub fn parse_id_ctrl(dev: &str, text: &str) -> Result<NvmeCaps, String> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
        if text.trim().is_empty() {
            format!("nvme-cli did not return any information for device {dev}")
        } else {
            format!("cannot parse `nvme id-ctrl {dev} -o json`: {e}")
        }
    })?;
    let field = |name: &str| v.get(name).and_then(register);
    match (field("oacs"), field("fna")) {
        (Some(oacs), Some(fna)) => Ok(NvmeCaps {
            oacs,
            fna,
            sanicap: field("sanicap").unwrap_or(0),
        }),
        _ => Err(format!(
            "`nvme id-ctrl {dev} -o json` has no oacs/fna fields: nvme-cli did not return the \
             supported format modes for device {dev}"
        )),
    }
}

/// Chooses the erase method: Sanitize (crypto erase, else block erase) when `sanitize` is
/// allowed and the controller supports one, else Format with cryptographic erase when `fna`
/// allows it, else Format with user-data erase.
///
/// # Errors
/// The controller supports neither a usable sanitize action nor Format NVM.
pub fn choose(dev: &str, caps: NvmeCaps, sanitize: bool) -> Result<NvmeMethod, String> {
    if sanitize {
        if caps.sanicap & SANICAP_CRYPTO != 0 {
            return Ok(NvmeMethod::Sanitize(SanitizeAction::CryptoErase));
        }
        if caps.sanicap & SANICAP_BLOCK != 0 {
            return Ok(NvmeMethod::Sanitize(SanitizeAction::BlockErase));
        }
        info!(
            device = dev,
            sanicap = caps.sanicap,
            "sanitize requested but the controller supports neither sanitize crypto erase nor \
             block erase; using NVMe format"
        );
    }
    if caps.oacs & OACS_FORMAT == 0 {
        return Err(format!(
            "{dev} does not support the NVMe Format command (id-ctrl oacs={:#x}, bit 1 clear): \
             nvme-cli did not return any supported format modes",
            caps.oacs
        ));
    }
    let ses = if caps.fna & FNA_CRYPTO != 0 { 2 } else { 1 };
    Ok(NvmeMethod::Format { ses })
}

/// The state the sanitize log reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanitizeState {
    /// The controller was never sanitized (the new operation has not shown up yet).
    NeverRan,
    /// In progress; `progress` is SPROG (n/65536).
    InProgress {
        /// Fraction done, out of 65536.
        progress: Option<u64>,
    },
    /// The most recent sanitize completed successfully.
    Succeeded,
    /// The most recent sanitize failed.
    Failed,
}

/// The status number in an SSTAT given as an object (nvme-cli 2.x): the `status` string
/// `"(N) ..."`, or any string value starting so.
fn status_from_object(m: &serde_json::Map<String, Value>) -> Option<u64> {
    let from_text = |s: &str| {
        s.trim()
            .strip_prefix('(')
            .and_then(|r| r.split(')').next())
            .and_then(|n| n.trim().parse().ok())
    };
    if let Some(n) = m.get("status").and_then(|v| match v {
        Value::String(s) => from_text(s),
        other => register(other),
    }) {
        return Some(n);
    }
    m.values().find_map(|v| v.as_str().and_then(from_text))
}

/// Parses `nvme sanitize-log <dev> -o json` (the log at the top level, or under the device
/// name as nvme-cli 2.x prints it; SSTAT as a number or as an object).
///
/// # Errors
/// Output that holds no sanitize status.
pub fn parse_sanitize_log(text: &str) -> Result<SanitizeState, String> {
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("cannot parse the sanitize log: {e}"))?;
    let body = if v.get("sstat").is_some() {
        Some(&v)
    } else {
        v.as_object()
            .and_then(|m| m.values().find(|b| b.get("sstat").is_some()))
    };
    let Some(body) = body else {
        return Err(format!("no sstat in the sanitize log: {}", text.trim()));
    };
    let status = match body.get("sstat") {
        Some(Value::Object(m)) => status_from_object(m),
        Some(other) => register(other).map(|s| s & 0x7),
        None => None,
    };
    let progress = body.get("sprog").and_then(register);
    match status {
        Some(0) => Ok(SanitizeState::NeverRan),
        Some(1) | Some(4) => Ok(SanitizeState::Succeeded),
        Some(2) => Ok(SanitizeState::InProgress { progress }),
        Some(3) => Ok(SanitizeState::Failed),
        _ => Err(format!(
            "unknown sanitize status in the sanitize log: {}",
            text.trim()
        )),
    }
}

/// Reads the controller capabilities of `dev`.
///
/// # Errors
/// `nvme id-ctrl` failed or printed something unusable.
pub fn capabilities(tools: &dyn Tools, dev: &str, timing: &NvmeTiming) -> Result<NvmeCaps, String> {
    let out = run_ok(tools, "nvme", &["id-ctrl", dev, "-o", "json"], timing.query)
        .map_err(|e| format!("failed to fetch the NVMe capabilities of {dev}: {e}"))?;
    parse_id_ctrl(dev, &out)
}

/// Securely erases NVMe namespace `dev` with the best method it supports (see [`choose`]).
/// Only call after the disk guard accepted `dev`.
///
/// # Errors
/// What failed, with the command and its stderr.
pub fn erase(
    tools: &dyn Tools,
    dev: &str,
    sanitize: bool,
    timing: &NvmeTiming,
) -> Result<NvmeMethod, String> {
    let caps = capabilities(tools, dev, timing)?;
    let method = choose(dev, caps, sanitize)?;
    let args = method.args(dev);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match method {
        NvmeMethod::Format { ses } => {
            info!(
                device = dev,
                method = method.name(),
                ses,
                "erasing {dev} with {}",
                method.describe()
            );
            run_ok(tools, "nvme", &args, timing.format)
                .map_err(|e| format!("NVMe format of {dev} failed: {e}"))?;
        }
        NvmeMethod::Sanitize(action) => {
            info!(
                device = dev,
                method = method.name(),
                sanact = ?action,
                "erasing {dev} with {}",
                method.describe()
            );
            run_ok(tools, "nvme", &args, timing.query)
                .map_err(|e| format!("starting the NVMe sanitize of {dev} failed: {e}"))?;
            wait_for_sanitize(tools, dev, timing)?;
        }
    }
    info!(
        device = dev,
        method = method.name(),
        "{dev} erased with {}",
        method.describe()
    );
    Ok(method)
}

/// Polls the sanitize log of `dev` until the operation is done.
fn wait_for_sanitize(tools: &dyn Tools, dev: &str, timing: &NvmeTiming) -> Result<(), String> {
    /// Polls tolerated before the started operation shows up in the log.
    const NEVER_RAN_POLLS: u32 = 12;
    let deadline = Instant::now() + timing.sanitize;
    let mut never_ran = 0;
    let mut last_tenth = None;
    loop {
        let out = run_ok(
            tools,
            "nvme",
            &["sanitize-log", dev, "-o", "json"],
            timing.query,
        )
        .map_err(|e| format!("reading the sanitize log of {dev} failed: {e}"))?;
        match parse_sanitize_log(&out)? {
            SanitizeState::Succeeded => return Ok(()),
            SanitizeState::Failed => {
                return Err(format!(
                    "the NVMe sanitize of {dev} failed (sanitize log status 3); the controller \
                     stays in sanitize failure mode until `nvme sanitize {dev} -a 1` (exit \
                     failure mode) or a successful sanitize"
                ));
            }
            SanitizeState::NeverRan => {
                never_ran += 1;
                if never_ran > NEVER_RAN_POLLS {
                    return Err(format!(
                        "the NVMe sanitize of {dev} was accepted but never showed up in the \
                         sanitize log"
                    ));
                }
            }
            SanitizeState::InProgress { progress } => {
                let tenth = progress.map(|p| p * 10 / 65536);
                if tenth.is_some() && tenth != last_tenth {
                    info!(
                        device = dev,
                        percent = tenth.map(|t| t * 10),
                        "NVMe sanitize in progress"
                    );
                    last_tenth = tenth;
                }
            }
        }
        if Instant::now() >= deadline {
            warn!(device = dev, "NVMe sanitize still running at the deadline");
            return Err(format!(
                "the NVMe sanitize of {dev} did not finish within {} minutes",
                timing.sanitize.as_secs() / 60
            ));
        }
        std::thread::sleep(timing.poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolOutput;
    use crate::tools::fake::FakeTools;

    const DEV: &str = "/dev/nvme0n1";

    /// `nvme id-ctrl -o json` of a controller (trimmed to the fields around the ones used).
    fn id_ctrl(oacs: u64, fna: u64, sanicap: Option<u64>) -> String {
        let mut v = serde_json::json!({
            "vid": 5197, "ssvid": 5197, "sn": "S4EWNX0R123456", "mn": "Samsung SSD 970 EVO Plus",
            "fr": "2B2QEXM7", "oacs": oacs, "acl": 7, "aerl": 3, "frmw": 22, "lpa": 3,
            "oncs": 95, "fuses": 0, "fna": fna, "vwc": 1, "awun": 1023,
        });
        if let (Some(s), Some(m)) = (sanicap, v.as_object_mut()) {
            m.insert("sanicap".into(), s.into());
        }
        v.to_string()
    }

    fn timing() -> NvmeTiming {
        NvmeTiming {
            poll: Duration::from_millis(1),
            ..NvmeTiming::default()
        }
    }

    #[test]
    fn format_user_data_erase() {
        let t = FakeTools::new()
            .ok("nvme id-ctrl /dev/nvme0n1 -o json", &id_ctrl(0x17, 0, None))
            .ok(
                "nvme format /dev/nvme0n1 -s 1 -f",
                "Success formatting namespace:1\n",
            );
        assert_eq!(
            erase(&t, DEV, false, &timing()),
            Ok(NvmeMethod::Format { ses: 1 })
        );
        assert_eq!(
            t.calls(),
            [
                "nvme id-ctrl /dev/nvme0n1 -o json",
                "nvme format /dev/nvme0n1 -s 1 -f"
            ]
        );
    }

    #[test]
    fn format_crypto_erase_when_fna_allows() {
        let t = FakeTools::new()
            .ok(
                "nvme id-ctrl /dev/nvme0n1 -o json",
                &id_ctrl(0x17, 0x4, Some(0x3)),
            )
            .ok("nvme format /dev/nvme0n1 -s 2 -f", "");
        // Sanitize capable, but the node did not opt in: format.
        assert_eq!(
            erase(&t, DEV, false, &timing()),
            Ok(NvmeMethod::Format { ses: 2 })
        );
        assert_eq!(t.calls()[1], "nvme format /dev/nvme0n1 -s 2 -f");
        assert_eq!(
            NvmeMethod::Format { ses: 2 }.describe(),
            "NVMe format (cryptographic erase, ses=2)"
        );
        assert_eq!(
            NvmeMethod::Format { ses: 1 }.describe(),
            "NVMe format (user-data erase, ses=1)"
        );
    }

    #[test]
    fn sanitize_when_capable_and_opted_in() {
        // nvme-cli 2.x: the log under the device name, SSTAT as an object.
        let in_progress = r#"{"nvme0":{"sprog":32768,"sstat":{"global_erased":0,
            "no_cmplted_passes":0,"status":"(2) Sanitize In Progress."},"cdw10_info":4}}"#;
        let done = r#"{"nvme0":{"sprog":65535,"sstat":{"global_erased":1,
            "no_cmplted_passes":1,"status":"(1) Most Recent Sanitize Command Completed Successfully."},
            "cdw10_info":4}}"#;
        let t = FakeTools::new()
            .ok(
                "nvme id-ctrl /dev/nvme0n1 -o json",
                &id_ctrl(0x5f, 0x4, Some(0x3)),
            )
            .ok("nvme sanitize /dev/nvme0n1 -a 4", "")
            .ok("nvme sanitize-log /dev/nvme0n1 -o json", in_progress)
            .ok("nvme sanitize-log /dev/nvme0n1 -o json", done);
        assert_eq!(
            erase(&t, DEV, true, &timing()),
            Ok(NvmeMethod::Sanitize(SanitizeAction::CryptoErase))
        );
        assert_eq!(
            t.calls(),
            [
                "nvme id-ctrl /dev/nvme0n1 -o json",
                "nvme sanitize /dev/nvme0n1 -a 4",
                "nvme sanitize-log /dev/nvme0n1 -o json",
                "nvme sanitize-log /dev/nvme0n1 -o json",
            ]
        );
        // Block erase only: -a 2. Sanitize does not need Format support.
        let caps = NvmeCaps {
            oacs: 0,
            fna: 0,
            sanicap: 0x2,
        };
        let m = choose(DEV, caps, true);
        assert_eq!(m, Ok(NvmeMethod::Sanitize(SanitizeAction::BlockErase)));
        assert_eq!(
            m.map(|m| m.args(DEV)),
            Ok(vec![
                "sanitize".to_string(),
                DEV.into(),
                "-a".into(),
                "2".into()
            ])
        );
        // Opted in but only overwrite is supported: format.
        let caps = NvmeCaps {
            oacs: 0x2,
            fna: 0,
            sanicap: 0x4,
        };
        assert_eq!(choose(DEV, caps, true), Ok(NvmeMethod::Format { ses: 1 }));
    }

    #[test]
    fn sanitize_failure_is_reported() {
        let t = FakeTools::new()
            .ok(
                "nvme id-ctrl /dev/nvme0n1 -o json",
                &id_ctrl(0x5f, 0, Some(0x2)),
            )
            .ok("nvme sanitize /dev/nvme0n1 -a 2", "")
            // nvme-cli 1.x: SSTAT as the raw register.
            .ok(
                "nvme sanitize-log /dev/nvme0n1 -o json",
                r#"{"sprog":65535,"sstat":259}"#,
            );
        let e = erase(&t, DEV, true, &timing()).err().unwrap_or_default();
        assert!(
            e.contains("sanitize of /dev/nvme0n1 failed") && e.contains("-a 1"),
            "{e}"
        );
    }

    #[test]
    fn no_format_support_is_an_error() {
        let t = FakeTools::new().ok(
            "nvme id-ctrl /dev/nvme0n1 -o json",
            &id_ctrl(0x5, 0x4, None),
        );
        let e = erase(&t, DEV, false, &timing());
        assert_eq!(
            e,
            Err(
                "/dev/nvme0n1 does not support the NVMe Format command (id-ctrl oacs=0x5, bit 1 \
                 clear): nvme-cli did not return any supported format modes"
                    .to_string()
            )
        );
        assert_eq!(t.calls().len(), 1, "nothing destructive ran");
    }

    #[test]
    fn tool_failures_name_the_command_and_stderr() {
        let t = FakeTools::new()
            .ok("nvme id-ctrl /dev/nvme0n1 -o json", &id_ctrl(0x17, 0, None))
            .on(
                "nvme format /dev/nvme0n1 -s 1 -f",
                Ok(ToolOutput::failed(1, "NVMe status: Invalid Format(0x10a)")),
            );
        assert_eq!(
            erase(&t, DEV, false, &timing()),
            Err(
                "NVMe format of /dev/nvme0n1 failed: `nvme format /dev/nvme0n1 -s 1 -f` failed \
                 (exit status 1): NVMe status: Invalid Format(0x10a)"
                    .to_string()
            )
        );
        let t = FakeTools::new().ok("nvme id-ctrl /dev/nvme0n1 -o json", "");
        assert_eq!(
            erase(&t, DEV, false, &timing()),
            Err("nvme-cli did not return any information for device /dev/nvme0n1".to_string())
        );
    }

    #[test]
    fn sanitize_log_shapes() {
        assert_eq!(
            parse_sanitize_log(r#"{"sprog":0,"sstat":0}"#),
            Ok(SanitizeState::NeverRan)
        );
        assert_eq!(
            parse_sanitize_log(r#"{"sprog":100,"sstat":2}"#),
            Ok(SanitizeState::InProgress {
                progress: Some(100)
            })
        );
        // A key that is the status text itself (one nvme-cli release printed it so).
        assert_eq!(
            parse_sanitize_log(
                r#"{"nvme1":{"sprog":65535,"sstat":{"global_erased":1,
                "Most Recent Sanitize Command Completed Successfully.":"(1) Most Recent"}}}"#
            ),
            Ok(SanitizeState::Succeeded)
        );
        assert!(parse_sanitize_log("{}").is_err());
        assert_eq!(
            parse_id_ctrl(DEV, r#"{"oacs":"0x17","fna":"4"}"#),
            Ok(NvmeCaps {
                oacs: 0x17,
                fna: 4,
                sanicap: 0
            })
        );
    }
}
