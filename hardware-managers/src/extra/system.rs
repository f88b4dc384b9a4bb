//! `system` facts (product, motherboard, ipmi channel aside: os, kernel, rtc) and `firmware`
//! (bios), in `hardware-detect`'s order: its system scan also reports memory, network and cpu
//! between them, so [`detect`] calls those modules too.
//!
//! `hardware-detect` reads the identity from `lshw` (DMI) and the UUID from `dmidecode`; here
//! both come from `/sys/class/dmi/id`, which the kernel fills from the same SMBIOS tables.

use super::tools::{self, first_line};
use super::{Facts, Root, cpu, memory, network};
use crate::generic::sysfs::read_trimmed;

/// System serial numbers that some vendors ship instead of a real one.
const BAD_SERIALS: [&str; 2] = ["0123456789", "0000000000"];

fn dmi(root: &Root, name: &str) -> Option<String> {
    read_trimmed(&root.path(&format!("/sys/class/dmi/id/{name}")))
}

/// `lshw`'s product: the DMI product name, with the SKU in parentheses when there is one.
pub fn product_name(name: Option<String>, sku: Option<String>) -> Option<String> {
    match (name, sku) {
        (Some(n), Some(s)) => Some(format!("{n} ({s})")),
        (n, _) => n,
    }
}

/// `dmidecode`'s UUID text (upper case) from the kernel's `product_uuid`; `None` when the
/// firmware left it unset (all zeros or all ones: `dmidecode` prints "Not Settable"/"Not
/// Present", which `hardware-detect` drops).
pub fn dmidecode_uuid(kernel: &str) -> Option<String> {
    let hex: String = kernel.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || hex.chars().all(|c| c == '0') || hex.chars().all(|c| c == 'f' || c == 'F')
    {
        return None;
    }
    Some(kernel.to_ascii_uppercase())
}

/// Adds the system facts, and memory, network and cpu (as `hardware-detect`'s system scan).
pub fn detect(root: &Root, facts: &mut Facts) {
    let push = |facts: &mut Facts, cat: &str, item: &str, key: &str, v: Option<String>| {
        if let Some(v) = v {
            facts.push(cat, item, key, v);
        }
    };
    push(
        facts,
        "system",
        "product",
        "serial",
        dmi(root, "product_serial"),
    );
    let name = product_name(dmi(root, "product_name"), dmi(root, "product_sku"));
    push(facts, "system", "product", "name", name);
    push(
        facts,
        "system",
        "product",
        "vendor",
        dmi(root, "sys_vendor"),
    );
    push(
        facts,
        "system",
        "product",
        "version",
        dmi(root, "product_version"),
    );
    let uuid = dmi(root, "product_uuid").and_then(|u| dmidecode_uuid(&u));
    push(facts, "system", "product", "uuid", uuid.clone());
    push(
        facts,
        "system",
        "motherboard",
        "name",
        dmi(root, "board_name"),
    );
    push(
        facts,
        "system",
        "motherboard",
        "vendor",
        dmi(root, "board_vendor"),
    );
    push(
        facts,
        "system",
        "motherboard",
        "version",
        dmi(root, "board_version"),
    );
    let board_serial = dmi(root, "board_serial");
    push(
        facts,
        "system",
        "motherboard",
        "serial",
        board_serial.clone(),
    );
    push(
        facts,
        "firmware",
        "bios",
        "version",
        dmi(root, "bios_version"),
    );
    push(facts, "firmware", "bios", "date", dmi(root, "bios_date"));
    push(
        facts,
        "firmware",
        "bios",
        "vendor",
        dmi(root, "bios_vendor"),
    );
    memory::detect(root, facts);
    let first_mac = network::detect(root, facts);
    fix_bad_serial(
        facts,
        uuid,
        board_serial,
        first_mac.map(|m| m.replace(':', "")),
    );
    cpu::detect(root, facts);
    os_and_kernel(root, facts);
}

/// Replaces a placeholder system serial with the UUID, else the motherboard serial, else the
/// first NIC's MAC without colons (moving the fact to the end, as `hardware-detect`).
pub fn fix_bad_serial(
    facts: &mut Facts,
    uuid: Option<String>,
    board: Option<String>,
    mac: Option<String>,
) {
    let Some(pos) = facts
        .0
        .iter()
        .position(|f| f.category() == "system" && f.item() == "product" && f.key() == "serial")
    else {
        return;
    };
    let bad = facts.0[pos]
        .value()
        .as_str()
        .is_some_and(|s| BAD_SERIALS.contains(&s));
    if !bad {
        return;
    }
    let better = [uuid, board, mac]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty());
    if let Some(serial) = better {
        facts.0.remove(pos);
        facts.push("system", "product", "serial", serial);
    }
}

/// The distribution's name and description, as `lsb_release -is` / `-ds` print them, from
/// `os-release`: the first word of `NAME` and `PRETTY_NAME`.
pub fn os_release(text: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut pretty = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "NAME" => name = v.split_whitespace().next().map(String::from),
            "PRETTY_NAME" => pretty = Some(v.replace('"', "")),
            _ => {}
        }
    }
    (name, pretty)
}

fn os_and_kernel(root: &Root, facts: &mut Facts) {
    let text = std::fs::read_to_string(root.path("/etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.path("/usr/lib/os-release")))
        .unwrap_or_default();
    let (vendor, version) = os_release(&text);
    if let Some(v) = vendor {
        facts.push("system", "os", "vendor", v);
    }
    if let Some(v) = version {
        facts.push("system", "os", "version", v);
    }
    let release = first_line(&root.path("/proc/sys/kernel/osrelease"));
    if let Some(r) = release {
        facts.push("system", "kernel", "version", r.trim());
    }
    // `uname -i` (the hardware platform) is "unknown" except on distributions that patch it.
    let arch = tools::lines(root, "uname", &["-i"])
        .into_iter()
        .next()
        .unwrap_or_else(|| "unknown".to_string());
    facts.push("system", "kernel", "arch", arch.trim());
    if let Some(c) = first_line(&root.path("/proc/cmdline")) {
        facts.push("system", "kernel", "cmdline", c.trim());
    }
}

/// `timedatectl status`'s "RTC in local TZ: yes|no"; `unknown` without it.
pub fn rtc_local(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("RTC in local TZ: ")?;
        (!v.is_empty() && v.chars().all(|c| c.is_ascii_lowercase())).then(|| v.to_string())
    })
}

/// `system/rtc/utc`: whether the RTC keeps local time, `unknown` when `timedatectl` cannot
/// tell (no systemd in the ramdisk).
pub fn detect_rtc(root: &Root, facts: &mut Facts) {
    let value = tools::stdout_if_ok(root, "timedatectl", &["status", "--no-pager"])
        .and_then(|t| rtc_local(&t))
        .unwrap_or_else(|| "unknown".to_string());
    facts.push("system", "rtc", "utc", value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity() {
        assert_eq!(
            product_name(Some("PowerEdge R640".into()), Some("SKU=0716".into())).as_deref(),
            Some("PowerEdge R640 (SKU=0716)")
        );
        assert_eq!(
            product_name(Some("KVM".into()), None).as_deref(),
            Some("KVM")
        );
        assert_eq!(
            dmidecode_uuid("4c4c4544-0044-3010-8052-b4c04f4d4e32").as_deref(),
            Some("4C4C4544-0044-3010-8052-B4C04F4D4E32")
        );
        assert_eq!(dmidecode_uuid("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(dmidecode_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"), None);
    }

    #[test]
    fn bad_serial_is_replaced() {
        let mut f = Facts::default();
        f.push("system", "product", "serial", "0123456789");
        f.push("system", "product", "name", "X");
        fix_bad_serial(
            &mut f,
            None,
            Some("MB1".into()),
            Some("525400000001".into()),
        );
        assert_eq!(f.0[1].value(), "MB1");
        let mut f = Facts::default();
        f.push("system", "product", "serial", "REAL");
        fix_bad_serial(&mut f, Some("U".into()), None, None);
        assert_eq!(f.0[0].value(), "REAL");
    }

    #[test]
    fn os_and_rtc() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n";
        assert_eq!(
            os_release(text),
            (
                Some("Debian".into()),
                Some("Debian GNU/Linux 12 (bookworm)".into())
            )
        );
        let status = "               Local time: Mon\n          RTC in local TZ: no\n";
        assert_eq!(rtc_local(status).as_deref(), Some("no"));
        assert_eq!(rtc_local("nothing"), None);
    }
}
