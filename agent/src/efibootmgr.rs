//! Reading `efibootmgr -v`: its output decoded (UTF-8, or UTF-16 from older versions) and
//! parsed into boot entries. Used by the `clean_uefi_nvram` step ([`crate::clean::nvram`])
//! and by the bootloader installation ([`crate::bootloader::nvram`]).

/// A boot entry of `efibootmgr -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// The hexadecimal boot number (`0001`).
    pub num: String,
    /// The label.
    pub label: String,
    /// The device path (`HD(1,GPT,…)/File(\EFI\debian\shimx64.efi)`), empty when not shown.
    pub path: String,
}

/// Device path node types a path starts with (where the label/path separator is a single
/// space).
const PATH_STARTS: &[&str] = &[
    "BBS", "HD", "FvFile", "FvVol", "PciRoot", "PcieRoot", "Acpi", "VenMsg", "VenHw", "VenMedia",
    "UsbClass", "MAC", "Uri", "CDROM", "File",
];

/// The text of efibootmgr's output: UTF-16 (older versions) seen through a lossy UTF-8
/// conversion shows NULs between the characters; those and the replaced byte-order mark are
/// dropped (device paths are ASCII).
pub fn decode_output(text: &str) -> String {
    if text.contains('\0') {
        text.chars()
            .filter(|c| !matches!(c, '\0' | '\u{FFFD}' | '\u{FEFF}'))
            .collect()
    } else {
        text.to_string()
    }
}

/// The boot entries of `efibootmgr -v` output: `BootXXXX[*] <label><sep><device path>`, the
/// separator being a tab (efibootmgr ≤ 17), two or more spaces, or a space before a device path
/// node.
pub fn parse_efibootmgr(output: &str) -> Vec<BootEntry> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Boot")?;
            let hex_len = rest.find(|c: char| !c.is_ascii_hexdigit())?;
            if hex_len == 0 {
                return None;
            }
            let (num, rest) = rest.split_at(hex_len);
            let rest = rest.strip_prefix('*').unwrap_or(rest);
            // "BootCurrent:" and the like are not entries.
            if !rest.starts_with(char::is_whitespace) {
                return None;
            }
            let rest = rest.trim_start().trim_end_matches(['\r', '\n']);
            let (label, path) = split_label(rest);
            Some(BootEntry {
                num: num.to_string(),
                label: label.trim().to_string(),
                path: path.trim().to_string(),
            })
        })
        .collect()
}

/// Splits `<label><sep><device path>`.
fn split_label(rest: &str) -> (&str, &str) {
    if let Some((label, path)) = rest.split_once('\t') {
        return (label, path);
    }
    // A space followed by a known device path node.
    let starts_path = |at: usize| {
        let tail = &rest[at..];
        PATH_STARTS
            .iter()
            .any(|p| tail.strip_prefix(p).is_some_and(|t| t.starts_with('(')))
    };
    if let Some(at) = rest
        .char_indices()
        .filter(|&(i, c)| c == ' ' && starts_path(i + 1))
        .map(|(i, _)| i + 1)
        .next()
    {
        return (&rest[..at], &rest[at..]);
    }
    // Else the last run of two or more spaces.
    match rest.rfind("  ") {
        Some(at) => (&rest[..at], rest[at..].trim_start()),
        None => (rest, ""),
    }
}
