//! URL templates: the subset of Python's `str.format` fields IPA offers in a content URL
//! (`{node[uuid]}`, `{ports[0][address]}`, `{{`/`}}`).

use serde_json::Value;

use super::error::InjectError;

/// Formats `template` as Python's `str.format(node=node, ports=ports)` would for the fields a
/// URL can use: `{node[key]...}`, `{ports[N][key]...}`, `{{`/`}}`; plus the bare `{node}`
/// (node UUID) and `{ports}` (comma-separated port UUIDs). Only `http`/`https` results pass.
pub(super) fn format_url(
    template: &str,
    node: &Value,
    ports: &Value,
) -> Result<String, InjectError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if tail.starts_with('}') {
            return Err(InjectError::Template(
                "single `}` (write `}}` for a literal brace)".into(),
            ));
        } else {
            let end = tail.find('}').ok_or_else(|| {
                InjectError::Template("unmatched `{` (write `{{` for a literal brace)".into())
            })?;
            out.push_str(&render_field(&tail[1..end], node, ports)?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    let url = reqwest::Url::parse(&out)
        .map_err(|e| InjectError::Template(format!("`{out}` is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InjectError::Template(format!(
            "only http:// and https:// URLs are supported, got `{}`",
            url.scheme()
        )));
    }
    Ok(out)
}

pub(super) fn render_field(
    field: &str,
    node: &Value,
    ports: &Value,
) -> Result<String, InjectError> {
    let end = field.find(['[', '.', '!', ':']).unwrap_or(field.len());
    let (name, mut rest) = field.split_at(end);
    let mut value = match name {
        "node" => node,
        "ports" => ports,
        "" => {
            return Err(InjectError::Template(format!(
                "`{{{field}}}`: positional fields are not supported; use {{node[...]}} or {{ports[...]}}"
            )));
        }
        other => {
            return Err(InjectError::Template(format!(
                "`{{{field}}}`: unknown name `{other}` (only node and ports are available)"
            )));
        }
    };
    if rest.is_empty() {
        return match name {
            "node" => node
                .get("uuid")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| InjectError::Template("`{node}`: the node has no UUID".into())),
            _ => Ok(ports
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.get("uuid").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()),
        };
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| InjectError::Template(format!("`{{{field}}}`: missing `]`")))?;
            let key = &r[..close];
            value = match value {
                Value::Object(m) => m.get(key).ok_or_else(|| {
                    InjectError::Template(format!("`{{{field}}}`: no key `{key}`"))
                })?,
                Value::Array(a) => key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .ok_or_else(|| {
                        InjectError::Template(format!(
                            "`{{{field}}}`: no item `{key}` in a list of {}",
                            a.len()
                        ))
                    })?,
                other => {
                    return Err(InjectError::Template(format!(
                        "`{{{field}}}`: cannot look up `{key}` in a {}",
                        json_type(other)
                    )));
                }
            };
            rest = &r[close + 1..];
        } else if rest.starts_with('.') {
            return Err(InjectError::Template(format!(
                "`{{{field}}}`: attribute access is not supported; use [key]"
            )));
        } else {
            return Err(InjectError::Template(format!(
                "`{{{field}}}`: conversions and format specifications are not supported"
            )));
        }
    }
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(true) => Ok("True".into()),
        Value::Bool(false) => Ok("False".into()),
        Value::Null => Ok("None".into()),
        other => Err(InjectError::Template(format!(
            "`{{{field}}}` is a {}, not a single value",
            json_type(other)
        ))),
    }
}

/// The JSON type of `v` as messages name it.
pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}
