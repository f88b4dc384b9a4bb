//! `disk` SMART facts from `smartctl -a` (ATA attributes, SCSI log pages, NVMe health), with
//! `hardware-detect`'s field names (`SMART/<title>`, `SMART/<attribute>(<id>)/<column>`).

use super::tools::{self, TOOL_TIMEOUT};
use super::{Facts, Root};

/// NVMe `smartctl` labels and their titles.
const NVME_INFOS: [(&str, &str); 13] = [
    ("Model Number:", "model_number"),
    ("Serial Number:", "serial_number"),
    ("Firmware Version:", "firmware_version"),
    ("Total NVM Capacity:", "total_nvm_capacity"),
    ("Warning  Comp. Temp. Threshold:", "warning_temp_threshold"),
    ("Critical Comp. Temp. Threshold:", "critical_temp_threshold"),
    ("Critical Warning:", "critical_warning"),
    ("Temperature:", "temperature"),
    ("Power Cycles:", "power_cycles"),
    ("Power On Hours:", "power_on_hours"),
    ("Unsafe Shutdowns:", "unsafe_shutdowns"),
    (
        "Media and Data Integrity Errors:",
        "media_data_integrity_errors",
    ),
    (
        "Error Information Log Entries:",
        "error_information_log_entries",
    ),
];

/// SCSI `smartctl` labels and their titles.
const SMART_FIELDS: [(&str, &str); 15] = [
    ("Serial number:", "serial_number"),
    ("SMART Health Status:", "health"),
    (
        "Specified cycle count over device lifetime:",
        "specified_start_stop_cycle_count_over_lifetime",
    ),
    ("Accumulated start-stop cycles:", "start_stop_cycle_count"),
    (
        "Specified load-unload count over device lifetime:",
        "specified_load_count_over_lifetime",
    ),
    ("Accumulated load-unload cycles:", "load_count"),
    ("number of hours powered up =", "power_on_hours"),
    ("Blocks sent to initiator =", "blocks_sent"),
    ("Blocks received from initiator =", "blocks_received"),
    (
        "Blocks read from cache and sent to initiator =",
        "blocks_read_from_cache",
    ),
    ("Non-medium error count:", "non_medium_errors_count"),
    ("Current Drive Temperature:", "current_drive_temperature"),
    ("Drive Trip Temperature:", "drive_trip_temperature"),
    ("Manufactured in ", "manufacture_date"),
    ("Rotation Rate", "rotation_rate"),
];

/// `smartctl -a DEVICE [flag]`'s output, stripped lines; empty when it did not run.
fn smartctl(root: &Root, device: &str, flag: &[&str]) -> Vec<String> {
    let mut args = vec!["-a", device];
    args.extend_from_slice(flag);
    tools::run(root, "smartctl", &args, TOOL_TIMEOUT)
        .map(|o| o.stdout.lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Adds `SMART/<title>` when `item` is in `line`; returns the value (empty for temperatures,
/// which give `<title>` and `<title>_unit`).
pub fn field(facts: &mut Facts, line: &str, device: &str, item: &str, title: &str) -> String {
    if !line.contains(item) {
        return String::new();
    }
    let mut parts = line.split(item).skip(1);
    if title.contains("temperature") {
        let after = parts.next().unwrap_or("");
        let mut words = after.split_whitespace();
        if let Some(v) = words.next() {
            facts.push("disk", device, &format!("SMART/{title}"), v);
            if let Some(u) = words.next() {
                facts.push("disk", device, &format!("SMART/{title}_unit"), u);
            }
        }
        return String::new();
    }
    let value = parts.map(str::trim).collect::<Vec<_>>().join(" ");
    let value = value.trim().to_string();
    facts.push("disk", device, &format!("SMART/{title}"), value.as_str());
    value
}

/// `smartctl -a /dev/NAME`: ATA attributes, or SCSI data, or a retry with `-d ata`.
pub fn read(root: &Root, name: &str, facts: &mut Facts) {
    read_with(root, name, &[], facts);
}

fn read_with(root: &Root, name: &str, flag: &[&str], facts: &mut Facts) {
    let device = format!("/dev/{name}");
    if !root.path(&device).exists() {
        return;
    }
    for line in smartctl(root, &device, flag) {
        if line.starts_with("Device does not support SMART")
            || line.contains("Unavailable - device lacks SMART capability")
            || line.starts_with("Device supports SMART and is Enabled")
        {
            scsi(root, name, flag, facts);
            return;
        }
        if line.starts_with("ID#") {
            ata(root, name, flag, facts);
            return;
        }
    }
    if flag.is_empty() {
        read_with(root, name, &["-d", "ata"], facts);
    }
}

/// The fact item: the disk, or `sda{megaraid,3}` for a disk behind a RAID controller.
fn item_name(name: &str, flag: &[&str], behind_raid: bool) -> String {
    match (behind_raid, flag.get(1)) {
        (true, Some(dev)) => format!("{name}{{{dev}}}"),
        _ => name.to_string(),
    }
}

fn scsi(root: &Root, name: &str, flag: &[&str], facts: &mut Facts) {
    scsi_lines(
        root,
        name,
        flag,
        false,
        &smartctl(root, &format!("/dev/{name}"), flag),
        facts,
    );
}

/// Parses a SCSI `smartctl -a` report (`lines`); recurses into the disks behind a DELL PERC
/// or HP logical volume.
pub fn scsi_lines(
    root: &Root,
    name: &str,
    flag: &[&str],
    behind_raid: bool,
    lines: &[String],
    facts: &mut Facts,
) {
    let device = item_name(name, flag, behind_raid);
    let mut vendor = String::new();
    let mut product = String::new();
    for line in lines {
        if line.contains("INQUIRY failed") {
            return;
        }
        if line.starts_with("ID#") {
            ata(root, name, flag, facts);
            return;
        }
        let v = field(facts, line, &device, "Vendor:", "vendor");
        if !v.is_empty() {
            vendor = v;
            continue;
        }
        let p = field(facts, line, &device, "Product:", "product");
        if !p.is_empty() {
            product = p;
            continue;
        }
        if line.starts_with("Device does not support SMART")
            || line.contains("Unavailable - device lacks SMART capability.")
        {
            if flag.is_empty() {
                let kind = if vendor == "DELL" && product.contains("PERC") {
                    Some("megaraid")
                } else if vendor == "HP" && product.contains("LOGICAL VOLUME") {
                    Some("cciss")
                } else {
                    None
                };
                if let Some(kind) = kind {
                    for n in 0..24 {
                        let dev = format!("{kind},{n}");
                        let flag = ["-d", dev.as_str()];
                        let out = smartctl(root, &format!("/dev/{name}"), &flag);
                        scsi_lines(root, name, &flag, true, &out, facts);
                    }
                }
            }
            return;
        }
        for (label, title) in SMART_FIELDS {
            field(facts, line, &device, label, title);
        }
        for log in ["read", "write", "verify"] {
            if line.starts_with(&format!("{log}:")) {
                error_log(facts, line, &device, log);
            }
        }
    }
}

fn error_log(facts: &mut Facts, line: &str, device: &str, log: &str) {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() > 7 {
        facts.push(
            "disk",
            device,
            &format!("SMART/{log}_total_corrected_errors"),
            w[4],
        );
        facts.push(
            "disk",
            device,
            &format!("SMART/{log}_gigabytes_processed"),
            w[6],
        );
        facts.push(
            "disk",
            device,
            &format!("SMART/{log}_total_uncorrected_errors"),
            w[7],
        );
    }
}

fn ata(root: &Root, name: &str, flag: &[&str], facts: &mut Facts) {
    let lines = smartctl(root, &format!("/dev/{name}"), flag);
    ata_lines(&item_name(name, flag, false), &lines, facts);
}

/// Parses an ATA `smartctl -a` report: identity fields, then one fact per attribute column.
pub fn ata_lines(device: &str, lines: &[String], facts: &mut Facts) {
    let mut in_table = false;
    for line in lines {
        let identity = [
            ("Device Model:", "device_model"),
            ("Serial Number:", "serial_number"),
            ("Firmware Version:", "firmware_version"),
            ("Rotation Rate:", "rotation_rate"),
        ];
        if identity
            .iter()
            .any(|(label, title)| !field(facts, line, device, label, title).is_empty())
        {
            continue;
        }
        if line.starts_with("ID#") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if line.is_empty() {
            break;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let when_failed = if f[8] == "-" { "NEVER" } else { f[8] };
        let raw = format!(" {}", f[9..].join(" "));
        for (title, value) in [
            ("value", f[3]),
            ("worst", f[4]),
            ("thresh", f[5]),
            ("when_failed", when_failed),
            ("raw", raw.as_str()),
        ] {
            facts.push(
                "disk",
                device,
                &format!("SMART/{}({})/{title}", f[1], f[0]),
                value,
            );
        }
    }
}

/// `smartctl -d nvme,0xffffffff -a /dev/NAME`.
pub fn read_nvme(root: &Root, name: &str, facts: &mut Facts) {
    let device = format!("/dev/{name}");
    if !root.path(&device).exists() {
        return;
    }
    let out = tools::run(
        root,
        "smartctl",
        &["-d", "nvme,0xffffffff", "-a", &device],
        TOOL_TIMEOUT,
    )
    .map(|o| o.stdout)
    .unwrap_or_default();
    nvme_lines(name, out.lines(), facts);
}

/// Parses an NVMe `smartctl -a` report.
pub fn nvme_lines<'a>(name: &str, lines: impl Iterator<Item = &'a str>, facts: &mut Facts) {
    for line in lines {
        let line = line.trim();
        for (label, title) in NVME_INFOS {
            field(facts, line, name, label, title);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(|l| l.trim().to_string()).collect()
    }

    #[test]
    fn ata_report() {
        let report = "Device Model:     ST2000NM0055-1V4104\nSerial Number:    ZC20ABCD\n\
            Rotation Rate:    7200 rpm\n\
            ID# ATTRIBUTE_NAME          FLAG     VALUE WORST THRESH TYPE      UPDATED  WHEN_FAILED RAW_VALUE\n\
              5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       0\n\
            194 Temperature_Celsius     0x0022   032   045   000    Old_age   Always       -       32 (0 18 0 0 0)\n\n";
        let mut facts = Facts::default();
        ata_lines("sda", &lines(report), &mut facts);
        let t = |k: &str| facts.get_text("disk", "sda", k);
        assert_eq!(
            t("SMART/device_model").as_deref(),
            Some("ST2000NM0055-1V4104")
        );
        assert_eq!(t("SMART/serial_number").as_deref(), Some("ZC20ABCD"));
        assert_eq!(t("SMART/rotation_rate").as_deref(), Some("7200 rpm"));
        assert_eq!(
            t("SMART/Reallocated_Sector_Ct(5)/when_failed").as_deref(),
            Some("NEVER")
        );
        assert_eq!(
            t("SMART/Temperature_Celsius(194)/raw").as_deref(),
            Some(" 32 (0 18 0 0 0)")
        );
        assert_eq!(
            t("SMART/Temperature_Celsius(194)/worst").as_deref(),
            Some("045")
        );
    }

    #[test]
    fn scsi_report() {
        let report = "Vendor:               SEAGATE\nProduct:              ST600MM0006\n\
            Serial number:        S0M1ABCD\nSMART Health Status: OK\n\
            Current Drive Temperature:     31 C\n\
            read:   1411765        0         0   1411765          0      23417.421           0\n";
        let mut facts = Facts::default();
        scsi_lines(
            &Root::at("/nonexistent"),
            "sdb",
            &[],
            false,
            &lines(report),
            &mut facts,
        );
        let t = |k: &str| facts.get_text("disk", "sdb", k);
        assert_eq!(t("SMART/vendor").as_deref(), Some("SEAGATE"));
        assert_eq!(t("SMART/product").as_deref(), Some("ST600MM0006"));
        assert_eq!(t("SMART/serial_number").as_deref(), Some("S0M1ABCD"));
        assert_eq!(t("SMART/health").as_deref(), Some("OK"));
        assert_eq!(t("SMART/current_drive_temperature").as_deref(), Some("31"));
        assert_eq!(
            t("SMART/current_drive_temperature_unit").as_deref(),
            Some("C")
        );
        assert_eq!(
            t("SMART/read_total_corrected_errors").as_deref(),
            Some("1411765")
        );
        assert_eq!(
            t("SMART/read_gigabytes_processed").as_deref(),
            Some("23417.421")
        );
    }

    #[test]
    fn nvme_report() {
        let report = "Model Number:                       Samsung SSD 970\nTemperature:                        38 Celsius\nPower On Hours:                     1,234\n";
        let mut facts = Facts::default();
        nvme_lines("nvme0n1", report.lines(), &mut facts);
        let t = |k: &str| facts.get_text("disk", "nvme0n1", k);
        assert_eq!(t("SMART/model_number").as_deref(), Some("Samsung SSD 970"));
        assert_eq!(t("SMART/temperature").as_deref(), Some("38"));
        assert_eq!(t("SMART/temperature_unit").as_deref(), Some("Celsius"));
        assert_eq!(t("SMART/power_on_hours").as_deref(), Some("1,234"));
    }
}
