//! `ipmi` facts: with a local IPMI device, the first LAN channel (`system/ipmi/channel`) and
//! `ipmitool lan print` as `ipmi/lan/<key>`; and the sensors of `ipmitool -I open sdr`.

use super::tools::{self, TOOL_TIMEOUT};
use super::{Facts, Root};

/// The device nodes of the in-band IPMI driver.
const DEVICES: [&str; 3] = ["/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0"];

/// `key : value` lines of `ipmitool lan print` as `ipmi/lan/<key-in-dashes>` facts.
pub fn parse_lan(facts: &mut Facts, text: &str) {
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim_end();
        let value = value.trim();
        if key.chars().count() < 2 || value.is_empty() {
            continue;
        }
        let key = key
            .split(' ')
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join("-");
        facts.push("ipmi", "lan", &key, value);
    }
}

/// `name | value units | status` lines of `ipmitool sdr` as `ipmi/<name>/{value,unit}`.
pub fn parse_sdr(facts: &mut Facts, text: &str) {
    for line in text.lines() {
        let items: Vec<&str> = line.split('|').collect();
        if items.len() < 3 {
            continue;
        }
        let name = items[0].trim();
        if line.contains("Not Readable") {
            facts.push("ipmi", name, "value", "Not Readable");
            continue;
        }
        let mut words = items[1].split_whitespace();
        let Some(value) = words.next() else {
            continue;
        };
        facts.push("ipmi", name, "value", value);
        let units = words.collect::<Vec<_>>().join(" ");
        if !units.is_empty() {
            facts.push("ipmi", name, "unit", units);
        }
    }
}

/// Adds the channel and LAN facts when a local IPMI device exists.
pub fn detect(root: &Root, facts: &mut Facts) {
    if !DEVICES.iter().any(|d| root.path(d).exists()) {
        return;
    }
    for channel in 0..16 {
        let n = channel.to_string();
        let found = tools::run(root, "ipmitool", &["channel", "info", &n], TOOL_TIMEOUT)
            .is_some_and(|o| o.stdout.contains("Volatile") || o.stderr.contains("Volatile"));
        if found {
            facts.push("system", "ipmi", "channel", n);
            break;
        }
    }
    if let Some(text) = tools::stdout_if_ok(root, "ipmitool", &["lan", "print"]) {
        parse_lan(facts, &text);
    }
}

/// Adds the sensor readings.
pub fn detect_sdr(root: &Root, facts: &mut Facts) {
    let text = tools::lines(root, "ipmitool", &["-I", "open", "sdr"]).join("\n");
    parse_sdr(facts, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_print() {
        let text = "Set in Progress         : Set Complete\nIP Address Source       : Static Address\n\
            IP Address              : 192.0.2.10\nMAC Address             : 00:25:90:aa:bb:cc\n\
            802.1q VLAN ID          : Disabled\nCipher Suite Priv Max   : aaaaXXXXXXXXXXX\n\
            \x20                       :     X=Cipher Suite Unused\n";
        let mut facts = Facts::default();
        parse_lan(&mut facts, text);
        let t = |k: &str| facts.get_text("ipmi", "lan", k);
        assert_eq!(t("ip-address-source").as_deref(), Some("Static Address"));
        assert_eq!(t("ip-address").as_deref(), Some("192.0.2.10"));
        assert_eq!(t("mac-address").as_deref(), Some("00:25:90:aa:bb:cc"));
        assert_eq!(t("802.1q-vlan-id").as_deref(), Some("Disabled"));
        assert_eq!(facts.0.len(), 6);
    }

    #[test]
    fn sdr() {
        let text = "CPU Temp         | 45 degrees C      | ok\nFAN1             | 3400 RPM          | ok\n\
            PS1 Status       | 0x01              | ok\nVcore            | Not Readable      | ns\n";
        let mut facts = Facts::default();
        parse_sdr(&mut facts, text);
        assert_eq!(
            facts.get_text("ipmi", "CPU Temp", "value").as_deref(),
            Some("45")
        );
        assert_eq!(
            facts.get_text("ipmi", "CPU Temp", "unit").as_deref(),
            Some("degrees C")
        );
        assert_eq!(facts.get_text("ipmi", "PS1 Status", "unit"), None);
        assert_eq!(
            facts.get_text("ipmi", "Vcore", "value").as_deref(),
            Some("Not Readable")
        );
    }
}
