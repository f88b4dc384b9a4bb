//! Kernel command-line parsing (`/proc/cmdline`), as IPA reads it.

use std::collections::BTreeMap;

/// Parsed `key=value` kernel parameters. Tokens without `=` are ignored; a later duplicate wins.
/// `Debug` shows the values of secret parameters (see [`is_secret`]) as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KernelParams {
    params: BTreeMap<String, String>,
}

/// Whether the value of parameter `key` is a secret that must never be printed or logged:
/// `ipa-agent-token`, and anything named like a token, password or secret.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "password", "passwd", "secret"]
        .iter()
        .any(|s| k.contains(s))
}

impl std::fmt::Debug for KernelParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.params {
            if is_secret(k) {
                map.entry(k, &"***");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

impl KernelParams {
    /// Parses a kernel command line. Double-quoted values (`k="a b"`) are kept whole.
    pub fn parse(cmdline: &str) -> Self {
        let mut params = BTreeMap::new();
        for token in split_respecting_quotes(cmdline) {
            if let Some((key, value)) = token.split_once('=') {
                if key.is_empty() {
                    continue;
                }
                params.insert(key.to_string(), value.trim_matches('"').to_string());
            }
        }
        KernelParams { params }
    }

    /// Parses IPA's `parameters.txt` of the virtual-media floppy (`_read_params_from_file`):
    /// whitespace-separated `key=value` tokens, no quoting; a later duplicate wins.
    pub fn parse_params_file(text: &str) -> Self {
        let params = text
            .split_whitespace()
            .filter_map(|t| t.split_once('='))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KernelParams { params }
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn set(&mut self, key: &str, value: &str) {
        self.params.insert(key.to_string(), value.to_string());
    }

    /// Every parameter of `other` over these (`other` wins), as IPA merges `parameters.txt`
    /// over the kernel command line.
    pub fn merge(&mut self, other: &KernelParams) {
        for (k, v) in other.iter() {
            self.set(k, v);
        }
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// `key` as a boolean, with oslo's spellings (`1`, `true`, `yes`, `on`, `t`, `y`).
    /// Unrecognised spellings are `false`, as `strutils.bool_from_string` does.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(parse_bool)
    }

    /// Every parameter, secrets included (see [`is_secret`] before printing any).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// oslo `strutils.bool_from_string` (non-strict).
pub fn parse_bool(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

fn split_respecting_quotes(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                cur.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipa_params() {
        let p = KernelParams::parse(
            "BOOT_IMAGE=/vmlinuz ro quiet ipa-api-url=http://10.0.0.1:6385,http://10.0.0.2:6385 \
             ipa-debug=1 BOOTIF=01-52-54-00-12-34-56 ipa-insecure=no nomodeset x=\"a b\"\n",
        );
        assert_eq!(
            p.get("ipa-api-url"),
            Some("http://10.0.0.1:6385,http://10.0.0.2:6385")
        );
        assert_eq!(p.get("BOOTIF"), Some("01-52-54-00-12-34-56"));
        assert_eq!(p.get_bool("ipa-debug"), Some(true));
        assert_eq!(p.get_bool("ipa-insecure"), Some(false));
        assert_eq!(p.get("quiet"), None);
        assert_eq!(p.get("x"), Some("a b"));
    }

    #[test]
    fn debug_hides_secrets() {
        let p = KernelParams::parse(
            "ipa-agent-token=tok-0123456789abcdef0123456789abcdef ipa-debug=1 \
             ipmi_password=pw IPA-Agent-Token=upper",
        );
        let shown = format!("{p:?}");
        assert!(!shown.contains("tok-0123") && !shown.contains("pw\"") && !shown.contains("upper"));
        assert!(shown.contains(r#""ipa-agent-token": "***""#), "{shown}");
        assert!(shown.contains(r#""ipa-debug": "1""#), "{shown}");
        assert_eq!(
            p.get("ipa-agent-token"),
            Some("tok-0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn parameters_txt_is_split_on_whitespace_and_merged_over() {
        let file = KernelParams::parse_params_file(
            "ipa-api-url=http://10.0.0.1:6385\nboot_method=vmedia \t ipa-debug=1\n\
             noequals =x x==y ipa-debug=0 q=\"a\n",
        );
        assert_eq!(file.get("ipa-api-url"), Some("http://10.0.0.1:6385"));
        assert_eq!(file.get("ipa-debug"), Some("0"), "a later duplicate wins");
        assert_eq!(file.get("x"), Some("=y"));
        assert_eq!(file.get("q"), Some("\"a"), "no quote handling, as IPA");
        assert_eq!(file.get("noequals"), None);
        assert_eq!(file.get(""), None);
        let mut k = KernelParams::parse("ipa-api-url=http://k:1 BOOTIF=01-aa");
        k.merge(&file);
        assert_eq!(k.get("ipa-api-url"), Some("http://10.0.0.1:6385"));
        assert_eq!(k.get("BOOTIF"), Some("01-aa"));
        assert_eq!(k.len(), 6);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "=",
            "==x",
            "\"",
            "a=\"unterminated",
            "\u{0}=\u{1}",
            "k=",
        ] {
            let _ = KernelParams::parse(s);
        }
        assert_eq!(KernelParams::parse("k=").get("k"), Some(""));
        assert_eq!(KernelParams::parse("=v").get(""), None);
    }
}
