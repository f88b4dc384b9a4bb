//! IPA's error shape: `{"faultcode": "Client"|"Server", "faultstring": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::commands::DispatchError;

/// An error answered by the agent API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `faultstring`.
    pub faultstring: String,
}

#[derive(Serialize)]
struct Fault<'a> {
    faultcode: &'a str,
    faultstring: &'a str,
}

impl ApiError {
    /// An error with `status` and text.
    pub fn new(status: StatusCode, faultstring: impl Into<String>) -> Self {
        ApiError {
            status,
            faultstring: faultstring.into(),
        }
    }

    /// 401 for a missing or wrong token.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "401 Unauthorized: Token invalid.")
    }

    /// 400 for a body that is not what the route expects.
    pub fn bad_request(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("400 Bad Request: {detail}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let faultcode = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        let body = Fault {
            faultcode,
            faultstring: &self.faultstring,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        if matches!(e, DispatchError::ShuttingDown) {
            // Not an IPA class: the agent is stopping and takes no new command.
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        // As IPA's API: the error class's code is the status, `str(e)` the faultstring.
        let e = e.to_ipa_error();
        let status = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}
