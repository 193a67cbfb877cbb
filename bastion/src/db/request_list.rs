//! Reading requests back for listings beyond the pending ones (`GET /v1/requests?state=`).

use sqlx::AssertSqlSafe;

use super::requests::{REQUEST_COLUMNS, RequestRecord};
use super::store::{Database, on_pool};
use super::{AccessRequest, DbError, RequestState};

impl Database {
    /// The newest `limit` requests in `state` (every state with `None`), newest first.
    pub async fn recent_requests(
        &self,
        state: Option<RequestState>,
        limit: u32,
    ) -> Result<Vec<AccessRequest>, DbError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE ($1 IS NULL OR state = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let records: Vec<RequestRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(state.map(RequestState::code))
            .bind(i64::from(limit.min(10_000)))
            .fetch_all(pool)
            .await?);
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let approvals = self.approvals(&ids).await?;
        records
            .into_iter()
            .map(|record| {
                let mine = approvals
                    .iter()
                    .filter(|(id, _)| *id == record.id)
                    .map(|(_, a)| a.clone())
                    .collect();
                record.into_request(mine)
            })
            .collect()
    }
}
