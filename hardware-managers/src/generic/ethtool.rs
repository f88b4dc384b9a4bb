//! A NIC's highest supported link speed, as lshw reports it (its `capacity`), which is what
//! IPA posts as `speed_mbps`.
//!
//! lshw reads the "supported" link-mode masks with `ETHTOOL_GLINKSETTINGS` and sets the
//! capacity to the fastest of a fixed list of modes (10 Mbit/s to 40 Gbit/s); faster or other
//! modes leave it unset. Virtual interfaces (bonds, VLANs, bridges: under
//! `/sys/devices/virtual`) are not in lshw's tree, so IPA has no speed for them. The current
//! negotiated speed (`/sys/class/net/*/speed`) is not what IPA reports.
//!
//! The permanent MAC (`ETHTOOL_GPERMADDR`) is here too: IPA prefers it to the current one.
//!
//! On the real system the masks come from the ioctl. Under a fake root (tests) they come from
//! the optional text file `<root>/ethtool`, one `<interface> <word0> <word1>` line (hex) each.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::libc;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// The first two 32-bit words of a NIC's "supported" link-mode bitmap.
pub(crate) type SupportedModes = [u32; 2];

/// lshw's mode table, slowest first: (word, bit, Mbit/s). The last supported entry wins.
const MODES: &[(usize, u32, u64)] = &[
    (0, 0, 10),     // 10baseT_Half
    (0, 1, 10),     // 10baseT_Full
    (0, 2, 100),    // 100baseT_Half
    (0, 3, 100),    // 100baseT_Full
    (0, 4, 1000),   // 1000baseT_Half
    (0, 5, 1000),   // 1000baseT_Full
    (0, 17, 1000),  // 1000baseKX_Full
    (1, 9, 1000),   // 1000baseX_Full (bit 41)
    (0, 15, 2500),  // 2500baseX_Full
    (1, 15, 2500),  // 2500baseT_Full (bit 47)
    (1, 16, 5000),  // 5000baseT_Full (bit 48)
    (0, 12, 10000), // 10000baseT_Full
    (0, 18, 10000), // 10000baseKX4_Full
    (0, 19, 10000), // 10000baseKR_Full
    (1, 10, 10000), // 10000baseCR_Full (bit 42)
    (1, 11, 10000), // 10000baseSR_Full
    (1, 12, 10000), // 10000baseLR_Full
    (1, 13, 10000), // 10000baseLRM_Full
    (1, 14, 10000), // 10000baseER_Full
    (0, 31, 25000), // 25000baseCR_Full
    (1, 0, 25000),  // 25000baseKR_Full (bit 32)
    (1, 1, 25000),  // 25000baseSR_Full
    (0, 23, 40000), // 40000baseKR4_Full
    (0, 24, 40000), // 40000baseCR4_Full
    (0, 25, 40000), // 40000baseSR4_Full
    (0, 26, 40000), // 40000baseLR4_Full
];

/// lshw's capacity in Mbit/s for the supported modes, `None` when no listed mode is set.
pub(crate) fn capacity_mbps(modes: SupportedModes) -> Option<u64> {
    MODES
        .iter()
        .filter(|(word, bit, _)| modes[*word] & (1 << bit) != 0)
        .map(|(_, _, mbps)| *mbps)
        .next_back()
}

/// Whether `<root>/sys/class/net/<name>` is a virtual device (lshw leaves it out).
pub(crate) fn is_virtual(root: &Path, name: &str) -> bool {
    std::fs::read_link(root.join("sys/class/net").join(name))
        .is_ok_and(|target| target.to_string_lossy().contains("devices/virtual/"))
}

/// What the ethtool ioctls tell about an interface.
pub(crate) trait LinkInfo {
    /// The "supported" link modes.
    fn supported_modes(&self, name: &str) -> Option<SupportedModes>;
    /// The permanent (factory) MAC, when the driver knows one.
    fn permanent_mac(&self, name: &str) -> Option<String>;
}

/// The kernel's answers (the real system).
pub(crate) struct Kernel;

impl LinkInfo for Kernel {
    fn supported_modes(&self, name: &str) -> Option<SupportedModes> {
        supported_modes(name)
    }

    fn permanent_mac(&self, name: &str) -> Option<String> {
        permanent_mac(name)
    }
}

/// A fake root's answers: supported modes from `<root>/ethtool`, no permanent MACs.
pub(crate) struct FromFile(pub HashMap<String, SupportedModes>);

impl LinkInfo for FromFile {
    fn supported_modes(&self, name: &str) -> Option<SupportedModes> {
        self.0.get(name).copied()
    }

    fn permanent_mac(&self, _: &str) -> Option<String> {
        None
    }
}

/// Supported modes by interface name from `<root>/ethtool`; empty when the file is absent.
pub(crate) fn from_file(path: &Path) -> HashMap<String, SupportedModes> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let word =
        |w: Option<&str>| w.and_then(|w| u32::from_str_radix(w.trim_start_matches("0x"), 16).ok());
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            Some((name.to_string(), [word(words.next())?, word(words.next())?]))
        })
        .collect()
}

/// `ETHTOOL_GPERMADDR` (linux/ethtool.h).
const ETHTOOL_GPERMADDR: u32 = 0x20;
/// `MAX_ADDR_LEN` (linux/netdevice.h).
const MAX_ADDR_LEN: usize = 32;

/// `struct ethtool_perm_addr` with room for `MAX_ADDR_LEN` bytes.
#[repr(C)]
struct PermAddr {
    cmd: u32,
    size: u32,
    data: [u8; MAX_ADDR_LEN],
}

/// `SIOCETHTOOL` (linux/sockios.h).
const SIOCETHTOOL: u64 = 0x8946;
/// `ETHTOOL_GLINKSETTINGS` (linux/ethtool.h).
const ETHTOOL_GLINKSETTINGS: u32 = 0x4c;
/// The most 32-bit words per link-mode mask accepted (lshw's limit).
const MAX_NWORDS: usize = 64;

/// `struct ethtool_link_settings` followed by room for its three masks.
#[repr(C)]
struct LinkSettings {
    cmd: u32,
    speed: u32,
    duplex: u8,
    port: u8,
    phy_address: u8,
    autoneg: u8,
    mdio_support: u8,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    link_mode_masks_nwords: i8,
    transceiver: u8,
    master_slave_cfg: u8,
    master_slave_state: u8,
    rate_matching: u8,
    reserved: [u32; 7],
    masks: [u32; 3 * MAX_NWORDS],
}

/// `struct ifreq` with the `ifr_data` pointer of its union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 24 - size_of::<usize>()],
}

/// A datagram socket for the ethtool ioctls.
pub(crate) fn ioctl_socket() -> Option<OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()
}

/// Issues `SIOCETHTOOL` on `ifname` with `data`, the command's argument struct (its first
/// field is the command): the one ethtool ioctl of the crate.
///
/// # Safety
/// `data` must point to a live, writable struct of the size the kernel expects for its
/// command (and, for variable-length commands, have room for what its length fields say).
pub(crate) unsafe fn ethtool_ioctl(
    fd: &OwnedFd,
    ifname: &str,
    data: *mut libc::c_void,
) -> io::Result<()> {
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 24 - size_of::<usize>()],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: SIOCETHTOOL reads the name and the data pointer from `req`, a live ifreq of the
    // kernel's size; the caller guarantees `data` fits the command.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `ETHTOOL_GLINKSETTINGS` call with `nwords` words per mask.
fn link_settings(fd: &OwnedFd, ifname: &str, nwords: i8) -> io::Result<Box<LinkSettings>> {
    // SAFETY: LinkSettings is plain integers: all-zero is a valid value.
    let mut settings: Box<LinkSettings> = Box::new(unsafe { std::mem::zeroed() });
    settings.cmd = ETHTOOL_GLINKSETTINGS;
    settings.link_mode_masks_nwords = nwords;
    // SAFETY: `settings` is a live ethtool_link_settings with room for three masks of up to
    // MAX_NWORDS words; the kernel writes at most `nwords` (<= MAX_NWORDS) words each.
    unsafe { ethtool_ioctl(fd, ifname, (&raw mut *settings).cast()) }?;
    Ok(settings)
}

/// The permanent MAC of `ifname` (`ETHTOOL_GPERMADDR`), lower-case, as IPA reads it first;
/// `None` when the driver has none (all zeros: VLANs, bonds, virtual devices) or no answer.
pub(crate) fn permanent_mac(ifname: &str) -> Option<String> {
    let fd = ioctl_socket()?;
    let mut addr = PermAddr {
        cmd: ETHTOOL_GPERMADDR,
        size: MAX_ADDR_LEN as u32,
        data: [0; MAX_ADDR_LEN],
    };
    // SAFETY: `addr` is a live ethtool_perm_addr whose `size` tells the kernel it has room
    // for MAX_ADDR_LEN bytes (it copies at most that many and sets `size`).
    unsafe { ethtool_ioctl(&fd, ifname, (&raw mut addr).cast()) }.ok()?;
    format_mac(addr.data.get(..addr.size as usize)?)
}

/// `aa:bb:...` for a non-zero hardware address.
fn format_mac(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The supported modes of `ifname` from the kernel, as lshw reads them (mask size probe, then
/// the masks); `None` when the driver does not answer.
pub(crate) fn supported_modes(ifname: &str) -> Option<SupportedModes> {
    let fd = ioctl_socket()?;
    let probe = link_settings(&fd, ifname, 0).ok()?;
    let nwords = probe.link_mode_masks_nwords.checked_neg()?;
    if !(2..=MAX_NWORDS as i8).contains(&nwords) {
        return None;
    }
    let settings = link_settings(&fd, ifname, nwords).ok()?;
    Some([settings.masks[0], settings.masks[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_as_lshw() {
        assert_eq!(capacity_mbps([0, 0]), None);
        // 10/100/1000baseT + autoneg + TP: a 1G copper NIC.
        assert_eq!(capacity_mbps([0b1010_1111, 0]), Some(1000));
        // X710 SFP+: 1000baseX + 10000baseSR.
        assert_eq!(capacity_mbps([0, (1 << 9) | (1 << 11)]), Some(10000));
        // 25G: 25000baseSR with 10G modes.
        assert_eq!(capacity_mbps([1 << 19, 1 << 1]), Some(25000));
        assert_eq!(capacity_mbps([1 << 25, 0]), Some(40000));
        // 100000baseLR4_ER4 (bit 39) alone is beyond lshw's table.
        assert_eq!(capacity_mbps([0, 1 << 7]), None);
    }

    #[test]
    fn reads_the_test_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ethtool");
        std::fs::write(&path, "eth1 0x0 0xa00\nbad\neth2 20 0\n").unwrap();
        let modes = from_file(&path);
        assert_eq!(modes.get("eth1"), Some(&[0, 0xa00]));
        assert_eq!(modes.get("eth2"), Some(&[0x20, 0]));
        assert_eq!(modes.len(), 2);
        assert!(from_file(&dir.path().join("none")).is_empty());
    }

    #[test]
    fn macs() {
        assert_eq!(format_mac(&[0; 6]), None);
        assert_eq!(
            format_mac(&[0x02, 0xfc, 0, 0, 0, 0x1a]).as_deref(),
            Some("02:fc:00:00:00:1a")
        );
        // Loopback's address is all zeros.
        assert_eq!(permanent_mac("lo"), None);
    }

    #[test]
    fn real_loopback_has_no_modes() {
        // `lo` answers no link settings (or none lshw knows): no capacity either way.
        assert_eq!(supported_modes("lo").and_then(capacity_mbps), None);
    }
}
