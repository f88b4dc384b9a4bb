//! ATA Security Erase with hdparm, as IPA does it: read the Security section of `hdparm -I`,
//! refuse a frozen drive, unlock a drive a failed attempt left locked, set the user password
//! `NULL`, run SECURITY ERASE UNIT (enhanced when supported) and check that security is off
//! again afterwards.

use std::time::Duration;

use tracing::{info, warn};

use crate::tools::{ToolError, Tools, run_ok};

/// The unlock passwords tried on a locked drive: hdparm < 9.51 sent `NULL` literally.
const UNLOCK_PASSWORDS: [&str; 2] = ["NULL", ""];

/// The Security section of `hdparm -I`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtaSecurity {
    /// The drive supports the Security feature set (a line `supported`).
    pub supported: bool,
    /// A user password is set (no line `not enabled`).
    pub enabled: bool,
    /// The drive is locked (no line `not locked`).
    pub locked: bool,
    /// Security commands are frozen until a power cycle (no line `not frozen`).
    pub frozen: bool,
    /// Enhanced erase is supported (no line `not supported: enhanced erase`).
    pub enhanced: bool,
    /// The drive's estimate for SECURITY ERASE UNIT, minutes.
    pub erase_minutes: Option<u64>,
    /// The drive's estimate for the enhanced erase, minutes.
    pub enhanced_minutes: Option<u64>,
}

/// Time limits of the hdparm calls.
#[derive(Debug, Clone, Copy)]
pub struct AtaTiming {
    /// `hdparm -I`, unlock, set-pass, `smartctl`.
    pub query: Duration,
    /// The erase when the drive gives no estimate.
    pub erase_default: Duration,
}

impl Default for AtaTiming {
    fn default() -> Self {
        AtaTiming {
            query: Duration::from_secs(120),
            erase_default: Duration::from_secs(12 * 3600),
        }
    }
}

/// The erase a drive ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtaMethod {
    /// `--security-erase-enhanced`.
    Enhanced,
    /// `--security-erase`.
    Normal,
}

impl AtaMethod {
    /// The hdparm option.
    pub fn option(self) -> &'static str {
        match self {
            AtaMethod::Enhanced => "--security-erase-enhanced",
            AtaMethod::Normal => "--security-erase",
        }
    }
}

/// `"12min"` → 12.
fn minutes(text: &str) -> Option<u64> {
    text.trim().strip_suffix("min")?.trim().parse().ok()
}

/// Parses the Security section of `hdparm -I` output: the tab-indented lines after a line
/// `Security:`, each with its tabs turned into spaces (`not\tenabled` → `not enabled`).
/// `None` when the output has no Security section.
pub fn parse_security(hdparm_i: &str) -> Option<AtaSecurity> {
    let mut lines = hdparm_i.lines();
    lines.by_ref().find(|l| l.trim_end() == "Security:")?;
    let section: Vec<String> = lines
        .take_while(|l| l.starts_with('\t'))
        .map(|l| l.trim().replace('\t', " "))
        .collect();
    let has = |s: &str| section.iter().any(|l| l == s);
    let mut sec = AtaSecurity {
        supported: has("supported"),
        enabled: !has("not enabled"),
        locked: !has("not locked"),
        frozen: !has("not frozen"),
        enhanced: !has("not supported: enhanced erase"),
        ..AtaSecurity::default()
    };
    // "2min for SECURITY ERASE UNIT. 8min for ENHANCED SECURITY ERASE UNIT."
    if let Some(times) = section
        .iter()
        .find(|l| l.contains("for SECURITY ERASE UNIT"))
    {
        for part in times.split('.') {
            if let Some((t, what)) = part.split_once(" for ") {
                match what.trim() {
                    "SECURITY ERASE UNIT" => sec.erase_minutes = minutes(t),
                    "ENHANCED SECURITY ERASE UNIT" => sec.enhanced_minutes = minutes(t),
                    _ => {}
                }
            }
        }
    }
    Some(sec)
}

/// The Security section of `dev`, `None` when hdparm has none to show (not an ATA drive,
/// hdparm missing or failing: then ATA secure erase does not apply).
fn read_security(tools: &dyn Tools, dev: &str, t: &AtaTiming) -> Option<AtaSecurity> {
    match run_ok(tools, "hdparm", &["-I", dev], t.query) {
        Ok(out) => parse_security(&out),
        Err(e) => {
            info!(device = dev, error = %e, "no ATA identify data; ATA secure erase does not apply");
            None
        }
    }
}

/// IPA's smartctl check: false when `smartctl -d ata <dev> -g security` says the security
/// state is unavailable or fails (the drive sits behind a bridge that does not pass ATA
/// commands); true when it works or smartctl is not installed.
fn smartctl_allows(tools: &dyn Tools, dev: &str, t: &AtaTiming) -> bool {
    match tools.run("smartctl", &["-d", "ata", dev, "-g", "security"], t.query) {
        Err(ToolError::NotFound(_)) => true,
        Ok(out) if out.code == Some(127) => true,
        Ok(out) if out.success() => {
            let unavailable = out.stdout.contains("Unavailable");
            if unavailable {
                info!(device = dev, "smartctl reports ATA security unavailable");
            }
            !unavailable
        }
        Ok(out) => {
            warn!(
                device = dev,
                code = ?out.code,
                "refusing ATA secure erase: direct ATA commands through smartctl do not succeed"
            );
            false
        }
        Err(e) => {
            warn!(device = dev, error = %e, "cannot run smartctl; refusing ATA secure erase");
            false
        }
    }
}

/// Tries the unlock passwords until the drive reports `not locked`; returns the last state.
fn unlock(tools: &dyn Tools, dev: &str, mut sec: AtaSecurity, t: &AtaTiming) -> AtaSecurity {
    for password in UNLOCK_PASSWORDS {
        if !sec.locked {
            break;
        }
        let args = ["--user-master", "u", "--security-unlock", password, dev];
        if let Err(e) = run_ok(tools, "hdparm", &args, t.query) {
            info!(device = dev, password, error = %e, "security unlock failed");
        }
        match read_security(tools, dev, t) {
            Some(s) => sec = s,
            None => break,
        }
    }
    sec
}

/// ATA-secure-erases `dev`. `Ok(None)` when ATA security does not apply (no Security section,
/// not supported, or smartctl says the drive cannot be reached with ATA commands): the caller
/// falls back to overwriting. Only call after the disk guard accepted `dev`.
///
/// # Errors
/// The drive supports security erase but it could not be done (frozen, locked with an unknown
/// password, a failing hdparm call, security still enabled afterwards).
pub fn erase(tools: &dyn Tools, dev: &str, t: &AtaTiming) -> Result<Option<AtaMethod>, String> {
    let Some(sec) = read_security(tools, dev, t) else {
        return Ok(None);
    };
    if !sec.supported || !smartctl_allows(tools, dev, t) {
        info!(device = dev, "ATA security erase is not supported by {dev}");
        return Ok(None);
    }
    if sec.frozen {
        return Err(format!(
            "block device {dev} is frozen and cannot be ATA secure-erased (the firmware froze \
             its security state at boot; a power cycle or hot-plug of the drive unfreezes it)"
        ));
    }
    let sec = unlock(tools, dev, sec, t);
    if sec.locked {
        return Err(format!(
            "block device {dev} already has a security password set and is locked; unlocking \
             with the passwords \"NULL\" and \"\" failed"
        ));
    }
    if !sec.enabled {
        run_ok(
            tools,
            "hdparm",
            &["--user-master", "u", "--security-set-pass", "NULL", dev],
            t.query,
        )
        .map_err(|e| format!("setting the security password of {dev} failed: {e}"))?;
    }
    let method = if sec.enhanced {
        AtaMethod::Enhanced
    } else {
        AtaMethod::Normal
    };
    let estimate = match method {
        AtaMethod::Enhanced => sec.enhanced_minutes.or(sec.erase_minutes),
        AtaMethod::Normal => sec.erase_minutes,
    };
    // Twice the drive's own estimate plus half an hour; 12 hours when it gives none.
    let timeout = estimate.map_or(t.erase_default, |m| {
        Duration::from_secs(m.saturating_mul(120).saturating_add(1800))
    });
    info!(
        device = dev,
        method = "ata-secure-erase",
        enhanced = sec.enhanced,
        estimate_min = estimate,
        "erasing {dev} with ATA secure erase ({})",
        method.option()
    );
    let args = ["--user-master", "u", method.option(), "NULL", dev];
    if let Err(e) = run_ok(tools, "hdparm", &args, timeout) {
        // Unlock so that an overwrite fallback can write to the drive.
        if let Some(now) = read_security(tools, dev, t) {
            let _ = unlock(tools, dev, now, t);
        }
        return Err(format!("ATA secure erase of {dev} failed: {e}"));
    }
    match read_security(tools, dev, t) {
        Some(after) if !after.enabled => {
            info!(device = dev, method = "ata-secure-erase", "{dev} erased");
            Ok(Some(method))
        }
        _ => Err(format!(
            "an unknown error occurred erasing block device {dev}: ATA security is still \
             enabled after {}",
            method.option()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolOutput;
    use crate::tools::fake::FakeTools;

    const DEV: &str = "/dev/sda";

    /// `hdparm -I` of a SATA SSD with the given Security lines (tabs as hdparm prints them).
    fn hdparm(security: &str) -> String {
        format!(
            "\n/dev/sda:\n\nATA device, with non-removable media\n\
             \tModel Number:       Samsung SSD 860 EVO 500GB\n\
             \tSerial Number:      S3Z2NB0K123456A\n\
             \tFirmware Revision:  RVT02B6Q\n\
             Standards:\n\tUsed: unknown (minor revision code 0x005e)\n\
             Commands/features:\n\tEnabled\tSupported:\n\t   *\tSMART feature set\n\
             \t   \tSecurity Mode feature set\n\
             Security: \n{security}\
             Logical Unit WWN Device Identifier: 5002538e40a1b2c3\n\
             \tNAA\t\t: 5\n\
             Checksum: correct\n"
        )
    }

    const SUPPORTED_NOT_ENABLED: &str = "\tMaster password revision code = 65534\n\
        \t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\tnot\tfrozen\n\
        \tnot\texpired: security count\n\tnot\tsupported: enhanced erase\n\
        \t2min for SECURITY ERASE UNIT.\n";
    const ENABLED_AFTER_SET_PASS: &str = "\tMaster password revision code = 65534\n\
        \t\tsupported\n\t\tenabled\n\tnot\tlocked\n\tnot\tfrozen\n\
        \tnot\texpired: security count\n\tnot\tsupported: enhanced erase\n";

    fn timing() -> AtaTiming {
        AtaTiming::default()
    }

    #[test]
    fn parses_the_security_section() {
        let s = parse_security(&hdparm(
            "\tMaster password revision code = 65534\n\t\tsupported\n\tnot\tenabled\n\
             \tnot\tlocked\n\t\tfrozen\n\tnot\texpired: security count\n\
             \t\tsupported: enhanced erase\n\
             \t4min for SECURITY ERASE UNIT. 8min for ENHANCED SECURITY ERASE UNIT.\n",
        ));
        assert_eq!(
            s,
            Some(AtaSecurity {
                supported: true,
                enabled: false,
                locked: false,
                frozen: true,
                enhanced: true,
                erase_minutes: Some(4),
                enhanced_minutes: Some(8),
            })
        );
        assert_eq!(parse_security("/dev/vda:\n no identify\n"), None);
    }

    #[test]
    fn not_supported_falls_through() {
        let t = FakeTools::new().without(&["smartctl"]).ok(
            "hdparm -I /dev/sda",
            &hdparm(
                "\tMaster password revision code = 65534\n\tnot\tsupported\n\tnot\tenabled\n\
                 \tnot\tlocked\n\tnot\tfrozen\n",
            ),
        );
        assert_eq!(erase(&t, DEV, &timing()), Ok(None));
        // A virtio disk: hdparm fails; nothing else runs.
        let t = FakeTools::new().on(
            "hdparm -I /dev/sda",
            Ok(ToolOutput::failed(
                25,
                " HDIO_DRIVE_CMD(identify) failed: Inappropriate ioctl for device",
            )),
        );
        assert_eq!(erase(&t, DEV, &timing()), Ok(None));
        assert_eq!(t.calls(), ["hdparm -I /dev/sda"]);
        // smartctl says the security state cannot be reached.
        let t = FakeTools::new()
            .ok("hdparm -I /dev/sda", &hdparm(SUPPORTED_NOT_ENABLED))
            .ok(
                "smartctl -d ata /dev/sda -g security",
                "ATA Security is:  Unavailable\n",
            );
        assert_eq!(erase(&t, DEV, &timing()), Ok(None));
    }

    /// Tools without smartctl for a drive whose `hdparm -I` security sections are `before`,
    /// then `after` (repeated), and on which setting the password and erasing succeed.
    fn set_pass_and_erase(before: &str, after: &str) -> FakeTools {
        FakeTools::new()
            .without(&["smartctl"])
            .ok("hdparm -I /dev/sda", &hdparm(before))
            .ok("hdparm -I /dev/sda", &hdparm(after))
            .ok(
                "hdparm --user-master u --security-set-pass NULL /dev/sda",
                "",
            )
            .ok("hdparm --user-master u --security-erase NULL /dev/sda", "")
    }

    #[test]
    fn supported_not_enabled_sets_a_password_then_erases() {
        let t = set_pass_and_erase(SUPPORTED_NOT_ENABLED, SUPPORTED_NOT_ENABLED);
        assert_eq!(erase(&t, DEV, &timing()), Ok(Some(AtaMethod::Normal)));
        assert_eq!(
            t.calls(),
            [
                "hdparm -I /dev/sda",
                "smartctl -d ata /dev/sda -g security",
                "hdparm --user-master u --security-set-pass NULL /dev/sda",
                "hdparm --user-master u --security-erase NULL /dev/sda",
                "hdparm -I /dev/sda",
            ]
        );
    }

    #[test]
    fn enhanced_erase_when_supported() {
        let enhanced = SUPPORTED_NOT_ENABLED.replace(
            "\tnot\tsupported: enhanced erase\n",
            "\t\tsupported: enhanced erase\n",
        );
        let t = FakeTools::new()
            .ok(
                "smartctl -d ata /dev/sda -g security",
                "ATA Security is:  Disabled, NOT FROZEN [SEC1]\n",
            )
            .ok("hdparm -I /dev/sda", &hdparm(&enhanced))
            .ok(
                "hdparm --user-master u --security-set-pass NULL /dev/sda",
                "",
            )
            .ok(
                "hdparm --user-master u --security-erase-enhanced NULL /dev/sda",
                "",
            );
        assert_eq!(erase(&t, DEV, &timing()), Ok(Some(AtaMethod::Enhanced)));
        assert!(t.calls().contains(
            &"hdparm --user-master u --security-erase-enhanced NULL /dev/sda".to_string()
        ));
    }

    #[test]
    fn frozen_is_an_error() {
        let frozen = SUPPORTED_NOT_ENABLED.replace("\tnot\tfrozen\n", "\t\tfrozen\n");
        let t = FakeTools::new()
            .without(&["smartctl"])
            .ok("hdparm -I /dev/sda", &hdparm(&frozen));
        let e = erase(&t, DEV, &timing());
        assert!(
            e.as_ref().is_err_and(|e| e.contains("/dev/sda is frozen")),
            "{e:?}"
        );
        assert_eq!(
            t.calls(),
            ["hdparm -I /dev/sda", "smartctl -d ata /dev/sda -g security"]
        );
    }

    #[test]
    fn locked_drives_are_unlocked_first() {
        let locked = ENABLED_AFTER_SET_PASS.replace("\tnot\tlocked\n", "\t\tlocked\n");
        // Unlocks with "" (the second password), then erases without setting a password.
        let t = FakeTools::new()
            .without(&["smartctl"])
            .ok("hdparm -I /dev/sda", &hdparm(&locked))
            .ok("hdparm -I /dev/sda", &hdparm(&locked))
            .ok("hdparm -I /dev/sda", &hdparm(ENABLED_AFTER_SET_PASS))
            .ok("hdparm -I /dev/sda", &hdparm(SUPPORTED_NOT_ENABLED))
            .on(
                "hdparm --user-master u --security-unlock NULL /dev/sda",
                Ok(ToolOutput::failed(5, "SECURITY_UNLOCK: Input/output error")),
            )
            .ok("hdparm --user-master u --security-unlock  /dev/sda", "")
            .ok("hdparm --user-master u --security-erase NULL /dev/sda", "");
        assert_eq!(erase(&t, DEV, &timing()), Ok(Some(AtaMethod::Normal)));
        assert_eq!(
            t.calls(),
            [
                "hdparm -I /dev/sda",
                "smartctl -d ata /dev/sda -g security",
                "hdparm --user-master u --security-unlock NULL /dev/sda",
                "hdparm -I /dev/sda",
                "hdparm --user-master u --security-unlock  /dev/sda",
                "hdparm -I /dev/sda",
                "hdparm --user-master u --security-erase NULL /dev/sda",
                "hdparm -I /dev/sda",
            ]
        );
        // Still locked after both passwords: an error, nothing erased.
        let t = FakeTools::new()
            .without(&["smartctl"])
            .ok("hdparm -I /dev/sda", &hdparm(&locked))
            .ok("hdparm --user-master u --security-unlock NULL /dev/sda", "")
            .ok("hdparm --user-master u --security-unlock  /dev/sda", "");
        let e = erase(&t, DEV, &timing());
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("already has a security password set")),
            "{e:?}"
        );
        assert!(!t.calls().iter().any(|c| c.contains("--security-erase")));
    }

    #[test]
    fn failed_erase_unlocks_and_reports() {
        let t = FakeTools::new()
            .without(&["smartctl"])
            .ok("hdparm -I /dev/sda", &hdparm(SUPPORTED_NOT_ENABLED))
            .ok(
                "hdparm -I /dev/sda",
                &hdparm(&ENABLED_AFTER_SET_PASS.replace("\tnot\tlocked\n", "\t\tlocked\n")),
            )
            .ok("hdparm -I /dev/sda", &hdparm(ENABLED_AFTER_SET_PASS))
            .ok(
                "hdparm --user-master u --security-set-pass NULL /dev/sda",
                "",
            )
            .on(
                "hdparm --user-master u --security-erase NULL /dev/sda",
                Ok(ToolOutput::failed(5, "SECURITY_ERASE: Input/output error")),
            )
            .ok("hdparm --user-master u --security-unlock NULL /dev/sda", "");
        assert_eq!(
            erase(&t, DEV, &timing()),
            Err(
                "ATA secure erase of /dev/sda failed: `hdparm --user-master u --security-erase \
                 NULL /dev/sda` failed (exit status 5): SECURITY_ERASE: Input/output error"
                    .to_string()
            )
        );
        assert!(
            t.calls()
                .contains(&"hdparm --user-master u --security-unlock NULL /dev/sda".to_string())
        );
    }

    #[test]
    fn still_enabled_after_erase_is_an_error() {
        let t = set_pass_and_erase(SUPPORTED_NOT_ENABLED, ENABLED_AFTER_SET_PASS);
        let e = erase(&t, DEV, &timing());
        assert!(
            e.as_ref().is_err_and(|e| e.contains("still enabled")),
            "{e:?}"
        );
    }
}
