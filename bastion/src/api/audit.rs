//! `GET /v1/audit`: the audit trail every node stored, in the order it happened, a page at a
//! time; for API admins only.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use crate::db::{AuditCursor, AuditFilter};

const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 5000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339 time, inclusive.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339 time, exclusive.
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Serialize)]
pub struct AuditPage {
    /// The events as the audit log has them (`ts`, `event` and the event's fields).
    pub events: Vec<serde_json::Value>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn time(field: &str, text: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    text.map(|text| {
        // An unescaped `+` in a query string arrives as a space: `...T15:00:00 01:00`.
        let text = text.replace(' ', "+");
        OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{field} must be an RFC 3339 time like 2026-12-02T15:00:00Z"),
            )
        })
    })
    .transpose()
}

pub async fn page(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(query) = query?;
    if !caller.admin {
        return Err(ApiError::forbidden(
            "reading the audit trail needs an API admin (listed in [api] admins)",
        ));
    }
    let filter = AuditFilter {
        since: time("since", query.since.as_deref())?,
        until: time("until", query.until.as_deref())?,
        user: query.user,
        target: query.target,
    };
    let after = match query.after.as_deref() {
        Some(token) => Some(AuditCursor::from_token(token).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "after must be the next value of a previous page",
            )
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let records = state
        .access
        .db()
        .audit_events_page(&filter, after, limit)
        .await?;
    let next = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.cursor().to_token()))
        .flatten();
    let events = records
        .iter()
        .map(|r| {
            serde_json::from_str(&r.json)
                .unwrap_or_else(|_| serde_json::json!({ "event": r.event, "unparsed": r.json }))
        })
        .collect();
    Ok(Json(AuditPage { events, next }))
}
