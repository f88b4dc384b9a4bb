//! Reading JSON request bodies with Ironic-style 400/413 errors.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Decodes a JSON body; a failure to read it (too large, ...) or malformed JSON is an error
/// in Ironic's format.
pub fn json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))
}
