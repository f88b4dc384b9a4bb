//! JSON text formatted like Python's `json.dumps` defaults (`", "` and `": "` separators,
//! non-ASCII escaped), so error bodies look byte-for-byte like Ironic's.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// A `serde_json` formatter with Python's default separators and `ensure_ascii`.
#[derive(Debug, Default, Clone, Copy)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for ch in fragment.chars() {
            if ch.is_ascii() {
                let mut buf = [0u8; 1];
                writer.write_all(ch.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Serialises `value` the way Python's `json.dumps(value)` would.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    // The formatter only ever writes ASCII.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample<'a> {
        faultcode: &'a str,
        faultstring: &'a str,
        debuginfo: Option<()>,
        l: [u8; 2],
    }

    #[test]
    fn matches_python_dumps() {
        let v = Sample {
            faultcode: "Client",
            faultstring: "h\u{e9}\"llo\n",
            debuginfo: None,
            l: [1, 2],
        };
        assert_eq!(
            to_string(&v).unwrap(),
            r#"{"faultcode": "Client", "faultstring": "h\u00e9\"llo\n", "debuginfo": null, "l": [1, 2]}"#
        );
        assert_eq!(to_string("\u{1F600}").unwrap(), r#""\ud83d\ude00""#);
    }
}
