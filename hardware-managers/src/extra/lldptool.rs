//! `lldp` facts: the neighbour TLVs that `lldptool -t -n -i IFACE` prints (when the ramdisk
//! runs lldpad), keyed as `hardware-detect` keys them (`Chassis ID/MAC`, `Port ID/Ifname`,
//! `System Name`, ...; `/` in names and values becomes `_`).

use super::Facts;

fn clean(s: &str) -> String {
    s.trim().trim_matches('\t').replace('/', "_")
}

/// Parses `lldptool -t -n` output for `ifname`.
pub fn parse(facts: &mut Facts, ifname: &str, text: &str) {
    let mut header = String::new();
    let mut sub_header = String::new();
    for line in text.lines() {
        let mut content;
        if line.starts_with('\t') {
            content = clean(line);
        } else {
            header = clean(line).replace(" TLV", "");
            content = String::new();
            sub_header.clear();
        }
        if header.is_empty() || content.is_empty() {
            continue;
        }
        if content.contains(':') {
            let parts: Vec<&str> = content.split(':').collect();
            if parts.len() == 2 && parts[1].is_empty() {
                sub_header = parts[0].trim().trim_matches('\t').replace('/', "_");
                sub_header = sub_header.replace(" TLV:", "");
                header = format!("{header}/{sub_header}");
                continue;
            }
            let left = parts[0].trim().trim_matches('\t').replace('/', "_");
            let right = content.replace(&format!("{left}:"), "");
            let right = right.trim().trim_matches('\t').replace('/', "_");
            if left != sub_header {
                sub_header = left;
                header = format!("{header}/{sub_header}");
            }
            content = right;
        }
        facts.push("lldp", ifname, &header, content);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour() {
        let text = "Chassis ID TLV\n\tMAC: 00:01:30:f9:ad:a0\nPort ID TLV\n\tIfname: 1/1\n\
            Time to Live TLV\n\t120\nSystem Name TLV\n\tsw1\n";
        let mut facts = Facts::default();
        parse(&mut facts, "eth0", text);
        let got = facts.key_texts();
        let want = [
            ("Chassis ID/MAC", "00:01:30:f9:ad:a0"),
            ("Port ID/Ifname", "1_1"),
            ("Time to Live", "120"),
            ("System Name", "sw1"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }
}
