//! Request bodies: JSON only, unknown fields refused, at most `[api] max_body` bytes (the
//! router's body limit answers 413 before a byte is parsed). An empty body stands for `{}`
//! where every field is optional.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, too_large};

/// Parses `body` as `T`; `Default` when the body is empty and `T` allows it.
pub fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    empty: Option<T>,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return empty.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "this endpoint needs a JSON body; see /v1/openapi.json",
            )
        });
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON: send Content-Type: application/json",
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_body"
        } else {
            "invalid_json"
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("invalid request body: {e}"),
        )
    })
}

/// A duration as people write it (`1h`, `30m`, `1h30m`).
pub fn duration(field: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid {field} {text:?}: {e} (expected e.g. \"30m\", \"1h\", \"2h30m\")"),
        )
    })?;
    Ok(parsed)
}
