//! A small SMBIOS structure-table reader (`/sys/firmware/dmi/tables/DMI`): each structure's
//! formatted bytes and its string set, enough for the memory devices (type 17) and arrays
//! (type 16).

/// One SMBIOS structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// Structure type (16 memory array, 17 memory device, ...).
    pub kind: u8,
    /// Handle.
    pub handle: u16,
    /// The formatted area, header included (offsets as in the specification).
    pub data: Vec<u8>,
    /// The strings, numbered from 1.
    pub strings: Vec<String>,
}

impl Structure {
    /// Byte at `offset`, if the structure is that long.
    pub fn byte(&self, offset: usize) -> Option<u8> {
        self.data.get(offset).copied()
    }

    /// Little-endian word at `offset`.
    pub fn word(&self, offset: usize) -> Option<u16> {
        Some(u16::from_le_bytes([
            self.byte(offset)?,
            self.byte(offset + 1)?,
        ]))
    }

    /// Little-endian double word at `offset`.
    pub fn dword(&self, offset: usize) -> Option<u32> {
        let b = self.data.get(offset..offset + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The string the byte at `offset` points to, trimmed; empty when absent.
    pub fn string(&self, offset: usize) -> String {
        match self.byte(offset) {
            Some(n) if n > 0 => self
                .strings
                .get(usize::from(n) - 1)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// Parses the structure table; stops at end-of-table (type 127) or at the first truncated
/// structure.
pub fn parse(table: &[u8]) -> Vec<Structure> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= table.len() {
        let kind = table[pos];
        let len = usize::from(table[pos + 1]);
        if len < 4 || pos + len > table.len() {
            break;
        }
        let handle = u16::from_le_bytes([table[pos + 2], table[pos + 3]]);
        let data = table[pos..pos + len].to_vec();
        // The string set ends with two NULs (a structure without strings has just those).
        let mut end = pos + len;
        let mut strings = Vec::new();
        if table.get(end..end + 2) == Some(&[0, 0][..]) {
            end += 2;
        } else {
            loop {
                let Some(nul) = table
                    .get(end..)
                    .and_then(|t| t.iter().position(|b| *b == 0))
                else {
                    return out;
                };
                strings.push(String::from_utf8_lossy(&table[end..end + nul]).into_owned());
                end += nul + 1;
                match table.get(end) {
                    Some(0) => {
                        end += 1;
                        break;
                    }
                    Some(_) => {}
                    None => return out,
                }
            }
        }
        out.push(Structure {
            kind,
            handle,
            data,
            strings,
        });
        if kind == 127 {
            break;
        }
        pos = end;
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes one structure: header, `body` (after the 4-byte header) and strings.
    pub(crate) fn structure(kind: u8, handle: u16, body: &[u8], strings: &[&str]) -> Vec<u8> {
        let mut v = vec![kind, (4 + body.len()) as u8];
        v.extend_from_slice(&handle.to_le_bytes());
        v.extend_from_slice(body);
        for s in strings {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        }
        if strings.is_empty() {
            v.push(0);
        }
        v.push(0);
        v
    }

    #[test]
    fn walks_structures_and_strings() {
        let mut t = structure(
            0,
            0,
            &[1, 2, 0, 0xf0, 3],
            &["Vendor", "1.2.3", "01/02/2020"],
        );
        t.extend(structure(16, 0x1000, &[3, 3, 6, 0, 0, 0, 0x80], &[]));
        t.extend(structure(127, 0xfeff, &[], &[]));
        let s = parse(&t);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].strings, ["Vendor", "1.2.3", "01/02/2020"]);
        assert_eq!(s[0].string(4), "Vendor");
        assert_eq!(s[0].string(5), "1.2.3");
        assert_eq!(s[1].kind, 16);
        assert_eq!(s[1].handle, 0x1000);
        assert!(s[1].strings.is_empty());
        assert_eq!(s[1].dword(7), Some(0x8000_0000));
        assert_eq!(s[2].kind, 127);
        assert!(parse(&t[..10]).is_empty());
    }
}
