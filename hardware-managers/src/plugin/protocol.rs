//! The JSON messages exchanged with a plug-in executable.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HardwareError;
use crate::ipa_error::{IpaClass, IpaError};

/// The class a plug-in error without a `type` gets.
const UNTYPED_ERROR_CLASS: IpaClass = IpaClass::CommandExecutionError;

/// The request written to the plug-in's stdin.
#[derive(Debug, Serialize)]
pub(crate) struct Request<'a> {
    /// The method to run.
    pub method: &'a str,
    /// Its arguments (always an object).
    pub args: &'a Value,
}

/// The error object of a response.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A decoded response.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// `{"result": ...}`.
    Result(Value),
    /// `{"error": {"type": ..., "message": ...}}`, as the error the manager reports.
    Error(ErrorReply),
}

/// A plug-in's own error.
#[derive(Debug, PartialEq)]
pub struct ErrorReply {
    /// The error class name as the plug-in spelled it (`IncompatibleHardwareMethodError`,
    /// `BlockDeviceEraseError`, a vendor's own, ...).
    pub kind: String,
    /// Its message.
    pub message: String,
}

impl ErrorReply {
    /// The matching [`HardwareError`]: `Incompatible` for "not mine", `MethodNotFound` for
    /// `HardwareManagerMethodNotFound`, else [`HardwareError::Ipa`] with IPA's class when
    /// `errors.py` defines the name, the plug-in's own class otherwise.
    pub fn into_error(self, method: &str) -> HardwareError {
        match IpaClass::from_name(&self.kind) {
            Some(IpaClass::IncompatibleHardwareMethodError) if self.message.is_empty() => {
                HardwareError::incompatible(method)
            }
            Some(IpaClass::IncompatibleHardwareMethodError) => {
                HardwareError::Incompatible(self.message)
            }
            Some(IpaClass::HardwareManagerMethodNotFound) => {
                HardwareError::MethodNotFound(method.to_string())
            }
            _ => HardwareError::Ipa(IpaError::from_name(self.kind, self.message)),
        }
    }
}

/// Decodes stdout: one JSON object with `result` or `error`. When the whole output is not
/// JSON, its last non-empty line is tried (tolerates chatter printed before the response).
///
/// # Errors
/// Why the output is not a response (for the [`HardwareError::Plugin`] message).
pub fn parse_reply(stdout: &[u8]) -> Result<Reply, String> {
    let text = String::from_utf8_lossy(stdout);
    let value = match serde_json::from_str::<Value>(text.trim()) {
        Ok(v) => v,
        Err(whole) => {
            let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
            match last.map(serde_json::from_str::<Value>) {
                Some(Ok(v)) => v,
                _ if text.trim().is_empty() => return Err("no response on stdout".to_string()),
                _ => return Err(format!("response is not JSON: {whole}")),
            }
        }
    };
    let Value::Object(mut obj) = value else {
        return Err("response is not a JSON object".to_string());
    };
    if let Some(error) = obj.remove("error").filter(|e| !e.is_null()) {
        let body: ErrorBody = serde_json::from_value(error)
            .map_err(|e| format!("response has a malformed \"error\": {e}"))?;
        return Ok(Reply::Error(ErrorReply {
            kind: body
                .kind
                .unwrap_or_else(|| UNTYPED_ERROR_CLASS.name().to_string()),
            message: body.message.unwrap_or_default(),
        }));
    }
    match obj.remove("result") {
        Some(result) => Ok(Reply::Result(result)),
        None => Err("response has neither \"result\" nor \"error\"".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn results_and_errors() {
        assert_eq!(
            parse_reply(br#"{"result": 3}"#),
            Ok(Reply::Result(json!(3)))
        );
        assert_eq!(
            parse_reply(b"{\"result\": null}\n"),
            Ok(Reply::Result(Value::Null))
        );
        assert_eq!(
            parse_reply(b"loading...\n{\"result\": [1]}\n"),
            Ok(Reply::Result(json!([1]))),
            "chatter before the response"
        );
        let Ok(Reply::Error(e)) =
            parse_reply(br#"{"error": {"type": "BlockDeviceEraseError", "message": "x"}}"#)
        else {
            panic!("expected an error reply")
        };
        let e = e.into_error("m");
        assert!(e.is(IpaClass::BlockDeviceEraseError), "{e:?}");
        assert_eq!(
            e.to_ipa_error().to_string(),
            "Error erasing block device: x"
        );
        let Ok(Reply::Error(e)) =
            parse_reply(br#"{"error": {"type": "AcmeFirmwareError", "message": "y"}}"#)
        else {
            panic!("expected an error reply")
        };
        let e = e.into_error("m").to_ipa_error();
        assert_eq!(
            (e.name(), e.code(), e.details()),
            ("AcmeFirmwareError", 500, "y")
        );
        let Ok(Reply::Error(e)) = parse_reply(br#"{"error": {"message": "z"}}"#) else {
            panic!("expected an error reply")
        };
        assert_eq!(e.into_error("m").ipa_type(), "CommandExecutionError");
        let Ok(Reply::Error(e)) =
            parse_reply(br#"{"error": {"type": "IncompatibleHardwareMethodError"}}"#)
        else {
            panic!("expected an error reply")
        };
        assert!(e.into_error("get_cpus").is_incompatible());
    }

    #[test]
    fn malformed_responses() {
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"not json").is_err());
        assert!(parse_reply(b"[1]").is_err());
        assert!(parse_reply(br#"{"answer": 1}"#).is_err());
        assert!(parse_reply(br#"{"error": "text"}"#).is_err());
    }
}
