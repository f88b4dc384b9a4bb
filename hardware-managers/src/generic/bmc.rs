//! The BMC's addresses, read in-band with `ipmitool lan print N` / `ipmitool lan6 print N` over
//! channels 1–11 (the channels the IPMI specification leaves for LAN media).
//!
//! Results follow IPA: without an IPMI device node, or when ipmitool cannot be run, there is
//! no BMC (`None`); with a working ipmitool but no configured address the "unset" values
//! `0.0.0.0` and `::/0` are reported; the MAC is that of the first channel with a usable
//! address.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use tracing::{debug, warn};

use crate::process::{self, Limits};

/// The LAN channels that can carry a BMC address.
const CHANNELS: std::ops::RangeInclusive<u8> = 1..=11;
/// Limit for one ipmitool call (a busy BMC answers slowly).
const IPMITOOL_TIMEOUT: Duration = Duration::from_secs(15);

/// What one ipmitool invocation produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// It succeeded with this output.
    Output(String),
    /// It ran but failed (typically: no such channel).
    Failed,
    /// It could not be run or hung: give up on the BMC altogether.
    Unusable,
}

/// Whether the IPMI driver exposes a device node (`/dev/ipmi0`, `/dev/ipmi/0`, `/dev/ipmidev/0`).
pub(crate) fn has_ipmi_device(root: &Path) -> bool {
    let dev = root.join("dev");
    super::sysfs::list_dir(&dev)
        .iter()
        .any(|n| n.starts_with("ipmi"))
}

/// Runs the real `ipmitool` with `args`.
pub(crate) fn run_ipmitool(args: &[&str]) -> Answer {
    let mut cmd = process::command("ipmitool");
    cmd.args(args);
    match process::run(cmd, None, Limits::with_timeout(IPMITOOL_TIMEOUT)) {
        Ok(f) if f.status.success() => {
            Answer::Output(String::from_utf8_lossy(&f.stdout.bytes).into())
        }
        Ok(f) => {
            debug!(?args, status = %f.status, stderr = %String::from_utf8_lossy(&f.stderr.bytes).trim(), "ipmitool failed");
            Answer::Failed
        }
        Err(e) => {
            warn!(?args, error = %e, "cannot use ipmitool");
            Answer::Unusable
        }
    }
}

/// The first usable IPv4 address over the channels, `0.0.0.0` if none.
pub(crate) fn bmc_address(mut run: impl FnMut(&[&str]) -> Answer) -> Option<String> {
    for channel in CHANNELS {
        match run(&["lan", "print", &channel.to_string()]) {
            Answer::Unusable => return None,
            Answer::Failed => {}
            Answer::Output(text) => {
                if let Some(ip) = LanInfo::parse(&text).usable_ip() {
                    return Some(ip.to_string());
                }
            }
        }
    }
    Some(Ipv4Addr::UNSPECIFIED.to_string())
}

/// The first usable IPv6 address (dynamic before static) over the channels with IPv6
/// enabled, `::/0` if none.
pub(crate) fn bmc_v6address(mut run: impl FnMut(&[&str]) -> Answer) -> Option<String> {
    for channel in CHANNELS {
        match run(&["lan6", "print", &channel.to_string()]) {
            Answer::Unusable => return None,
            Answer::Failed => {}
            Answer::Output(text) => {
                if let Some(ip) = Lan6Info::parse(&text).usable_ip() {
                    return Some(ip.to_string());
                }
            }
        }
    }
    Some("::/0".to_string())
}

/// The MAC of the first channel with a usable IPv4 address, or an IPv6 address that is
/// neither link-local nor unspecified.
pub(crate) fn bmc_mac(mut run: impl FnMut(&[&str]) -> Answer) -> Option<String> {
    for channel in CHANNELS {
        let channel = channel.to_string();
        let lan = match run(&["lan", "print", &channel]) {
            Answer::Unusable => return None,
            Answer::Failed => continue,
            Answer::Output(text) => LanInfo::parse(&text),
        };
        let Some(mac) = lan.mac.clone().filter(|m| m != "00:00:00:00:00:00") else {
            continue;
        };
        if lan.usable_ip().is_some() {
            return Some(mac);
        }
        match run(&["lan6", "print", &channel]) {
            Answer::Unusable => return None,
            Answer::Failed => {}
            Answer::Output(text) => {
                let routable = Lan6Info::parse(&text)
                    .usable_ip()
                    .is_some_and(|ip| (ip.segments()[0] & 0xffc0) != 0xfe80);
                if routable {
                    return Some(mac);
                }
            }
        }
    }
    None
}

/// The fields we read from `ipmitool lan print N`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LanInfo {
    /// `IP Address`.
    pub ip: Option<String>,
    /// `MAC Address`, lower-case.
    pub mac: Option<String>,
}

impl LanInfo {
    /// Parses `Key   : value` lines (continuation lines have an empty key and are skipped).
    pub fn parse(text: &str) -> Self {
        let mut info = LanInfo::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "IP Address" => info.ip = Some(value.to_string()),
                "MAC Address" => info.mac = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        info
    }

    /// The IPv4 address if it parses and is not `0.0.0.0`.
    pub fn usable_ip(&self) -> Option<Ipv4Addr> {
        self.ip
            .as_deref()?
            .parse::<Ipv4Addr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
    }
}

/// One IPv6 address block of `ipmitool lan6 print`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Lan6Address {
    /// `Address:` with its prefix length, e.g. `2001:db8::5/64`.
    pub address: String,
    /// `Status:` (`active`, `disabled`, ...).
    pub status: String,
    /// `Enabled:` of static addresses (`yes`/`no`); absent on dynamic ones.
    pub enabled: Option<String>,
}

impl Lan6Address {
    /// The address if active, enabled and set (the IPMI spec uses `::/0` and `::/128` for
    /// "not set").
    fn usable(&self) -> Option<Ipv6Addr> {
        if self.status != "active" || self.enabled.as_deref() == Some("no") {
            return None;
        }
        let addr = self.address.split('/').next()?.trim();
        addr.parse::<Ipv6Addr>()
            .ok()
            .filter(|a| !a.is_unspecified())
    }
}

/// The fields we read from `ipmitool lan6 print N`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Lan6Info {
    /// `IPv6/IPv4 Addressing Enables` (`ipv4`, `ipv6`, `both`).
    pub enables: Option<String>,
    /// `IPv6 Dynamic Address N` blocks (SLAAC/DHCPv6).
    pub dynamic: Vec<Lan6Address>,
    /// `IPv6 Static Address N` blocks.
    pub fixed: Vec<Lan6Address>,
}

impl Lan6Info {
    /// Parses the top-level `Key: value` lines and the indented address blocks.
    pub fn parse(text: &str) -> Self {
        #[derive(Clone, Copy)]
        enum Block {
            Other,
            Dynamic,
            Static,
        }
        let mut info = Lan6Info::default();
        let mut block = Block::Other;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if !line.starts_with([' ', '\t']) {
                block = Block::Other;
                if key == "IPv6/IPv4 Addressing Enables" {
                    info.enables = Some(value.to_ascii_lowercase());
                } else if value.is_empty() && key.starts_with("IPv6 Dynamic Address") {
                    block = Block::Dynamic;
                    info.dynamic.push(Lan6Address::default());
                } else if value.is_empty() && key.starts_with("IPv6 Static Address") {
                    block = Block::Static;
                    info.fixed.push(Lan6Address::default());
                }
                continue;
            }
            let current = match block {
                Block::Other => continue,
                Block::Dynamic => info.dynamic.last_mut(),
                Block::Static => info.fixed.last_mut(),
            };
            let Some(current) = current else { continue };
            match key {
                "Address" => current.address = value.to_string(),
                "Status" => current.status = value.to_ascii_lowercase(),
                "Enabled" => current.enabled = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        info
    }

    /// With IPv6 enabled (`ipv6` or `both`): the first usable dynamic address, else the first
    /// usable static one.
    pub fn usable_ip(&self) -> Option<Ipv6Addr> {
        if !matches!(self.enables.as_deref(), Some("ipv6" | "both")) {
            return None;
        }
        self.dynamic
            .iter()
            .chain(&self.fixed)
            .find_map(Lan6Address::usable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAN_PRINT: &str = "\
Set in Progress         : Set Complete
Auth Type Support       : MD5
Auth Type Enable        : Callback : MD5
                        : User     : MD5
                        : OEM      :
IP Address Source       : DHCP Address
IP Address              : 10.16.218.144
Subnet Mask             : 255.255.254.0
MAC Address             : 4C:D9:8F:03:E8:74
SNMP Community String   : public
Default Gateway IP      : 10.16.219.254
Default Gateway MAC     : 00:00:00:00:00:00
Backup Gateway IP       : 0.0.0.0
802.1q VLAN ID          : Disabled
Cipher Suite Priv Max   : Xaaaaaaaaaaaaaa
                        :     X=Cipher Suite Unused
Bad Password Threshold  : Not Available
";

    const LAN6_PRINT: &str = "\
IPv6/IPv4 Support:
    IPv6 only: yes
    IPv4 and IPv6: yes
    IPv6 Destination Addresses for LAN alerting: yes
IPv6/IPv4 Addressing Enables: both
IPv6 Header Traffic Class: 0
IPv6 Status:
    Static address max:  1
    Dynamic address max: 16
    DHCPv6 support:      yes
    SLAAC support:       yes
IPv6 Static Address 0:
    Enabled:        yes
    Address:        2001:db8::5/64
    Status:         active
IPv6 DHCPv6 Static DUID Storage Length: 3
IPv6 Dynamic Address 0:
    Source/Type:    static
    Address:        ::/0
    Status:         active
IPv6 Dynamic Address 1:
    Source/Type:    SLAAC
    Address:        fe80::779e:a22f:dc5e:ca41/64
    Status:         active
IPv6 Static Router 1:
    Address: ::
    MAC:     00:00:00:00:00:00
";

    #[test]
    fn parses_lan_print() {
        let info = LanInfo::parse(LAN_PRINT);
        assert_eq!(info.ip.as_deref(), Some("10.16.218.144"));
        assert_eq!(info.mac.as_deref(), Some("4c:d9:8f:03:e8:74"));
        assert_eq!(info.usable_ip(), Some(Ipv4Addr::new(10, 16, 218, 144)));
        let unset = LanInfo::parse("IP Address              : 0.0.0.0\n");
        assert_eq!(unset.usable_ip(), None);
        assert_eq!(LanInfo::parse("garbage\n\n"), LanInfo::default());
    }

    #[test]
    fn parses_lan6_print() {
        let info = Lan6Info::parse(LAN6_PRINT);
        assert_eq!(info.enables.as_deref(), Some("both"));
        assert_eq!(info.dynamic.len(), 2);
        assert_eq!(info.fixed.len(), 1);
        // Dynamic first: the unset ::/0 is skipped, the SLAAC link-local one wins.
        assert_eq!(info.usable_ip(), "fe80::779e:a22f:dc5e:ca41".parse().ok());

        let ipv4_only = LAN6_PRINT.replace("Enables: both", "Enables: ipv4");
        assert_eq!(Lan6Info::parse(&ipv4_only).usable_ip(), None);

        let static_only = LAN6_PRINT.replace("fe80::779e:a22f:dc5e:ca41/64", "::/128");
        assert_eq!(
            Lan6Info::parse(&static_only).usable_ip(),
            "2001:db8::5".parse().ok()
        );
        let disabled = static_only.replace("Enabled:        yes", "Enabled:        no");
        assert_eq!(Lan6Info::parse(&disabled).usable_ip(), None);
    }

    #[test]
    fn channel_scan() {
        // ipmitool runs but no channel answers: the "unset" values, and no MAC.
        let no_channel = |_: &[&str]| Answer::Failed;
        assert_eq!(bmc_address(no_channel).as_deref(), Some("0.0.0.0"));
        assert_eq!(bmc_v6address(no_channel).as_deref(), Some("::/0"));
        assert_eq!(bmc_mac(no_channel), None);
        // ipmitool cannot run: no BMC at all.
        assert_eq!(bmc_address(|_: &[&str]| Answer::Unusable), None);
        assert_eq!(bmc_v6address(|_: &[&str]| Answer::Unusable), None);
        assert_eq!(bmc_mac(|_: &[&str]| Answer::Unusable), None);
    }

    #[test]
    fn channel_scan_finds_later_channel() {
        let run = |args: &[&str]| match args {
            ["lan", "print", "3"] => Answer::Output(LAN_PRINT.to_string()),
            ["lan", "print", "1"] => {
                Answer::Output("IP Address : 0.0.0.0\nMAC Address : 00:11:22:33:44:55\n".into())
            }
            ["lan6", "print", "2"] => Answer::Output(LAN6_PRINT.to_string()),
            _ => Answer::Failed,
        };
        assert_eq!(bmc_address(run).as_deref(), Some("10.16.218.144"));
        assert_eq!(
            bmc_v6address(run).as_deref(),
            Some("fe80::779e:a22f:dc5e:ca41")
        );
        assert_eq!(bmc_mac(run).as_deref(), Some("4c:d9:8f:03:e8:74"));
    }

    #[test]
    fn mac_from_routable_ipv6_channel() {
        let global = LAN6_PRINT.replace("fe80::779e:a22f:dc5e:ca41/64", "2001:db8::9/64");
        let run = move |args: &[&str]| match args {
            ["lan", "print", "1"] => {
                Answer::Output("IP Address : 0.0.0.0\nMAC Address : 00:11:22:33:44:55\n".into())
            }
            ["lan6", "print", "1"] => Answer::Output(global.clone()),
            _ => Answer::Failed,
        };
        assert_eq!(bmc_mac(run).as_deref(), Some("00:11:22:33:44:55"));
    }
}
