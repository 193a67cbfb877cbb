//! Every error the API answers with: a status and a JSON body `{"code": ..., "message": ...}`
//! whose `code` is stable (clients branch on it) and whose `message` is one line for people.
//! Malformed input is the client's fault (400, 404, 405, 413, 415), never a 500.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::access::{AccessError, RefusalKind, Refused};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The grant store failed: the caller may retry; the details go to the log, not to them.
    pub fn unavailable(error: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "api: grant store unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the grant store cannot be reached right now; try again shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                code: self.code,
                message: &self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"bastion\""),
            );
        }
        response
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        let (status, code) = match refused.kind {
            RefusalKind::Rule => (StatusCode::FORBIDDEN, "refused"),
            RefusalKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            RefusalKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            RefusalKind::Invalid => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, refused.rule)
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> ApiError {
        match error {
            AccessError::Rejected(rejection) => ApiError::bad_request(rejection.to_string()),
            AccessError::NoSuchGrant(id) => ApiError::not_found(format!("no grant with id {id}")),
            AccessError::Database(e) => ApiError::unavailable(&e),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(error: crate::db::DbError) -> ApiError {
        ApiError::unavailable(&error)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::not_found(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than [api] max_body allows",
    )
}

/// The answer to a path no route has.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint; see /v1/openapi.json")
}

/// The answer to a method a route does not take.
pub async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /v1/openapi.json",
    )
}
