//! Ironic's error responses: `{"error_message": "<JSON string>"}` whose inner JSON is
//! `{"faultcode": "Client"|"Server", "faultstring": "...", "debuginfo": null}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::pyjson;
use crate::store::StoreError;

/// Ironic's generic "not found" text, used wherever Ironic hides the reason.
pub const RESOURCE_NOT_FOUND: &str = "Resource could not be found.";

/// An error answered in Ironic's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `faultstring`.
    pub message: String,
}

#[derive(Serialize)]
struct Fault<'a> {
    faultcode: &'a str,
    faultstring: &'a str,
    debuginfo: Option<()>,
}

#[derive(Serialize)]
struct ErrorBody {
    error_message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with Ironic's generic text.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, RESOURCE_NOT_FOUND)
    }

    /// 404 with a specific text.
    pub fn not_found_msg(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The response body text.
    pub fn body(&self) -> String {
        let faultcode = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        let inner = pyjson::to_string(&Fault {
            faultcode,
            faultstring: &self.message,
            debuginfo: None,
        })
        .unwrap_or_default();
        pyjson::to_string(&ErrorBody {
            error_message: inner,
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NodeNotFound(ident) => {
                ApiError::not_found_msg(format!("Node {ident} could not be found."))
            }
            StoreError::AmbiguousPorts(_) => ApiError::not_found(),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal(other.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_matches_ironic() {
        let e = ApiError::bad_request("Invalid or missing agent token received.");
        assert_eq!(
            e.body(),
            r#"{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid or missing agent token received.\", \"debuginfo\": null}"}"#
        );
        assert!(ApiError::internal("x").body().contains(r#"\"Server\""#));
    }
}
