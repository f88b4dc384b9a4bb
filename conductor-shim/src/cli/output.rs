//! Human output: aligned tables and key/value views.

/// Formats rows under headers, columns padded to the widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Formats `key: value` lines with aligned values; multi-line values are indented.
pub fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(format!("{label:<width$} {first}").trim_end());
        out.push('\n');
        for rest in lines {
            out.push_str(&" ".repeat(width + 1));
            out.push_str(rest);
            out.push('\n');
        }
    }
    out
}

/// `-` for absent values.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns() {
        let t = table(
            &["UUID", "NAME"],
            &[
                vec!["a".into(), "x".into()],
                vec!["long-uuid".into(), "y".into()],
            ],
        );
        assert_eq!(t, "UUID       NAME\na          x\nlong-uuid  y\n");
        let kv = key_values(&[("a".into(), "1".into()), ("long".into(), "x\ny".into())]);
        assert_eq!(kv, "a:    1\nlong: x\n      y\n");
    }
}
