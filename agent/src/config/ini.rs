//! oslo.config's INI dialect (`oslo_config/iniparser.py`): `[section]` headers, `key = value`
//! or `key: value` (whichever separator comes first), values stripped and unquoted when wrapped
//! in matching quotes, indented lines continuing the previous value (joined with `\n`), a blank
//! line ending it, `#` and `;` comments in the first column. Never panics.

use std::fmt;
use std::path::{Path, PathBuf};

/// One assignment: its key, value and the line it started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key (stripped).
    pub key: String,
    /// The value; continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A parsed file: its sections in order of first appearance, each with its assignments in
/// file order (a repeated key appears twice: the last one wins for a single-valued option).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IniFile {
    /// `(section name, entries)`; a section opened twice is merged into its first entry.
    pub sections: Vec<(String, Vec<Entry>)>,
}

impl IniFile {
    /// The entries of `section` (exact name, as oslo matches `DEFAULT`).
    pub fn section(&self, name: &str) -> &[Entry] {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_slice())
            .unwrap_or(&[])
    }

    /// The last value of `key` in `section`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }
}

/// A syntax error, shown as `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IniError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Parses `text` (the contents of `file`, named in errors).
pub fn parse(file: &Path, text: &str) -> Result<IniFile, IniError> {
    let err = |line: usize, message: String| IniError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut out = IniFile::default();
    let mut section: Option<usize> = None;
    // The assignment being read: (key, value lines, line number).
    let mut pending: Option<(String, Vec<String>, usize)> = None;

    let flush = |out: &mut IniFile,
                 section: Option<usize>,
                 pending: &mut Option<(String, Vec<String>, usize)>|
     -> Result<(), IniError> {
        let Some((key, value, line)) = pending.take() else {
            return Ok(());
        };
        let Some(s) = section.and_then(|i| out.sections.get_mut(i)) else {
            return Err(err(
                line,
                "section must be started before assignment".into(),
            ));
        };
        s.1.push(Entry {
            key,
            value: value.join("\n"),
            line,
        });
        Ok(())
    };

    for (n, raw) in text.split('\n').enumerate() {
        let lineno = n + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            flush(&mut out, section, &mut pending)?;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some((_, value, _)) => value.push(line.trim_start().to_string()),
                None => {
                    return Err(err(
                        lineno,
                        format!("unexpected continuation line: {line:?}"),
                    ));
                }
            }
            continue;
        }
        flush(&mut out, section, &mut pending)?;
        if line.starts_with('[') {
            if !line.ends_with(']') {
                return Err(err(
                    lineno,
                    format!("invalid section (must end with ]): {line:?}"),
                ));
            }
            if line.len() <= 2 {
                return Err(err(lineno, format!("empty section name: {line:?}")));
            }
            let name = &line[1..line.len() - 1];
            section = Some(match out.sections.iter().position(|(s, _)| s == name) {
                Some(i) => i,
                None => {
                    out.sections.push((name.to_string(), Vec::new()));
                    out.sections.len() - 1
                }
            });
        } else if line.starts_with(['#', ';']) {
            // A comment.
        } else {
            let (key, value) = split_key_value(line).ok_or_else(|| {
                err(
                    lineno,
                    format!("no ':' or '=' found in assignment: {line:?}"),
                )
            })?;
            if key.is_empty() {
                return Err(err(lineno, format!("key cannot be empty: {line:?}")));
            }
            pending = Some((key.to_string(), vec![value], lineno));
        }
    }
    flush(&mut out, section, &mut pending)?;
    Ok(out)
}

/// `key = value` or `key: value`, split at whichever comes first; the value stripped and
/// unquoted when it starts and ends with the same quote.
fn split_key_value(line: &str) -> Option<(&str, String)> {
    let at = match (line.find('='), line.find(':')) {
        (Some(e), Some(c)) => e.min(c),
        (Some(i), None) | (None, Some(i)) => i,
        (None, None) => return None,
    };
    let key = line[..at].trim();
    let mut value = line[at + 1..].trim();
    for q in ['"', '\''] {
        if value.starts_with(q) && value.ends_with(q) {
            // A lone quote unquotes to the empty string, as in oslo.
            value = value.get(1..value.len() - 1).unwrap_or("");
            break;
        }
    }
    Some((key, value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<IniFile, IniError> {
        parse(Path::new("/etc/x.conf"), text)
    }

    #[test]
    fn oslo_syntax() -> Result<(), IniError> {
        let f = p("# leading comment\n\
             ; another\n\
             [DEFAULT]\n\
             api_url = http://a:6385\n\
             cafile: /etc/ironic-python-agent/ironic.crt\n\
             url2 = http://x:1/a=b:c\n\
             quoted = \"  spaced  \"\n\
             single = 'q'\n\
             lone = \"\n\
             empty =\n\
             multi = first\n  second\n\tthird\n\
             \n\
             [other]\n\
             k=v\n\
             [DEFAULT]\n\
             debug=true   \r\n")?;
        let d = |k| f.get("DEFAULT", k);
        assert_eq!(d("api_url"), Some("http://a:6385"));
        assert_eq!(d("cafile"), Some("/etc/ironic-python-agent/ironic.crt"));
        assert_eq!(d("url2"), Some("http://x:1/a=b:c"));
        assert_eq!(d("quoted"), Some("  spaced  "));
        assert_eq!(d("single"), Some("q"));
        assert_eq!(d("lone"), Some(""));
        assert_eq!(d("empty"), Some(""));
        assert_eq!(d("multi"), Some("first\nsecond\nthird"));
        assert_eq!(d("debug"), Some("true"));
        assert_eq!(f.get("other", "k"), Some("v"));
        assert_eq!(f.sections.len(), 2, "[DEFAULT] reopened is one section");
        assert_eq!(f.section("DEFAULT")[0].line, 4);
        // Section names are exact: [default] is not [DEFAULT].
        assert_eq!(p("[default]\na=1\n")?.get("DEFAULT", "a"), None);
        Ok(())
    }

    #[test]
    fn colon_before_equals_splits_at_colon() -> Result<(), IniError> {
        let f = p("[DEFAULT]\na:b=c\nd=e:f\n")?;
        assert_eq!(f.get("DEFAULT", "a"), Some("b=c"));
        assert_eq!(f.get("DEFAULT", "d"), Some("e:f"));
        Ok(())
    }

    #[test]
    fn duplicate_keys_last_wins() -> Result<(), IniError> {
        let f = p("[DEFAULT]\nk = 1\nk = 2\n[DEFAULT]\nk = 3\n")?;
        assert_eq!(f.get("DEFAULT", "k"), Some("3"));
        assert_eq!(f.section("DEFAULT").len(), 3);
        Ok(())
    }

    #[test]
    fn indented_comment_continues_a_value() -> Result<(), IniError> {
        // As in oslo: only column-0 `#`/`;` start a comment.
        let f = p("[DEFAULT]\nk = a\n  # b\n")?;
        assert_eq!(f.get("DEFAULT", "k"), Some("a\n# b"));
        Ok(())
    }

    #[test]
    fn malformed_is_file_line() {
        let cases = [
            ("[DEFAULT]\nnovalue\n", 2, "no ':' or '='"),
            ("[DEFAULT]\n= v\n", 2, "key cannot be empty"),
            ("  indented\n", 1, "unexpected continuation"),
            ("[DEFAULT]\n\n  indented\n", 3, "unexpected continuation"),
            ("[DEFAULT\n", 1, "must end with ]"),
            ("[]\n", 1, "empty section name"),
            ("a = 1\n", 1, "section must be started"),
        ];
        for (text, line, what) in cases {
            let e = p(text).err();
            assert_eq!(e.as_ref().map(|e| e.line), Some(line), "{text:?}");
            let shown = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                shown.starts_with(&format!("/etc/x.conf:{line}: ")) && shown.contains(what),
                "{text:?}: {shown}"
            );
        }
    }

    #[test]
    fn odd_input_never_panics() {
        for t in [
            "",
            "\n",
            "[",
            "]",
            "=",
            ":",
            "[a]\n=",
            "[a]\nk=\"",
            "[a]\nk='\"",
            "[é]\nü=ß",
            "\r\n\r",
        ] {
            let _ = p(t);
        }
    }
}
