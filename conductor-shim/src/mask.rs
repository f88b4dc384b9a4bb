//! Masking of secrets in node dictionaries, in the spirit of `oslo_utils.strutils.mask_dict_password`.

use serde_json::{Map, Value};

use crate::token::MASKED;

/// Key fragments (compared case-insensitively) whose values are secrets.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pswd",
    "secret",
    "token",
    "configdrive",
    "private_key",
    "encrypted_key",
    "passphrase",
    "fernetkey",
    "sslkey",
    "credential",
];

/// Whether a key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// Returns a copy of `map` with every secret value (at any depth) replaced by `******`.
/// Nested objects are walked; a `null` secret stays `null`.
pub fn mask_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(key, value)| {
            let masked = match value {
                Value::Object(inner) => Value::Object(mask_map(inner)),
                Value::Null => Value::Null,
                _ if is_secret_key(key) => Value::String(MASKED.to_string()),
                other => other.clone(),
            };
            (key.clone(), masked)
        })
        .collect()
}

/// Masks secrets and additionally the given keys (e.g. `image_url` in lookup responses).
pub fn mask_map_with(map: &Map<String, Value>, extra_keys: &[&str]) -> Map<String, Value> {
    let mut out = mask_map(map);
    for key in extra_keys {
        if let Some(value) = out.get_mut(*key)
            && !value.is_null()
        {
            *value = Value::String(MASKED.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_secrets_at_any_depth() {
        let input = json!({
            "ipmi_password": "x", "user": "admin", "nested": {"agent_secret_token": "t", "n": 1},
            "configdrive": "big", "image_url": "http://x", "empty_password": null
        });
        let out = mask_map_with(input.as_object().unwrap(), &["image_url"]);
        assert_eq!(
            Value::Object(out),
            json!({
                "ipmi_password": "******", "user": "admin",
                "nested": {"agent_secret_token": "******", "n": 1},
                "configdrive": "******", "image_url": "******", "empty_password": null
            })
        );
    }
}
