//! MAC address validation and normalisation (lower case, colon separated).

/// Normalises a 6-octet MAC written with `:` or `-` separators to lower-case colon form.
/// Returns `None` for anything else (Ironic ignores invalid addresses in lookups).
pub fn normalize(mac: &str) -> Option<String> {
    let mac = mac.trim();
    let sep = if mac.contains('-') { '-' } else { ':' };
    let octets: Vec<&str> = mac.split(sep).collect();
    if octets.len() != 6 {
        return None;
    }
    let mut out = String::with_capacity(17);
    for (i, octet) in octets.iter().enumerate() {
        if octet.len() != 2 || !octet.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if i > 0 {
            out.push(':');
        }
        out.push_str(&octet.to_ascii_lowercase());
    }
    Some(out)
}

/// Splits a comma-separated list and keeps the valid, normalised, de-duplicated addresses.
pub fn parse_list(csv: &str) -> Vec<String> {
    let mut macs: Vec<String> = Vec::new();
    for mac in csv.split(',').filter_map(normalize) {
        if !macs.contains(&mac) {
            macs.push(mac);
        }
    }
    macs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            normalize("02:FC:00:00:00:01").as_deref(),
            Some("02:fc:00:00:00:01")
        );
        assert_eq!(
            normalize("02-fc-00-00-00-0a").as_deref(),
            Some("02:fc:00:00:00:0a")
        );
        assert_eq!(normalize("02:fc:00:00:00"), None);
        assert_eq!(normalize("02:fc:00:00:00:0g"), None);
        assert_eq!(normalize("02:fc:00:00:00:001"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_list("bad,02:fc:00:00:00:01,,02:FC:00:00:00:01,aa:bb:cc:dd:ee:ff"),
            vec!["02:fc:00:00:00:01", "aa:bb:cc:dd:ee:ff"]
        );
        assert!(parse_list("").is_empty());
    }
}
