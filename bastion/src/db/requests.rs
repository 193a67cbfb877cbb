//! Access requests and their approvals as stored: filing (an auto-approval or break glass
//! creates or extends the grant in the same transaction), reading, expiry after the TTL,
//! grant starts and break-glass reviews. Deciding a pending request is `decisions.rs`.

use std::time::Duration;

use serde::Serialize;
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::store::{
    Database, EncodedGrant, GRANT_COLUMNS, GrantRecord, bind_grant, from_millis, millis, on_pool,
};
use super::{DbError, Grant, GrantId, GrantOrigin, GrantSource, NewGrant};

/// Characters of request ids: no 0/o, 1/l/i, so an id read aloud or copied by hand survives.
const ID_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Tries before giving up on finding an unused id (each try is one insert).
const ID_TRIES: usize = 8;

pub(super) const REQUEST_COLUMNS: &str = "id, kind, user_name, target, logins, duration_ms, starts_in_ms, \
    reason, policy, approvals_needed, commands, pty, client, state, created_at, expires_at, \
    decided_at, decided_by, decision_note, grant_id";

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A new grant.
    Access,
    /// More time on an existing grant.
    Extend,
    /// Access taken at once in an emergency, reviewed afterwards.
    BreakGlass,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
}

macro_rules! codes {
    ($ty:ident { $($variant:ident => $code:literal),* $(,)? }) => {
        impl $ty {
            pub fn code(self) -> &'static str {
                match self { $($ty::$variant => $code),* }
            }
            pub fn from_code(code: &str) -> Option<$ty> {
                match code { $($code => Some($ty::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}
codes!(RequestKind { Access => "access", Extend => "extend", BreakGlass => "break_glass" });
codes!(RequestState {
    Pending => "pending",
    Approved => "approved",
    Denied => "denied",
    Cancelled => "cancelled",
    Expired => "expired",
});

/// A request as stored, with the approvals it has so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRequest {
    /// `r-7f3k`.
    pub id: String,
    pub kind: RequestKind,
    pub user: String,
    pub target: String,
    pub logins: Vec<String>,
    /// The grant's length (for an extension: the time added).
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Delay between approval and the grant's start.
    #[serde(with = "humantime_serde_compat")]
    pub starts_in: Duration,
    pub reason: String,
    pub policy: String,
    pub approvals_needed: u32,
    pub commands: Vec<String>,
    pub pty: bool,
    pub client: String,
    pub state: RequestState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When an undecided request expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    /// The grant the approval created, or the grant an extension is for.
    pub grant: Option<GrantId>,
    pub approvals: Vec<Approval>,
}

/// One approver's yes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub approver: String,
    pub comment: Option<String>,
    pub client: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A request to store; every rule has been applied by the access service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub kind: RequestKind,
    pub user: String,
    pub target: String,
    pub logins: Vec<String>,
    pub duration: Duration,
    pub starts_in: Duration,
    pub reason: String,
    pub policy: String,
    pub approvals_needed: u32,
    pub commands: Vec<String>,
    pub pty: bool,
    pub client: String,
    /// How long it may wait for a decision.
    pub ttl: Duration,
    /// For an extension: the grant to extend.
    pub grant: Option<GrantId>,
}

/// How a new request is decided when it is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filing {
    /// It waits for approvers.
    Pending,
    /// An `auto_approve` rule (named, e.g. `databases.auto_approve[0]`) approves it at once.
    AutoApproved { rule: String },
    /// Break glass: live at once, marked for review.
    BreakGlass,
}

/// What filing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub request: AccessRequest,
    /// The grant made at once (auto-approval, break glass) or extended.
    pub grant: Option<Grant>,
    /// For an extension applied at once: the grant's end before it.
    pub previous_expires_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
pub(super) struct RequestRecord {
    pub(super) id: String,
    kind: String,
    user_name: String,
    target: String,
    logins: String,
    duration_ms: i64,
    starts_in_ms: i64,
    reason: String,
    policy: String,
    approvals_needed: i32,
    commands: String,
    pty: bool,
    client: String,
    state: String,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    decision_note: Option<String>,
    grant_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ApprovalRecord {
    request_id: String,
    approver: String,
    comment: Option<String>,
    client: String,
    at: i64,
}

/// `humantime`-formatted durations in JSON (`"1h 30m"`).
mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        value: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }
}

/// A fresh `r-xxxx` id; `len` random characters.
fn new_id(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let token: String = (0..len)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect();
    format!("r-{token}")
}

/// Whether `text` could be a request id (checked before it reaches a query).
pub fn is_request_id(text: &str) -> bool {
    text.strip_prefix("r-").is_some_and(|token| {
        (4..=12).contains(&token.len()) && token.bytes().all(|b| ID_ALPHABET.contains(&b))
    })
}

impl Database {
    /// Stores `new` under a fresh id and decides it as `filing` says: for an auto-approval or
    /// break glass the grant is created (or, for an extension, lengthened) in the same
    /// transaction.
    pub async fn file_request(&self, new: &NewRequest, filing: &Filing) -> Result<Filed, DbError> {
        let logins = encode(&new.logins, "logins")?;
        let commands = encode(&new.commands, "commands")?;
        let (state, decided_by, origin) = match filing {
            Filing::Pending => (RequestState::Pending, None, None),
            Filing::AutoApproved { rule } => (
                RequestState::Approved,
                Some(rule.clone()),
                Some(GrantOrigin::Auto),
            ),
            Filing::BreakGlass => (
                RequestState::Approved,
                Some(new.user.clone()),
                Some(GrantOrigin::BreakGlass),
            ),
        };
        let insert = self.sql(&format!(
            "INSERT INTO access_requests (id, kind, user_name, target, logins, duration_ms, \
             starts_in_ms, reason, policy, approvals_needed, commands, pty, client, state, \
             created_at, expires_at, decided_at, decided_by, grant_id) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock.now_ms, \
             clock.now_ms + $15, CASE WHEN $14 = 'pending' THEN NULL ELSE clock.now_ms END, $16, \
             $17 FROM (SELECT {{now}} AS now_ms) AS clock WHERE true \
             ON CONFLICT (id) DO NOTHING RETURNING {REQUEST_COLUMNS}"
        ));
        for attempt in 0..ID_TRIES {
            // Four characters make ~920,000 ids; a collision widens the next try.
            let id = new_id(4 + attempt / 2);
            let approvals_needed = i32::try_from(new.approvals_needed).unwrap_or(i32::MAX);
            let filed: Option<Filed> = on_pool!(self, |pool| {
                let mut tx = pool.begin().await?;
                let record: Option<RequestRecord> = sqlx::query_as(AssertSqlSafe(insert.clone()))
                    .bind(&id)
                    .bind(new.kind.code())
                    .bind(&new.user)
                    .bind(&new.target)
                    .bind(&logins)
                    .bind(millis(new.duration))
                    .bind(millis(new.starts_in))
                    .bind(&new.reason)
                    .bind(&new.policy)
                    .bind(approvals_needed)
                    .bind(&commands)
                    .bind(new.pty)
                    .bind(&new.client)
                    .bind(state.code())
                    .bind(millis(new.ttl))
                    .bind(&decided_by)
                    .bind(new.grant)
                    .fetch_optional(&mut *tx)
                    .await?;
                match record {
                    None => None,
                    Some(record) => {
                        let mut request = record.into_request(Vec::new())?;
                        let mut filed = Filed {
                            request: request.clone(),
                            grant: None,
                            previous_expires_at: None,
                        };
                        if let Some(origin) = origin {
                            match new.kind {
                                RequestKind::Extend => {
                                    let grant_id = new.grant.unwrap_or_default();
                                    let before: Option<GrantRecord> =
                                        sqlx::query_as(AssertSqlSafe(format!(
                                            "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"
                                        )))
                                        .bind(grant_id)
                                        .fetch_optional(&mut *tx)
                                        .await?;
                                    let extended: Option<GrantRecord> =
                                        sqlx::query_as(AssertSqlSafe(self.extend_sql()))
                                            .bind(grant_id)
                                            .bind(millis(new.duration))
                                            .fetch_optional(&mut *tx)
                                            .await?;
                                    match extended {
                                        Some(grant) => {
                                            filed.grant = Some(grant.into_grant()?);
                                            filed.previous_expires_at = before
                                                .map(GrantRecord::into_grant)
                                                .transpose()?
                                                .map(|g| g.expires_at);
                                        }
                                        None => {
                                            sqlx::query(AssertSqlSafe(self.sql(
                                                "UPDATE access_requests SET state = 'expired', \
                                                 decision_note = $2 WHERE id = $1",
                                            )))
                                            .bind(&id)
                                            .bind(GRANT_ENDED_NOTE)
                                            .execute(&mut *tx)
                                            .await?;
                                            request.state = RequestState::Expired;
                                            request.decision_note = Some(GRANT_ENDED_NOTE.into());
                                            filed.request = request.clone();
                                        }
                                    }
                                }
                                RequestKind::Access | RequestKind::BreakGlass => {
                                    let grant = request.new_grant(&new.reason);
                                    let encoded = EncodedGrant::new(&grant)?;
                                    let source = GrantSource {
                                        origin,
                                        request: Some(id.clone()),
                                        review_required: origin == GrantOrigin::BreakGlass,
                                    };
                                    let record: GrantRecord = bind_grant!(
                                        sqlx::query_as(AssertSqlSafe(self.insert_grant_sql())),
                                        grant,
                                        encoded,
                                        source
                                    )
                                    .fetch_one(&mut *tx)
                                    .await?;
                                    let grant = record.into_grant()?;
                                    sqlx::query(
                                        "UPDATE access_requests SET grant_id = $2 WHERE id = $1",
                                    )
                                    .bind(&id)
                                    .bind(grant.id)
                                    .execute(&mut *tx)
                                    .await?;
                                    filed.request.grant = Some(grant.id);
                                    filed.grant = Some(grant);
                                }
                            }
                        }
                        // An extension decided at once moves the grant's end on every node.
                        if let (Some(_), RequestKind::Extend, Some(notify)) =
                            (origin, new.kind, self.notify_sql())
                        {
                            sqlx::query(notify).execute(&mut *tx).await?;
                        }
                        tx.commit().await?;
                        Some(filed)
                    }
                }
            });
            if let Some(filed) = filed {
                return Ok(filed);
            }
        }
        Err(DbError::InvalidGrant(
            "cannot find an unused request id; try again".into(),
        ))
    }

    /// The request `id` with its approvals.
    pub async fn request(&self, id: &str) -> Result<Option<AccessRequest>, DbError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = $1");
        let record: Option<RequestRecord> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?);
        match record {
            Some(record) => {
                let approvals = self.approvals(std::slice::from_ref(&record.id)).await?;
                Ok(Some(record.into_request(only(approvals))?))
            }
            None => Ok(None),
        }
    }

    /// Requests still waiting for a decision (their TTL not passed), oldest first; with
    /// `user`, only that user's.
    pub async fn pending_requests(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<AccessRequest>, DbError> {
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             SELECT {REQUEST_COLUMNS} FROM access_requests CROSS JOIN clock \
             WHERE state = 'pending' AND expires_at > clock.now_ms \
             AND ($1 IS NULL OR user_name = $1) ORDER BY created_at, id LIMIT 1000"
        ));
        let records: Vec<RequestRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(pool)
            .await?);
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut approvals = self.approvals(&ids).await?;
        records
            .into_iter()
            .map(|record| {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    approvals.drain(..).partition(|(id, _)| *id == record.id);
                approvals = rest;
                record.into_request(only(mine))
            })
            .collect()
    }

    /// Pending requests whose TTL passed, marked expired; each is returned to exactly one
    /// caller, even with several nodes polling.
    pub async fn take_expired_requests(&self) -> Result<Vec<AccessRequest>, DbError> {
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             UPDATE access_requests SET state = 'expired', \
             decided_at = (SELECT now_ms FROM clock) \
             WHERE state = 'pending' AND expires_at <= (SELECT now_ms FROM clock) \
             RETURNING {REQUEST_COLUMNS}"
        ));
        let records: Vec<RequestRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        let mut requests = records
            .into_iter()
            .map(|r| r.into_request(Vec::new()))
            .collect::<Result<Vec<_>, _>>()?;
        requests.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        if requests.iter().any(|r| r.kind == RequestKind::Extend) {
            self.notify_sessions().await;
        }
        Ok(requests)
    }

    /// Grants whose window opened (unrevoked) since any caller last asked, marked reported:
    /// each start is returned once.
    pub async fn take_newly_started(&self) -> Result<Vec<Grant>, DbError> {
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             UPDATE grants SET start_reported_at = (SELECT now_ms FROM clock) \
             WHERE start_reported_at IS NULL AND revoked_at IS NULL \
             AND starts_at <= (SELECT now_ms FROM clock) \
             RETURNING {GRANT_COLUMNS}"
        ));
        let records: Vec<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        let mut grants = records
            .into_iter()
            .map(GrantRecord::into_grant)
            .collect::<Result<Vec<_>, _>>()?;
        grants.sort_by_key(|g| g.id);
        Ok(grants)
    }

    /// Break-glass grants no approver has reviewed yet, oldest first.
    pub async fn unreviewed_grants(&self) -> Result<Vec<Grant>, DbError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE review_required AND reviewed_at IS NULL \
             ORDER BY id"
        );
        let records: Vec<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(GrantRecord::into_grant).collect()
    }

    /// Marks break-glass grant `id` reviewed by `by`. `None` when no such grant waits for a
    /// review (the first review wins).
    pub async fn review_grant(
        &self,
        id: GrantId,
        by: &str,
        comment: &str,
    ) -> Result<Option<Grant>, DbError> {
        let sql = self.sql(&format!(
            "UPDATE grants SET reviewed_at = {{now}}, reviewed_by = $2, review_comment = $3 \
             WHERE id = $1 AND review_required AND reviewed_at IS NULL RETURNING {GRANT_COLUMNS}"
        ));
        let record: Option<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(by)
            .bind(comment)
            .fetch_optional(pool)
            .await?);
        record.map(GrantRecord::into_grant).transpose()
    }

    /// The grant a session ran under, for `extend SESSION`.
    pub async fn session_grant(&self, session: &str) -> Result<Option<GrantId>, DbError> {
        let id: Option<i64> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT grant_id FROM sessions WHERE id = $1"
        )
        .bind(session)
        .fetch_optional(pool)
        .await?);
        Ok(id)
    }

    /// Adds `$2` ms to grant `$1` if it is still live (not revoked, not expired).
    pub(super) fn extend_sql(&self) -> String {
        self.sql(&format!(
            "UPDATE grants SET expires_at = expires_at + $2 \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > {{now}} \
             RETURNING {GRANT_COLUMNS}"
        ))
    }

    /// The approvals of these requests, as (request id, approval), in order.
    pub(super) async fn approvals(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, Approval)>, DbError> {
        let mut all = Vec::new();
        for chunk in ids.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let placeholders = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT request_id, approver, comment, client, at FROM request_approvals \
                 WHERE request_id IN ({placeholders}) ORDER BY at, approver"
            );
            let records: Vec<ApprovalRecord> = on_pool!(self, |pool| {
                let mut query = sqlx::query_as(AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await?
            });
            for record in records {
                all.push(record.into_approval()?);
            }
        }
        Ok(all)
    }
}

/// Why an approved extension changed nothing.
pub(super) const GRANT_ENDED_NOTE: &str =
    "the grant had already ended when the extension was approved";

impl AccessRequest {
    /// The grant an approval of this request creates, approved by `approved_by`.
    pub(super) fn new_grant(&self, approved_by: &str) -> NewGrant {
        NewGrant {
            user: self.user.clone(),
            target: self.target.clone(),
            logins: self.logins.clone(),
            starts_in: self.starts_in,
            duration: self.duration,
            approved_by: approved_by.to_string(),
            reason: self.reason.clone(),
            commands: self.commands.clone(),
            pty: self.pty,
        }
    }
}

impl RequestRecord {
    pub(super) fn into_request(self, approvals: Vec<Approval>) -> Result<AccessRequest, DbError> {
        let id = self.id.clone();
        let corrupt = |reason: String| DbError::Corrupt {
            table: "access_requests",
            id: id.clone(),
            reason,
        };
        let ms = |value: i64, column: &str| {
            u64::try_from(value)
                .map(Duration::from_millis)
                .map_err(|_| corrupt(format!("{column} is negative: {value}")))
        };
        let time = |value: i64| time_of(value, "access_requests", &id);
        Ok(AccessRequest {
            kind: RequestKind::from_code(&self.kind)
                .ok_or_else(|| corrupt(format!("unknown kind {:?}", self.kind)))?,
            state: RequestState::from_code(&self.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?,
            logins: serde_json::from_str(&self.logins)
                .map_err(|err| corrupt(format!("logins is not a JSON list: {err}")))?,
            commands: serde_json::from_str(&self.commands)
                .map_err(|err| corrupt(format!("commands is not a JSON list: {err}")))?,
            duration: ms(self.duration_ms, "duration_ms")?,
            starts_in: ms(self.starts_in_ms, "starts_in_ms")?,
            approvals_needed: u32::try_from(self.approvals_needed).unwrap_or(0),
            created_at: time(self.created_at)?,
            expires_at: time(self.expires_at)?,
            decided_at: self.decided_at.map(time).transpose()?,
            id: self.id,
            user: self.user_name,
            target: self.target,
            reason: self.reason,
            policy: self.policy,
            pty: self.pty,
            client: self.client,
            decided_by: self.decided_by,
            decision_note: self.decision_note,
            grant: self.grant_id,
            approvals,
        })
    }
}

impl ApprovalRecord {
    pub(super) fn into_approval(self) -> Result<(String, Approval), DbError> {
        let at = time_of(self.at, "request_approvals", &self.request_id)?;
        Ok((
            self.request_id,
            Approval {
                approver: self.approver,
                comment: self.comment,
                client: self.client,
                at,
            },
        ))
    }
}

/// The approvals without the request ids they were read with.
pub(super) fn only(approvals: Vec<(String, Approval)>) -> Vec<Approval> {
    approvals.into_iter().map(|(_, a)| a).collect()
}

pub(super) fn time_of(ms: i64, table: &'static str, id: &str) -> Result<OffsetDateTime, DbError> {
    from_millis(ms).ok_or_else(|| DbError::Corrupt {
        table,
        id: id.to_string(),
        reason: format!("time out of range: {ms}"),
    })
}

fn encode(list: &[String], what: &str) -> Result<String, DbError> {
    serde_json::to_string(list)
        .map_err(|err| DbError::InvalidGrant(format!("cannot encode {what}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_unambiguous_and_recognised() {
        for _ in 0..100 {
            let id = new_id(4);
            assert_eq!(id.len(), 6);
            assert!(is_request_id(&id), "{id}");
        }
        for bad in ["r-", "r-ab", "r-abcl", "7f3k", "r-7F3K", "r-abcd; drop"] {
            assert!(!is_request_id(bad), "{bad}");
        }
    }
}
