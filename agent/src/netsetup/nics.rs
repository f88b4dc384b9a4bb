//! The machine's physical Ethernet interfaces, as network-setup matches them against network
//! data (by MAC) and VLAN requests (by name or MAC).

use std::path::Path;

use crate::netconf::ObservedNic;

/// The physical Ethernet NICs of `<sys_root>/class/net`: a `device` link, ARPHRD_ETHER (type 1),
/// not loopback; sorted by name. An enslaved NIC reports its permanent MAC (a bond rewrites
/// `address`).
pub fn physical_nics(sys_root: &Path) -> Vec<ObservedNic> {
    let class = sys_root.join("class/net");
    let Ok(entries) = std::fs::read_dir(&class) else {
        return Vec::new();
    };
    let mut nics: Vec<ObservedNic> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let dir = class.join(&name);
            if name == "lo" || std::fs::symlink_metadata(dir.join("device")).is_err() {
                return None;
            }
            if read(&dir.join("type")).as_deref() != Some("1") {
                return None;
            }
            let mac = read(&dir.join("bonding_slave/perm_hwaddr"))
                .or_else(|| read(&dir.join("address")))?
                .to_ascii_lowercase();
            Some(ObservedNic { name, mac })
        })
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_physical_ethernet_nics_only() -> anyhow::Result<()> {
        let sys = tempfile::tempdir()?;
        let net = sys.path().join("class/net");
        let nic = |name: &str, ty: &str, mac: &str, device: bool| -> anyhow::Result<()> {
            let d = net.join(name);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("type"), format!("{ty}\n"))?;
            std::fs::write(d.join("address"), format!("{mac}\n"))?;
            if device {
                std::fs::create_dir_all(d.join("device"))?;
            }
            Ok(())
        };
        nic("eth1", "1", "52:54:00:00:00:02", true)?;
        nic("eth0", "1", "52:54:00:00:00:01", true)?;
        nic("lo", "772", "00:00:00:00:00:00", false)?;
        nic("bond0", "1", "52:54:00:00:00:01", false)?;
        nic("ib0", "32", "80:00:00:00", true)?;
        std::fs::create_dir_all(net.join("eth1/bonding_slave"))?;
        std::fs::write(
            net.join("eth1/bonding_slave/perm_hwaddr"),
            "52:54:00:00:00:0A\n",
        )?;
        let nics = physical_nics(sys.path());
        let got: Vec<(&str, &str)> = nics
            .iter()
            .map(|n| (n.name.as_str(), n.mac.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("eth0", "52:54:00:00:00:01"), ("eth1", "52:54:00:00:00:0a")]
        );
        Ok(())
    }
}
