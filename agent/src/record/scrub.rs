//! What the command history may keep of a result or an error.
//!
//! Results echo what the conductor sent (a step comes back with its `args`, `get_node_info`
//! returns the node with its `instance_info`), and error details can name a signed image URL.
//! The wire keeps all of that, as IPA does; the history (the bundle's `commands.json`) keeps
//! none of it:
//!
//! * the value of every [sensitive key](is_sensitive_key) (step `args`, image and node
//!   information, config drives, injected files, passwords, tokens) becomes `"***"`;
//! * every URL loses its user information, path and query (`https://host:port/***`);
//! * every secret string of the command's parameters (step arguments, file contents, config
//!   drives, credentials; of node and image information only the credentials) becomes `***`
//!   wherever it appears in a recorded string (an error detail quoting the step, for instance).

use serde_json::{Map, Value};

/// What replaces a value that is not recorded.
pub const REDACTED: &str = "***";

/// Strings shorter than this are not looked for in recorded text (they would garble it and
/// carry little).
const MIN_SECRET_LEN: usize = 6;

/// Keys whose values are never recorded, at any depth.
const SENSITIVE_KEYS: &[&str] = &[
    "args",
    "image_info",
    "instance_info",
    "driver_info",
    "driver_internal_info",
    "configdrive",
    "files",
    "content",
    "contents",
    "image_source",
    "image_url",
    "urls",
    "url",
];

/// Keys whose string values are all secret (taken out of recorded text wherever they appear):
/// step arguments, file contents, config drives.
const SECRET_CONTENT_KEYS: &[&str] = &["args", "files", "content", "contents", "configdrive"];

/// Keys holding node or image information: of their values only credentials are taken out of
/// recorded text (an image id or `qcow2` must stay readable in an error; URLs are shortened
/// anyway).
const INFO_KEYS: &[&str] = &[
    "image_info",
    "instance_info",
    "driver_info",
    "driver_internal_info",
];

/// Parts of key names that mark a credential (`rescue_password`, `agent_secret_token`, ...).
const SENSITIVE_PARTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "credential",
    "passphrase",
    "authorization",
];

fn is_credential_key(key: &str) -> bool {
    SENSITIVE_PARTS.iter().any(|p| key.contains(p))
}

/// Whether the value under `key` is never recorded.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SENSITIVE_KEYS.contains(&key.as_str()) || is_credential_key(&key)
}

/// Which strings of a parameter subtree are secret.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Harvest {
    /// None (unless a key below says otherwise).
    Nothing,
    /// Only those under credential keys.
    Credentials,
    /// All of them.
    All,
}

impl Harvest {
    fn below(self, key: &str) -> Harvest {
        let key = key.to_ascii_lowercase();
        if is_credential_key(&key) {
            Harvest::All
        } else if INFO_KEYS.contains(&key.as_str()) {
            Harvest::Credentials
        } else if SECRET_CONTENT_KEYS.contains(&key.as_str()) && self != Harvest::Credentials {
            Harvest::All
        } else {
            self
        }
    }
}

/// The secret string values of `params` (see [`Harvest`]), as given and as JSON would quote
/// them, longest first, to be taken out of recorded text.
pub fn param_secrets(params: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in params {
        collect(v, Harvest::Nothing.below(k), &mut out);
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn collect(v: &Value, mode: Harvest, out: &mut Vec<String>) {
    match v {
        Value::String(s) if mode == Harvest::All && s.len() >= MIN_SECRET_LEN => {
            out.push(s.clone());
            let quoted = Value::String(s.clone()).to_string();
            let inner = &quoted[1..quoted.len() - 1];
            if inner != s {
                out.push(inner.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, mode, out)),
        Value::Object(m) => {
            for (k, i) in m {
                collect(i, mode.below(k), out);
            }
        }
        _ => {}
    }
}

/// `v` as the history keeps it.
pub fn value(v: &Value, secrets: &[String]) -> Value {
    match v {
        Value::String(s) => Value::String(text(s, secrets)),
        Value::Array(items) => Value::Array(items.iter().map(|i| value(i, secrets)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, i)| {
                    let kept = if is_sensitive_key(k) && !i.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        value(i, secrets)
                    };
                    (k.clone(), kept)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `s` as the history keeps it: `secrets` replaced, URLs shortened to scheme and host.
pub fn text(s: &str, secrets: &[String]) -> String {
    let mut out = s.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    urls(&out)
}

/// Length of the URL scheme ending right before `at` (which points at `://`), if any.
fn scheme_len(s: &str, at: usize) -> usize {
    s[..at]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || "+-.".contains(*c))
        .last()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map_or(0, |(i, _)| at - i)
}

fn ends_url(c: char) -> bool {
    c.is_whitespace() || "\"'<>`,;)]}".contains(c)
}

/// Every `scheme://[user@]host[:port]/rest` in `s` becomes `scheme://host[:port]/***` (and
/// `scheme://host?query` becomes `scheme://host/***`).
fn urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("://") {
        let scheme = scheme_len(rest, at);
        if scheme == 0 {
            out.push_str(&rest[..at + 3]);
            rest = &rest[at + 3..];
            continue;
        }
        out.push_str(&rest[..at + 3]);
        let after = &rest[at + 3..];
        let end = after.find(ends_url).unwrap_or(after.len());
        let url = &after[..end];
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let authority = &url[..authority_end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        out.push_str(host);
        if authority_end < url.len() {
            out.push('/');
            out.push_str(REDACTED);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_keep_only_scheme_and_host() {
        assert_eq!(
            urls("get https://u:p@swift.example:8080/v1/a/img?temp_url_sig=x failed"),
            "get https://swift.example:8080/*** failed"
        );
        assert_eq!(urls("at http://10.0.0.1 ok"), "at http://10.0.0.1 ok");
        assert_eq!(urls("'file:///tmp/x', ://odd"), "'file:///***', ://odd");
        assert_eq!(urls("no url"), "no url");
    }

    #[test]
    fn sensitive_values_go_and_the_rest_stays() {
        let params = json!({"step": {"step": "inject_files", "interface": "deploy",
            "args": {"files": [{"path": "/etc/a\"b", "content": "c2VjcmV0"}]}},
            "node": {"uuid": "n", "driver_info": {"ipmi_password": "pw1234"},
                "instance_info": {"image_type": "partition", "deploy_boot_mode": "bios"}},
            "image_info": {"id": "image-uuid", "disk_format": "qcow2",
                "image_server_password": "s3cr3t!"}});
        let secrets = param_secrets(params.as_object().expect("object"));
        assert!(secrets.contains(&"c2VjcmV0".to_string()));
        assert!(secrets.contains(&"/etc/a\\\"b".to_string()));
        assert!(secrets.contains(&"pw1234".to_string()));
        assert!(secrets.contains(&"s3cr3t!".to_string()));
        // Names and node or image facts stay readable in recorded text.
        for kept in ["inject_files", "partition", "image-uuid", "qcow2"] {
            assert!(!secrets.contains(&kept.to_string()), "{kept}");
        }

        let result = json!({"deploy_result": {"written": "/etc/a\"b", "n": 1},
            "deploy_step": params["step"], "rescue_password": null});
        assert_eq!(
            value(&result, &secrets),
            json!({"deploy_result": {"written": "***", "n": 1},
                "deploy_step": {"step": "inject_files", "interface": "deploy", "args": "***"},
                "rescue_password": null})
        );
        assert_eq!(
            text(
                r#"Malformed step {"files":[{"path":"/etc/a\"b","content":"c2VjcmV0"}]}"#,
                &secrets
            ),
            r#"Malformed step {"files":[{"path":"***","content":"***"}]}"#
        );
    }
}
