//! `infiniband` facts per Mellanox InfiniBand card (`cardN`) and port (`cardN_portM`), with
//! the values `ibstat` prints, read from `/sys/class/infiniband` (the ramdisk has no
//! `ibstat`).

use super::{Facts, Root};
use crate::generic::sysfs::{list_dir, read_trimmed};

/// Whether a Mellanox (0x15b3) network controller of class 0x0280 (InfiniBand) is present.
pub fn has_ib_controller(root: &Root) -> bool {
    let dir = root.path("/sys/bus/pci/devices");
    list_dir(&dir).iter().any(|d| {
        let dev = dir.join(d);
        read_trimmed(&dev.join("vendor")).as_deref() == Some("0x15b3")
            && read_trimmed(&dev.join("class")).is_some_and(|c| c.starts_with("0x0280"))
    })
}

/// `0002:c903:00a1:b2c3` → `0x0002c90300a1b2c3`.
pub fn guid(sysfs: &str) -> String {
    format!("0x{}", sysfs.replace(':', ""))
}

/// `4: ACTIVE` → `Active` (ibstat's names).
pub fn port_state(sysfs: &str) -> String {
    match sysfs.split(':').next().map(str::trim) {
        Some("1") => "Down",
        Some("2") => "Initializing",
        Some("3") => "Armed",
        Some("4") => "Active",
        _ => "Unknown",
    }
    .to_string()
}

/// `0x1a` → `26`.
fn hex_to_dec(s: &str) -> String {
    s.strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map_or_else(|| s.to_string(), |n| n.to_string())
}

/// Adds the InfiniBand facts.
pub fn detect(root: &Root, facts: &mut Facts) {
    if !has_ib_controller(root) {
        return;
    }
    let base = root.path("/sys/class/infiniband");
    for (i, card) in list_dir(&base).iter().enumerate() {
        let dir = base.join(card);
        let attr = |a: &str| read_trimmed(&dir.join(a)).unwrap_or_default();
        let ports = list_dir(&dir.join("ports"));
        let item = format!("card{i}");
        facts.push("infiniband", &item, "card_type", card.as_str());
        facts.push("infiniband", &item, "device_type", attr("hca_type"));
        facts.push("infiniband", &item, "fw_version", attr("fw_ver"));
        facts.push("infiniband", &item, "hw_version", attr("hw_rev"));
        facts.push("infiniband", &item, "nb_ports", ports.len().to_string());
        facts.push(
            "infiniband",
            &item,
            "sys_guid",
            guid(&attr("sys_image_guid")),
        );
        facts.push("infiniband", &item, "node_guid", guid(&attr("node_guid")));
        for port in 1..=ports.len() {
            let p = dir.join(format!("ports/{port}"));
            let pattr = |a: &str| read_trimmed(&p.join(a)).unwrap_or_default();
            let item = format!("card{i}_port{port}");
            let state = port_state(&pattr("state"));
            // `hardware-detect` matches "State: " for both, so both are the logical state.
            facts.push("infiniband", &item, "state", state.as_str());
            facts.push("infiniband", &item, "physical_state", state.as_str());
            let rate = pattr("rate");
            let rate = rate.split_whitespace().next().unwrap_or("").to_string();
            facts.push("infiniband", &item, "rate", rate);
            facts.push("infiniband", &item, "base_lid", hex_to_dec(&pattr("lid")));
            facts.push("infiniband", &item, "lmc", pattr("lid_mask_count"));
            facts.push("infiniband", &item, "sm_lid", hex_to_dec(&pattr("sm_lid")));
            let gid = pattr("gids/0");
            let port_guid: Vec<&str> = gid.split(':').skip(4).collect();
            facts.push("infiniband", &item, "port_guid", guid(&port_guid.join("")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_card() {
        let dir = tempfile::tempdir().expect("tmp");
        let pci = dir.path().join("sys/bus/pci/devices/0000:81:00.0");
        std::fs::create_dir_all(&pci).expect("mk");
        std::fs::write(pci.join("vendor"), "0x15b3\n").expect("w");
        std::fs::write(pci.join("class"), "0x028000\n").expect("w");
        let ca = dir.path().join("sys/class/infiniband/mlx4_0");
        std::fs::create_dir_all(ca.join("ports/1/gids")).expect("mk");
        for (a, v) in [
            ("hca_type", "MT4099"),
            ("fw_ver", "2.42.5000"),
            ("hw_rev", "1"),
            ("node_guid", "0002:c903:00a1:b2c3"),
            ("sys_image_guid", "0002:c903:00a1:b2c6"),
            ("ports/1/state", "4: ACTIVE"),
            ("ports/1/rate", "40 Gb/sec (4X QDR)"),
            ("ports/1/lid", "0x1a"),
            ("ports/1/lid_mask_count", "0"),
            ("ports/1/sm_lid", "0x1"),
            ("ports/1/gids/0", "fe80:0000:0000:0000:0002:c903:00a1:b2c4"),
        ] {
            std::fs::write(ca.join(a), v).expect("w");
        }
        let mut facts = Facts::default();
        detect(&Root::at(dir.path()), &mut facts);
        let t = |i: &str, k: &str| facts.get_text("infiniband", i, k);
        assert_eq!(t("card0", "card_type").as_deref(), Some("mlx4_0"));
        assert_eq!(t("card0", "device_type").as_deref(), Some("MT4099"));
        assert_eq!(t("card0", "nb_ports").as_deref(), Some("1"));
        assert_eq!(
            t("card0", "node_guid").as_deref(),
            Some("0x0002c90300a1b2c3")
        );
        assert_eq!(t("card0_port1", "state").as_deref(), Some("Active"));
        assert_eq!(
            t("card0_port1", "physical_state").as_deref(),
            Some("Active")
        );
        assert_eq!(t("card0_port1", "rate").as_deref(), Some("40"));
        assert_eq!(t("card0_port1", "base_lid").as_deref(), Some("26"));
        assert_eq!(
            t("card0_port1", "port_guid").as_deref(),
            Some("0x0002c90300a1b2c4")
        );
        std::fs::write(pci.join("class"), "0x020000\n").expect("w");
        let mut none = Facts::default();
        detect(&Root::at(dir.path()), &mut none);
        assert!(none.0.is_empty());
    }
}
