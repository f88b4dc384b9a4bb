//! What `lshw` learns through the `SIOCETHTOOL` ioctl (driver, firmware, link,
//! auto-negotiation) and the parser for `ethtool -a` / `ethtool -k` text that
//! `hardware-detect` adds per NIC.

use super::Facts;
use crate::generic::ethtool::{ethtool_ioctl, ioctl_socket};

const ETHTOOL_GSET: u32 = 0x1;
const ETHTOOL_GDRVINFO: u32 = 0x3;
const ETHTOOL_GLINK: u32 = 0xa;

/// `struct ethtool_drvinfo`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    counts: [u32; 5],
}

/// `struct ethtool_cmd` (the legacy settings call `lshw` makes).
#[repr(C)]
struct Settings {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// `struct ethtool_value`.
#[repr(C)]
struct Value {
    cmd: u32,
    data: u32,
}

/// What the ethtool ioctls report for one interface (each `None` when unsupported).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EthtoolInfo {
    /// Firmware version (empty and "N/A" are dropped).
    pub firmware: Option<String>,
    /// Whether the link is up.
    pub link: Option<bool>,
    /// Whether auto-negotiation is on.
    pub autoneg: Option<bool>,
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}

/// Queries driver info, link and settings of `ifname`.
pub fn query(ifname: &str) -> EthtoolInfo {
    let Some(fd) = ioctl_socket() else {
        return EthtoolInfo::default();
    };
    let mut info = EthtoolInfo::default();
    // SAFETY: all-zero bytes are a valid `DrvInfo` (integers and byte arrays).
    let mut drv: DrvInfo = unsafe { std::mem::zeroed() };
    drv.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: `drv` is a live, writable ethtool_drvinfo, the GDRVINFO argument.
    if unsafe { ethtool_ioctl(&fd, ifname, (&raw mut drv).cast()) }.is_ok() {
        let fw = c_string(&drv.fw_version);
        info.firmware = (!fw.is_empty() && fw != "N/A").then_some(fw);
    }
    let mut link = Value {
        cmd: ETHTOOL_GLINK,
        data: 0,
    };
    // SAFETY: `link` is a live, writable ethtool_value, the GLINK argument.
    if unsafe { ethtool_ioctl(&fd, ifname, (&raw mut link).cast()) }.is_ok() {
        info.link = Some(link.data != 0);
    }
    // SAFETY: all-zero bytes are a valid `Settings`.
    let mut set: Settings = unsafe { std::mem::zeroed() };
    set.cmd = ETHTOOL_GSET;
    // SAFETY: `set` is a live, writable ethtool_cmd, the GSET argument.
    if unsafe { ethtool_ioctl(&fd, ifname, (&raw mut set).cast()) }.is_ok() {
        info.autoneg = Some(set.autoneg != 0);
    }
    info
}

/// Adds `ethtool -a` / `ethtool -k` output as `hardware-detect` does: one fact per
/// `name: value` line (`parent/child` for indented lines), skipping the lines that name the
/// interface and those without a value.
pub fn parse_text(facts: &mut Facts, ifname: &str, text: &str) {
    let mut parent = String::new();
    for line in text.lines() {
        if line.contains(ifname) {
            continue;
        }
        let mut parts = line.split(':');
        let first = parts.next().unwrap_or("");
        let header = if line.starts_with('\t') {
            format!("{parent}/{}", first.replace('\t', "").trim())
        } else {
            parent = first.to_string();
            first.to_string()
        };
        let header = header.replace('\t', "");
        let header = header.trim();
        let content: String = parts.collect::<Vec<_>>().concat();
        let content = content.replace('\t', "");
        let content = content.trim();
        if content.is_empty() {
            continue;
        }
        facts.push("network", ifname, header, content);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_text() {
        let text = "Features for eth0:\nrx-checksumming: on [fixed]\ntx-checksumming: on\n\
            \ttx-checksum-ipv4: off [fixed]\n\ttx-checksum-ip-generic: on\nhighdma: on [fixed]\n";
        let mut facts = Facts::default();
        parse_text(&mut facts, "eth0", text);
        let got = facts.key_texts();
        let want = [
            ("rx-checksumming", "on [fixed]"),
            ("tx-checksumming", "on"),
            ("tx-checksumming/tx-checksum-ipv4", "off [fixed]"),
            ("tx-checksumming/tx-checksum-ip-generic", "on"),
            ("highdma", "on [fixed]"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn pause_text() {
        let text = "Pause parameters for eno1:\nAutonegotiate:\ton\nRX:\t\toff\nTX:\t\toff\n";
        let mut facts = Facts::default();
        parse_text(&mut facts, "eno1", text);
        assert_eq!(
            facts.get_text("network", "eno1", "RX").as_deref(),
            Some("off")
        );
        assert_eq!(
            facts
                .get_text("network", "eno1", "Autonegotiate")
                .as_deref(),
            Some("on")
        );
    }

    #[test]
    fn loopback_answers_the_ioctls() {
        // `lo` has no ethtool driver info but the link query works on every interface.
        let info = query("lo");
        assert_eq!(info.firmware, None);
        let _ = info.link;
    }
}
