//! `/v1/sessions`: the sessions the caller may see among the newest 10 000 (every node's: the
//! index is shared), and
//! ending one, which the node running it does within `grant_poll` (at once with PostgreSQL
//! notifications).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use crate::db::{EndRequestOutcome, MAX_LISTING, SessionRow};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only sessions still running.
    #[serde(default)]
    pub live: Option<bool>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
}

#[derive(Serialize)]
pub struct EndReply {
    pub session: String,
    /// `ending` (asked now), `already_ending` (asked before), `ended` (it was over).
    pub state: &'static str,
    pub node: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<SessionList>, ApiError> {
    let Query(query) = query?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
    };
    let config = state.access.config();
    let sessions = state
        .access
        .db()
        .recent_sessions(query.live.unwrap_or(false), MAX_LISTING)
        .await?
        .into_iter()
        .filter(|s| query.user.as_ref().is_none_or(|u| *u == s.user))
        .filter(|s| query.target.as_ref().is_none_or(|t| *t == s.target))
        .filter(|s| caller.oversees(config, &s.user, &s.target))
        .take(limit)
        .collect();
    Ok(Json(SessionList { sessions }))
}

pub async fn end(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<EndReply>), ApiError> {
    let Path(text) = path?;
    // Any spelling of a UUID names the session; the index keeps the hyphenated lower case.
    let Ok(uuid) = uuid::Uuid::try_parse(&text) else {
        return Err(ApiError::not_found(format!(
            "no session {:?} (session ids are UUIDs)",
            crate::text::escape_controls(&crate::text::capped(&text))
        )));
    };
    let id = uuid.hyphenated().to_string();
    let hidden = || {
        ApiError::not_found(format!(
            "no session {id} of yours or of a policy you approve for"
        ))
    };
    let session = state.access.db().session(&id).await?.ok_or_else(hidden)?;
    if !caller.oversees(state.access.config(), &session.user, &session.target) {
        return Err(hidden());
    }
    let outcome = state
        .access
        .end_session(&id, &caller.user, Some(&caller.client))
        .await?;
    let (row, status, label) = match outcome {
        EndRequestOutcome::Requested(row) => (row, StatusCode::ACCEPTED, "ending"),
        EndRequestOutcome::AlreadyRequested(row) => (row, StatusCode::ACCEPTED, "already_ending"),
        EndRequestOutcome::AlreadyEnded(row) => (row, StatusCode::OK, "ended"),
    };
    Ok((
        status,
        Json(EndReply {
            session: row.id,
            state: label,
            node: row.node,
        }),
    ))
}
