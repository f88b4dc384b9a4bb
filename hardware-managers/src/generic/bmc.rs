//! The BMC's addresses, read in-band with ipmitool over LAN channels 1–11 (the channels the
//! IPMI specification leaves for LAN media), by IPA 13's rules (`get_bmc_address`,
//! `get_bmc_v6address`, `get_bmc_mac` of its `GenericHardwareManager`):
//!
//! * IPv4 (`ipmitool lan print N`): the `IP Address` of the first channel whose value is an
//!   IP address other than `0.0.0.0`; `0.0.0.0` when none is.
//! * IPv6: on the first channel whose `lan6 print N enables` says `ipv6` or `both`, the first
//!   active DHCPv6/SLAAC address of `lan6 print N dynamic_addr`, else the first active,
//!   enabled address of `lan6 print N static_addr` (`::` and `::/N` count as unset), without
//!   its prefix length; `::/0` when no channel has one.
//! * MAC (`lan print N`): of the first channel with an IPv4 address other than `0.0.0.0` or,
//!   failing that, with an address in its `lan6 print N` address sections that starts with
//!   neither `::` nor `fe80`; a MAC that is not six hex pairs or is all zeros is skipped.
//!   None when no channel qualifies (IPA then leaves `bmc_mac` out of the inventory).
//!
//! IPA pipes `lan print` and `lan6 print` through awk (which makes their exit status
//! irrelevant) and skips a channel whose error output starts with `Invalid channel`; the
//! extraction here reproduces those awk programs line by line (`awk_fields`,
//! `lan6_section_addresses`) and the YAML reading of `dynamic_addr`/`static_addr`
//! (`yaml_blocks`). A missing ipmitool is what a shell reports (no output, exit 127). One
//! difference: an ipmitool that hangs past `IPMITOOL_TIMEOUT` (IPA waits forever) or cannot
//! be started at all means no BMC (`None`).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tracing::{debug, warn};

use crate::runner::{CommandRunner, Ran, RunnerError};

/// The LAN channels that can carry a BMC address.
const CHANNELS: std::ops::RangeInclusive<u8> = 1..=11;
/// Limit for one ipmitool call (a busy BMC answers slowly).
pub(crate) const IPMITOOL_TIMEOUT: Duration = Duration::from_secs(15);
/// The prefix of ipmitool's error for a channel that is not a LAN channel.
const INVALID_CHANNEL: &str = "Invalid channel";

/// What one ipmitool invocation produced; `Err` means give up on the BMC.
pub type Answer = Result<Ran, ()>;

/// Whether the IPMI driver exposes a device node: `/dev/ipmi*`, `/dev/ipmi/*` or
/// `/dev/ipmidev/*` that is a character device (with `any_file`, any file: test trees).
pub(crate) fn has_ipmi_device(root: &Path, any_file: bool) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let dev = root.join("dev");
    let is_device = |p: &Path| {
        std::fs::metadata(p)
            .is_ok_and(|m| m.file_type().is_char_device() || any_file && m.is_file())
    };
    let direct = super::sysfs::list_dir(&dev)
        .into_iter()
        .filter(|n| n.starts_with("ipmi"))
        .any(|n| is_device(&dev.join(n)));
    direct
        || ["ipmi", "ipmidev"].iter().any(|sub| {
            super::sysfs::list_dir(&dev.join(sub))
                .into_iter()
                .any(|n| is_device(&dev.join(sub).join(n)))
        })
}

/// Runs `ipmitool args` through `runner`. A missing ipmitool answers as a shell would
/// (exit 127, nothing on stdout); a timeout or a failure to start is `Err`.
pub(crate) fn ipmitool(runner: &dyn CommandRunner, args: &[&str]) -> Answer {
    match runner.run("ipmitool", args, IPMITOOL_TIMEOUT) {
        Ok(ran) => {
            if !ran.success() {
                debug!(?args, code = ?ran.code, stderr = %ran.stderr.trim(), "ipmitool failed");
            }
            Ok(ran)
        }
        Err(RunnerError::NotFound(_)) => Ok(Ran::failed(127, "sh: 1: ipmitool: not found\n")),
        Err(e) => {
            warn!(?args, error = %e, "cannot use ipmitool");
            Err(())
        }
    }
}

/// The first IPv4 (or other IP) address over the channels, `0.0.0.0` if none.
pub fn bmc_address(mut run: impl FnMut(&[&str]) -> Answer) -> Result<String, ()> {
    for channel in CHANNELS {
        let ran = run(&["lan", "print", &channel.to_string()])?;
        if ran.stderr.starts_with(INVALID_CHANNEL) {
            continue;
        }
        let printed = awk_output(&awk_fields(&ran.stdout, is_ip_line, Field::Nth(4)));
        let out = py_strip(&printed);
        if out.parse::<IpAddr>().is_err() {
            warn!(channel, output = out, "invalid BMC IP address");
            continue;
        }
        if out != "0.0.0.0" {
            return Ok(out.to_string());
        }
    }
    Ok("0.0.0.0".to_string())
}

/// The first usable IPv6 address over the channels with IPv6 enabled, `::/0` if none.
pub fn bmc_v6address(mut run: impl FnMut(&[&str]) -> Answer) -> Result<String, ()> {
    for channel in CHANNELS {
        let ch = channel.to_string();
        let ran = run(&["lan6", "print", &ch, "enables"])?;
        let mode = awk_output(&awk_fields(&ran.stdout, is_enables_line, Field::Last));
        if !matches!(py_strip(&mode), "ipv6" | "both") {
            continue;
        }
        let address = match lan6_address(&mut run, &ch, true)? {
            Some(a) => Some(a),
            None => lan6_address(&mut run, &ch, false)?,
        };
        let Some(address) = address else { continue };
        match py_ip_interface(&address) {
            Some(ip) => return Ok(ip.to_string()),
            None => warn!(channel, address, "invalid BMC IPv6 address"),
        }
    }
    Ok("::/0".to_string())
}

/// The first active, enabled, set address of `lan6 print <ch> dynamic_addr` (DHCPv6 or
/// SLAAC) or `static_addr`, as printed. `Err` means give up on the BMC.
fn lan6_address(
    run: &mut impl FnMut(&[&str]) -> Answer,
    ch: &str,
    dynamic: bool,
) -> Result<Option<String>, ()> {
    let which = if dynamic {
        "dynamic_addr"
    } else {
        "static_addr"
    };
    let ran = run(&["lan6", "print", ch, which])?;
    if !ran.success() {
        return Ok(None);
    }
    let Some(blocks) = yaml_blocks(py_strip(&ran.stdout)) else {
        warn!(
            channel = ch,
            which, "cannot read the output of ipmitool lan6 print"
        );
        return Ok(None);
    };
    let found = blocks.into_iter().find_map(|block| {
        let get = |key: &str| {
            block
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let address = get("Address")?;
        let enabled = if dynamic {
            matches!(get("Source/Type"), Some("DHCPv6" | "SLAAC"))
        } else {
            get("Enabled").is_some_and(yaml_truthy)
        };
        (get("Status") == Some("active") && enabled && !is_null_v6(address))
            .then(|| address.to_string())
    });
    Ok(found)
}

/// The MAC of the first channel with a configured IPv4 or non-link-local IPv6 address.
pub fn bmc_mac(mut run: impl FnMut(&[&str]) -> Answer) -> Result<Option<String>, ()> {
    for channel in CHANNELS {
        let ch = channel.to_string();
        let ran = run(&["lan", "print", &ch])?;
        if ran.stderr.starts_with(INVALID_CHANNEL) {
            continue;
        }
        let out = awk_output(&awk_fields(&ran.stdout, is_ip_or_mac_line, Field::Nth(4)));
        let lines: Vec<&str> = py_strip(&out).split('\n').collect();
        let [ip, mac] = lines[..] else {
            warn!(channel, output = out, "invalid ipmitool output");
            continue;
        };
        if ip == "0.0.0.0" {
            let ran6 = run(&["lan6", "print", &ch])?;
            if ran6.stderr.starts_with(INVALID_CHANNEL) {
                continue;
            }
            let out6 = awk_output(&lan6_section_addresses(&ran6.stdout));
            // IPA: an address that starts with neither `::` (unset) nor `fe80` (link-local);
            // an empty output counts as one (IPA's split of "" gives one empty string).
            let routable = py_strip(&out6)
                .split('\n')
                .any(|a| !a.starts_with("::") && !a.starts_with("fe80"));
            if !routable {
                continue;
            }
        }
        if !is_mac(mac) {
            warn!(channel, mac, "invalid BMC MAC address");
            continue;
        }
        if mac != "00:00:00:00:00:00" {
            return Ok(Some(mac.to_string()));
        }
    }
    Ok(None)
}

/// Which awk field to print.
#[derive(Clone, Copy)]
enum Field {
    /// `$N` (1-based; empty when the line has fewer fields).
    Nth(usize),
    /// `$NF`.
    Last,
}

/// awk's `/<pattern>/ {print <field>}` with the default field separator (runs of blanks).
fn awk_fields(text: &str, matches: impl Fn(&str) -> bool, field: Field) -> Vec<String> {
    text.lines()
        .filter(|l| matches(l))
        .map(|l| {
            let fields: Vec<&str> = l.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
            let f = match field {
                Field::Nth(n) => fields.get(n - 1),
                Field::Last => fields.last(),
            };
            f.copied().unwrap_or_default().to_string()
        })
        .collect()
}

/// What awk prints for `lines`: each followed by a newline.
fn awk_output(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Whether `line` contains `key` followed by optional blanks and a colon (the regex
/// `key[ \t]*:` searched anywhere in the line).
fn has_key(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(at, _)| {
        line[at + key.len()..]
            .trim_start_matches([' ', '\t'])
            .starts_with(':')
    })
}

/// `/IP Address[ \t]*:/`.
fn is_ip_line(line: &str) -> bool {
    has_key(line, "IP Address")
}

/// `/(IP|MAC) Address[ \t]*:/`.
fn is_ip_or_mac_line(line: &str) -> bool {
    has_key(line, "IP Address") || has_key(line, "MAC Address")
}

/// `/IPv6\/IPv4 Addressing Enables[ \t]*:/`.
fn is_enables_line(line: &str) -> bool {
    has_key(line, "IPv6/IPv4 Addressing Enables")
}

/// IPA's awk program over `lan6 print`: the second field of every `Address:` line inside an
/// `IPv6 Dynamic|Static Address N:` section (a section ends at the next line starting with
/// `IPv6 `).
fn lan6_section_addresses(text: &str) -> Vec<String> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if is_address_section_header(line) {
            in_section = true;
            continue;
        }
        if line.starts_with("IPv6 ") {
            in_section = false;
        }
        if in_section && line.contains("Address:") {
            let second = line.split([' ', '\t']).filter(|f| !f.is_empty()).nth(1);
            out.push(second.unwrap_or_default().to_string());
        }
    }
    out
}

/// `/^IPv6 (Dynamic|Static) Address [0-9]+:/`.
fn is_address_section_header(line: &str) -> bool {
    let Some(rest) = line
        .strip_prefix("IPv6 Dynamic Address ")
        .or_else(|| line.strip_prefix("IPv6 Static Address "))
    else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(':')
}

/// The blocks of `ipmitool lan6 print N dynamic_addr|static_addr` as PyYAML reads them: a
/// mapping of `Header N:` to mappings of `Key: value`. `None` for text that is not such a
/// document (where IPA's YAML load fails or yields something else).
fn yaml_blocks(text: &str) -> Option<Vec<Vec<(String, String)>>> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            let header = line.strip_suffix(':')?;
            if header.contains(": ") {
                return None;
            }
            blocks.push(Vec::new());
            continue;
        }
        let (key, value) = line.trim().split_once(':')?;
        if !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return None;
        }
        blocks
            .last_mut()?
            .push((key.trim().to_string(), value.trim().to_string()));
    }
    Some(blocks)
}

/// Python truthiness of a YAML 1.1 plain scalar (`yes`/`true`/`on` true, `no`/`false`/`off`,
/// null and zero false, any other text true).
fn yaml_truthy(value: &str) -> bool {
    const FALSE: &[&str] = &[
        "", "~", "null", "Null", "NULL", "no", "No", "NO", "false", "False", "FALSE", "off", "Off",
        "OFF",
    ];
    if FALSE.contains(&value) {
        return false;
    }
    !value.parse::<f64>().is_ok_and(|n| n == 0.0)
}

/// IPA's unset-address pattern `^::(/\d{1,3})*$`.
fn is_null_v6(address: &str) -> bool {
    let Some(mut rest) = address.strip_prefix("::") else {
        return false;
    };
    while let Some(r) = rest.strip_prefix('/') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=3).contains(&digits) {
            return false;
        }
        rest = &r[digits..];
    }
    rest.is_empty()
}

/// Python's `ipaddress.ip_interface(address).ip`: an address with an optional `/prefix`.
fn py_ip_interface(address: &str) -> Option<IpAddr> {
    let (addr, prefix) = match address.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (address, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    if let Some(p) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let digits_ok = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let valid = if digits_ok {
            p.parse::<u32>().is_ok_and(|n| n <= max)
        } else {
            ip.is_ipv4() && p.parse::<std::net::Ipv4Addr>().is_ok()
        };
        if !valid {
            return None;
        }
    }
    Some(ip)
}

/// `^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`, case-insensitive.
fn is_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim()
}

#[cfg(test)]
#[path = "bmc_tests.rs"]
mod tests;
