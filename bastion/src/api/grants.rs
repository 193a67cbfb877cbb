//! `/v1/grants`: list the grants the caller may see (the newest 10 000 grants, newest
//! first), revoke one, ask to extend one's own.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Caller;
use super::body;
use super::error::ApiError;
use crate::access::{ExtendAsk, Revocation};
use crate::db::{AccessRequest, Grant, GrantId, GrantStatus, MAX_LISTING};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only grants usable now.
    #[serde(default)]
    pub active: Option<bool>,
    /// Only this user's.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    pub duration: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Serialize)]
pub struct GrantView {
    #[serde(flatten)]
    pub grant: Grant,
    pub status: GrantStatus,
}

#[derive(Serialize)]
pub struct GrantList {
    pub grants: Vec<GrantView>,
}

#[derive(Serialize)]
pub struct RevokeReply {
    #[serde(flatten)]
    pub grant: GrantView,
    /// False when the grant had been revoked already (by `revoked_by`).
    pub revoked_now: bool,
}

pub(super) fn grant_id(path: Result<Path<String>, PathRejection>) -> Result<GrantId, ApiError> {
    let Path(text) = path?;
    text.parse::<GrantId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no grant {:?} (grant ids are positive numbers)",
                crate::text::escape_controls(&crate::text::capped(&text))
            ))
        })
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<GrantList>, ApiError> {
    let Query(query) = query?;
    let db = state.access.db();
    let config = state.access.config();
    let grants = db
        .recent_grants(query.active.unwrap_or(false), MAX_LISTING)
        .await?;
    let now = db.now().await?;
    let grants = grants
        .into_iter()
        .filter(|g| query.user.as_ref().is_none_or(|u| *u == g.user))
        .filter(|g| caller.oversees(config, &g.user, &g.target))
        .map(|grant| GrantView {
            status: grant.status_at(now),
            grant,
        })
        .collect();
    Ok(Json(GrantList { grants }))
}

/// The grant `id` if the caller may act on it; 404 if there is none or it is not theirs to
/// see (ids are sequential: a 403 would tell anyone which exist).
async fn overseen(state: &ApiState, caller: &Caller, id: GrantId) -> Result<Grant, ApiError> {
    let grant = state.access.db().grant(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no grant {id} of yours or of a policy you approve for"
        ))
    })?;
    if !caller.oversees(state.access.config(), &grant.user, &grant.target) {
        return Err(ApiError::not_found(format!(
            "no grant {id} of yours or of a policy you approve for"
        )));
    }
    Ok(grant)
}

pub async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RevokeReply>, ApiError> {
    let id = grant_id(path)?;
    overseen(&state, &caller, id).await?;
    let revocation = state
        .access
        .revoke_grant_from(id, &caller.user, Some(&caller.client))
        .await?;
    let now = state.access.db().now().await?;
    let (grant, revoked_now) = match revocation {
        Revocation::Revoked(grant) => (grant, true),
        Revocation::AlreadyRevoked(grant) => (grant, false),
    };
    Ok(Json(RevokeReply {
        grant: GrantView {
            status: grant.status_at(now),
            grant,
        },
        revoked_now,
    }))
}

pub async fn extend(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AccessRequest>), ApiError> {
    let id = grant_id(path)?;
    let body: ExtendBody = body::json(&headers, raw, None)?;
    let duration = body::duration("duration", &body.duration)?;
    if duration.is_zero() {
        return Err(ApiError::bad_request("duration must be greater than zero"));
    }
    let grant = overseen(&state, &caller, id).await?;
    if grant.user != caller.user {
        return Err(ApiError::forbidden(format!(
            "grant {id} is {}'s: only its holder can ask to extend it",
            grant.user
        )));
    }
    let ask = ExtendAsk {
        user: caller.user.clone(),
        what: id.to_string(),
        duration,
        reason: body.reason,
        client: caller.client.clone(),
    };
    let filed = state.access.request_extension(ask).await??;
    Ok((StatusCode::CREATED, Json(filed.request)))
}
