//! Python's spellings of values and errors, for failure texts that must read as IPA's.

use std::io;
use std::path::Path;

/// Python's `repr()` of a `str`: single quotes unless the text holds a single quote and no
/// double quote; `\\`, `\n`, `\r`, `\t` and the quote escaped, other control characters as
/// `\xNN`.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The C library's message for `err` (`strerror`), without Rust's ` (os error N)`.
pub fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    }
}

/// `str()` of the `OSError` Python raises for `path`: `[Errno 2] No such file or directory:
/// '/x'` (just the message when `err` carries no errno).
pub fn os_error(err: &io::Error, path: &Path) -> String {
    match err.raw_os_error() {
        Some(n) => format!(
            "[Errno {n}] {}: {}",
            strerror(err),
            repr_str(&path.to_string_lossy())
        ),
        None => err.to_string(),
    }
}

/// Whether Python's `str.strip()` removes `c` (`str.isspace()`).
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `int(s)` of a `str`: surrounding whitespace, one sign, decimal digits with single
/// underscores between them. `None` where Python raises `ValueError` (or the value does not
/// fit an `i64`).
pub fn int(s: &str) -> Option<i64> {
    let t = strip(s);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: i64 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = i64::from(c.to_digit(10)?);
        value = value.checked_mul(10)?.checked_add(d)?;
    }
    Some(if neg { -value } else { value })
}

/// Python's `str.splitlines()` (without the line ends).
pub fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '\r' => {
                if let Some(&(_, '\n')) = chars.peek() {
                    chars.next();
                    i + 2
                } else {
                    i + 1
                }
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => i + c.len_utf8(),
            _ => continue,
        };
        lines.push(&s[start..i]);
        start = end;
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_spellings() {
        assert_eq!(repr_str("a\nb"), "'a\\nb'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("\x01"), "'\\x01'");
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(
            os_error(&e, Path::new("/sys/bus/pci/devices")),
            "[Errno 2] No such file or directory: '/sys/bus/pci/devices'"
        );
        assert_eq!(int(" 17 "), Some(17));
        assert_eq!(int("-1"), Some(-1));
        assert_eq!(int("1_0"), Some(10));
        assert_eq!(int("1__0"), None);
        assert_eq!(int(""), None);
        assert_eq!(int("0x10"), None);
        assert_eq!(
            splitlines("a\r\nb\rc\n\nd\x0ce\n"),
            ["a", "b", "c", "", "d", "e"]
        );
        assert_eq!(strip("\t x \x1c"), "x");
    }
}
