//! What `lscpu` prints for Arm CPUs, whose `/proc/cpuinfo` only has numeric ids: the vendor
//! (from the implementer), the model name (from the part, for the common server cores), the
//! model (the revision) and the stepping (`r<variant>p<revision>`).

use std::collections::BTreeMap;

/// `lscpu`'s view of an Arm CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmIdentity {
    /// `Vendor ID`.
    pub vendor: String,
    /// `Model name`, when the part is known.
    pub model_name: Option<String>,
    /// `Model` (the revision).
    pub model: String,
    /// `Stepping`.
    pub stepping: String,
}

fn implementer(id: u32) -> Option<&'static str> {
    Some(match id {
        0x41 => "ARM",
        0x42 => "Broadcom",
        0x43 => "Cavium",
        0x46 => "FUJITSU",
        0x48 => "HiSilicon",
        0x4e => "NVIDIA",
        0x50 => "APM",
        0x51 => "Qualcomm",
        0x53 => "Samsung",
        0x56 => "Marvell",
        0x61 => "Apple",
        0x69 => "Intel",
        0x6d => "Microsoft",
        0x70 => "Phytium",
        0xc0 => "Ampere",
        _ => return None,
    })
}

fn part(implementer: u32, part: u32) -> Option<&'static str> {
    Some(match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd05) => "Cortex-A55",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd09) => "Cortex-A73",
        (0x41, 0xd0a) => "Cortex-A75",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd0d) => "Cortex-A77",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd41) => "Cortex-A78",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4f) => "Neoverse-V2",
        (0x43, 0x0a1) => "ThunderX 88XX",
        (0x43, 0x0af) => "ThunderX2 99xx",
        (0x48, 0xd01) => "Kunpeng-920",
        (0xc0, 0xac3) => "Ampere-1",
        (0xc0, 0xac4) => "Ampere-1a",
        _ => return None,
    })
}

fn number(info: &BTreeMap<String, String>, key: &str) -> Option<u32> {
    let v = info.get(key)?;
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The identity of the CPU described by `info` (the first processor's `/proc/cpuinfo`
/// fields), when it is an Arm one.
pub fn identity(info: &BTreeMap<String, String>) -> Option<ArmIdentity> {
    let imp = number(info, "CPU implementer")?;
    let variant = number(info, "CPU variant").unwrap_or(0);
    let revision = number(info, "CPU revision").unwrap_or(0);
    let model_name = number(info, "CPU part")
        .and_then(|p| part(imp, p))
        .map(String::from);
    Some(ArmIdentity {
        vendor: implementer(imp).map_or_else(|| format!("{imp:#x}"), String::from),
        model_name,
        model: revision.to_string(),
        stepping: format!("r{variant}p{revision}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neoverse() {
        let info: BTreeMap<String, String> = [
            ("CPU implementer", "0x41"),
            ("CPU variant", "0x3"),
            ("CPU part", "0xd0c"),
            ("CPU revision", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            identity(&info),
            Some(ArmIdentity {
                vendor: "ARM".into(),
                model_name: Some("Neoverse-N1".into()),
                model: "1".into(),
                stepping: "r3p1".into(),
            })
        );
        assert_eq!(identity(&BTreeMap::new()), None);
    }
}
