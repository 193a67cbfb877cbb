//! `/v1/requests`: file a request as the token's user, list what the caller may see, and
//! approve, deny or cancel, through the same service (and rules) as `ssh bastion VERB`.

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
use crate::access::{Ask, Decider, policy};
use crate::db::{AccessRequest, ApprovalOutcome, RequestState, is_request_id};

/// The body of `POST /v1/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    pub target: String,
    pub duration: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub starts_in: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Serialize)]
pub struct RequestList {
    pub requests: Vec<AccessRequest>,
}

/// What a decision answers: the request as it now stands, and whether this call completed it.
#[derive(Serialize)]
pub struct DecisionReply {
    #[serde(flatten)]
    pub request: AccessRequest,
    /// `recorded` (more approvals needed), `granted`, `extended`, `denied`, `cancelled`,
    /// `grant_ended` (the grant an extension was for ended first).
    pub outcome: &'static str,
}

const MAX_ID_CHARS: usize = 64;

pub(super) fn request_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path?;
    if id.len() > MAX_ID_CHARS || !is_request_id(&id) {
        return Err(ApiError::not_found(format!(
            "no request {:?} (request ids look like r-7f3k)",
            crate::text::escape_controls(&crate::text::capped(&id))
        )));
    }
    Ok(id)
}

pub async fn file(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AccessRequest>), ApiError> {
    let body: NewRequestBody = body::json(&headers, raw, None)?;
    let duration = body::duration("duration", &body.duration)?;
    if duration.is_zero() {
        return Err(ApiError::bad_request("duration must be greater than zero"));
    }
    let starts_in = match &body.starts_in {
        Some(text) => body::duration("starts_in", text)?,
        None => std::time::Duration::ZERO,
    };
    let ask = Ask {
        user: caller.user.clone(),
        target: body.target,
        login: body.login,
        duration,
        starts_in,
        reason: body.reason,
        client: caller.client.clone(),
    };
    let filed = state.access.request_access(ask).await??;
    Ok((StatusCode::CREATED, Json(filed.request)))
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<RequestList>, ApiError> {
    let Query(query) = query?;
    let wanted = match query.state.as_deref() {
        None | Some("pending") => Some(RequestState::Pending),
        Some("all") => None,
        Some(text) => Some(RequestState::from_code(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "state must be one of pending, approved, denied, cancelled, expired, all",
            )
        })?),
    };
    let db = state.access.db();
    let config = state.access.config();
    let requests = match wanted {
        Some(RequestState::Pending) => db.pending_requests(None).await?,
        other => db.recent_requests(other, 1000).await?,
    };
    let visible = requests
        .into_iter()
        .filter(|r| {
            caller.admin
                || r.user == caller.user
                || policy::decider(config, &r.policy, &caller.user, &r.user).is_ok()
        })
        .collect();
    Ok(Json(RequestList { requests: visible }))
}

pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AccessRequest>, ApiError> {
    let id = request_id(path)?;
    let config = state.access.config();
    match state.access.db().request(&id).await? {
        Some(r)
            if caller.admin
                || r.user == caller.user
                || config
                    .policy(&r.policy)
                    .is_some_and(|p| config.is_among(&caller.user, &p.approvers)) =>
        {
            Ok(Json(r))
        }
        // Not theirs to see: as if it did not exist (ids must not be probed).
        Some(_) | None => Err(ApiError::not_found(format!(
            "no request {id} of yours or that you may decide"
        ))),
    }
}

pub async fn approve(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<DecisionReply>, ApiError> {
    let id = request_id(path)?;
    let body: ApproveBody = body::json(&headers, raw, Some(ApproveBody::default()))?;
    let by = Decider {
        user: &caller.user,
        client: &caller.client,
    };
    let outcome = state
        .access
        .approve(
            &id,
            by,
            body.comment
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty()),
        )
        .await?
        .map_err(decision_refusal)?;
    let (request, outcome) = match outcome {
        ApprovalOutcome::Recorded(r) => (r, "recorded"),
        ApprovalOutcome::Granted { request, .. } => (request, "granted"),
        ApprovalOutcome::Extended { request, .. } => (request, "extended"),
        ApprovalOutcome::GrantEnded(r) => (r, "grant_ended"),
        // The service answers these as refusals; kept for completeness of the match.
        ApprovalOutcome::NotFound => return Err(ApiError::not_found(format!("no request {id}"))),
        ApprovalOutcome::NotPending(r) | ApprovalOutcome::AlreadyApproved(r) => (r, "unchanged"),
    };
    Ok(Json(DecisionReply { request, outcome }))
}

pub async fn deny(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<DecisionReply>, ApiError> {
    let id = request_id(path)?;
    let body: DenyBody = body::json(&headers, raw, Some(DenyBody::default()))?;
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "denied through the API".to_string());
    let by = Decider {
        user: &caller.user,
        client: &caller.client,
    };
    let request = state
        .access
        .deny(&id, by, &reason)
        .await?
        .map_err(decision_refusal)?;
    Ok(Json(DecisionReply {
        request,
        outcome: "denied",
    }))
}

pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DecisionReply>, ApiError> {
    let id = request_id(path)?;
    let by = Decider {
        user: &caller.user,
        client: &caller.client,
    };
    let request = state.access.cancel(&id, by).await??;
    Ok(Json(DecisionReply {
        request,
        outcome: "cancelled",
    }))
}

/// A refused decision: 403 when the caller lacks the right (not an approver, their own
/// request), else what the refusal's kind says (404, 409, 400).
fn decision_refusal(refused: crate::access::Refused) -> ApiError {
    let mut error = ApiError::from(refused);
    if error.code == "refused" {
        error.code = "forbidden";
    }
    error
}
