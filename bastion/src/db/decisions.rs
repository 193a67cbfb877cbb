//! Deciding a pending request: an approval (the one that reaches the needed count creates
//! or extends the grant), a denial, a cancellation. Each runs so that exactly one decision
//! takes effect when several nodes decide at the same moment.
//!
//! An approval runs in one transaction whose first statement writes the request's row, so
//! SQLite takes its write lock at once and PostgreSQL locks the row: two approvers racing
//! are serialized, and exactly one of them completes the request.

use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::requests::{
    ApprovalRecord, GRANT_ENDED_NOTE, REQUEST_COLUMNS, RequestRecord, only, time_of,
};
use super::store::{
    Database, EncodedGrant, GRANT_COLUMNS, GrantRecord, bind_grant, millis, on_pool,
};
use super::{
    AccessRequest, Approval, DbError, Grant, GrantOrigin, GrantSource, RequestKind, RequestState,
};

/// Sets request `$id`'s final `$state` (and note) inside transaction `$tx`.
macro_rules! settle {
    ($db:expr, $tx:ident, $id:expr, $state:expr, $note:expr) => {
        sqlx::query(AssertSqlSafe($db.sql(
            "UPDATE access_requests SET state = $2, decision_note = $3, decided_at = {now} \
             WHERE id = $1",
        )))
        .bind($id)
        .bind($state)
        .bind($note)
        .execute(&mut *$tx)
        .await?
    };
}

/// What one approval did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    NotFound,
    /// Already decided, cancelled or expired (its TTL passed): nothing changed.
    NotPending(AccessRequest),
    /// This approver had already approved it: nothing changed.
    AlreadyApproved(AccessRequest),
    /// Counted; more approvals are needed.
    Recorded(AccessRequest),
    /// The last approval needed: the grant exists now.
    Granted {
        request: AccessRequest,
        grant: Grant,
    },
    /// The last approval needed for an extension: the grant ends later now.
    Extended {
        request: AccessRequest,
        grant: Grant,
        previous_expires_at: OffsetDateTime,
    },
    /// The last approval needed for an extension whose grant had already ended (or was
    /// revoked): the request expired and nothing changed.
    GrantEnded(AccessRequest),
}

/// What a deny or cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    NotFound,
    NotPending(AccessRequest),
    Closed(AccessRequest),
}

#[derive(sqlx::FromRow)]
struct LiveRequestRecord {
    #[sqlx(flatten)]
    request: RequestRecord,
    /// 1 while the request's TTL has not passed on the database clock.
    live: i32,
}

impl Database {
    /// Records `approver`'s approval of request `id`; the approval that reaches the needed
    /// count creates the grant (or extends it) in the same transaction.
    pub async fn approve_request(
        &self,
        id: &str,
        approver: &str,
        comment: Option<&str>,
        client: &str,
    ) -> Result<ApprovalOutcome, DbError> {
        let lock = self.lock_sql();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let locked: Option<LiveRequestRecord> = sqlx::query_as(AssertSqlSafe(lock))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(locked) = locked else {
                return Ok(ApprovalOutcome::NotFound);
            };
            let approvals: Vec<ApprovalRecord> = sqlx::query_as(
                "SELECT request_id, approver, comment, client, at FROM request_approvals \
                 WHERE request_id = $1 ORDER BY at, approver",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let mut approvals = approvals
                .into_iter()
                .map(|a| a.into_approval().map(|(_, a)| a))
                .collect::<Result<Vec<_>, _>>()?;
            let live = locked.live == 1;
            let mut request = locked.request.into_request(approvals.clone())?;
            if request.state != RequestState::Pending || !live {
                return Ok(ApprovalOutcome::NotPending(request));
            }
            if approvals.iter().any(|a| a.approver == approver) {
                return Ok(ApprovalOutcome::AlreadyApproved(request));
            }
            let at: i64 = sqlx::query_scalar(AssertSqlSafe(self.sql(
                "INSERT INTO request_approvals (request_id, approver, comment, client, at) \
                 VALUES ($1, $2, $3, $4, {now}) RETURNING at",
            )))
            .bind(id)
            .bind(approver)
            .bind(comment)
            .bind(client)
            .fetch_one(&mut *tx)
            .await?;
            approvals.push(Approval {
                approver: approver.to_string(),
                comment: comment.map(str::to_string),
                client: client.to_string(),
                at: time_of(at, "request_approvals", id)?,
            });
            request.approvals = approvals;
            if (request.approvals.len() as u64) < u64::from(request.approvals_needed) {
                tx.commit().await?;
                return Ok(ApprovalOutcome::Recorded(request));
            }
            let request_kind = request.kind;
            let outcome = match request.kind {
                RequestKind::Extend => {
                    let grant_id = request.grant.unwrap_or_default();
                    let before: Option<GrantRecord> = sqlx::query_as(AssertSqlSafe(format!(
                        "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"
                    )))
                    .bind(grant_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let extended: Option<GrantRecord> =
                        sqlx::query_as(AssertSqlSafe(self.extend_sql()))
                            .bind(grant_id)
                            .bind(millis(request.duration))
                            .fetch_optional(&mut *tx)
                            .await?;
                    match (extended, before) {
                        (Some(grant), Some(before)) => {
                            settle!(self, tx, id, "approved", None::<&str>);
                            request.state = RequestState::Approved;
                            ApprovalOutcome::Extended {
                                request,
                                grant: grant.into_grant()?,
                                previous_expires_at: before.into_grant()?.expires_at,
                            }
                        }
                        _ => {
                            settle!(self, tx, id, "expired", Some(GRANT_ENDED_NOTE));
                            request.state = RequestState::Expired;
                            request.decision_note = Some(GRANT_ENDED_NOTE.into());
                            ApprovalOutcome::GrantEnded(request)
                        }
                    }
                }
                RequestKind::Access | RequestKind::BreakGlass => {
                    let grant = request.new_grant(
                        &request
                            .approvals
                            .iter()
                            .map(|a| a.approver.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                    let encoded = EncodedGrant::new(&grant)?;
                    let source = GrantSource {
                        origin: GrantOrigin::Request,
                        request: Some(request.id.clone()),
                        review_required: false,
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
                    settle!(self, tx, id, "approved", None::<&str>);
                    sqlx::query("UPDATE access_requests SET grant_id = $2 WHERE id = $1")
                        .bind(id)
                        .bind(grant.id)
                        .execute(&mut *tx)
                        .await?;
                    request.state = RequestState::Approved;
                    request.grant = Some(grant.id);
                    ApprovalOutcome::Granted { request, grant }
                }
            };
            // The grant's end moved (or the extension failed): every node looks again.
            if let (RequestKind::Extend, Some(notify)) = (request_kind, self.notify_sql()) {
                sqlx::query(notify).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            outcome
        });
        Ok(outcome)
    }

    /// Ends pending request `id` as `state` (`denied` or `cancelled`) by `by`, with `note`
    /// (a denial's reason).
    pub async fn close_request(
        &self,
        id: &str,
        state: RequestState,
        by: &str,
        note: Option<&str>,
    ) -> Result<Closing, DbError> {
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             UPDATE access_requests SET state = $2, decided_by = $3, decision_note = $4, \
             decided_at = (SELECT now_ms FROM clock) \
             WHERE id = $1 AND state = 'pending' AND expires_at > (SELECT now_ms FROM clock) \
             RETURNING {REQUEST_COLUMNS}"
        ));
        let record: Option<RequestRecord> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(id)
                .bind(state.code())
                .bind(by)
                .bind(note)
                .fetch_optional(pool)
                .await?);
        match record {
            Some(record) => {
                let approvals = self.approvals(std::slice::from_ref(&record.id)).await?;
                let request = record.into_request(only(approvals))?;
                if request.kind == RequestKind::Extend {
                    self.notify_sessions().await;
                }
                Ok(Closing::Closed(request))
            }
            None => Ok(match self.request(id).await? {
                Some(request) => Closing::NotPending(request),
                None => Closing::NotFound,
            }),
        }
    }

    /// Locks request `$1` (a no-op write) and reads it with whether its TTL has not passed.
    fn lock_sql(&self) -> String {
        self.sql(&format!(
            "UPDATE access_requests SET state = state WHERE id = $1 RETURNING {REQUEST_COLUMNS}, \
             CASE WHEN expires_at > {{now}} THEN 1 ELSE 0 END AS live"
        ))
    }
}
