//! The notifier's reading side: every second, the recent request events in the database's
//! audit copy that no node has claimed, claimed one by one and queued to every webhook.
//!
//! Reading the shared table (not being called by the code that made a step) is what makes
//! steps taken anywhere reach the webhooks: the SSH verbs, the admin CLI in its own process,
//! the HTTP API, another node. A claim (`Database::claim_notification`) is made before an
//! event is queued, so with several nodes each event is posted by one of them. A node that
//! claims and then dies loses those few messages; nothing waits for webhooks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::delivery::{Outgoing, Webhook};
use super::notice::{NOTIFIED_EVENTS, Notice, Step};
use super::{slack, teams};
use crate::config::NotifyKind;
use crate::db::{AuditRecord, Database, DbError, MAX_NOTIFY_PAGE, RequestState};

/// How often the audit table is read.
const POLL: Duration = Duration::from_secs(1);
/// Events older than this are never posted: a notice that late is noise, and it bounds the
/// scan (events reach the table within seconds of happening, through the audit sink).
const LOOKBACK: Duration = Duration::from_secs(10 * 60);
/// Events recorded this long before the node started are still posted if nobody claimed
/// them (a step taken while the daemon restarted); older history is not replayed.
const START_MARGIN: Duration = Duration::from_secs(10);
/// Claims are kept this long, far beyond `LOOKBACK`, so no claimed event is read again.
const CLAIMS_KEPT: Duration = Duration::from_secs(60 * 60);
const FORGET_EVERY: Duration = Duration::from_secs(10 * 60);
/// Database trouble is logged at most this often.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(60);

/// What the feed needs besides the database.
pub(super) struct Feed {
    pub db: Database,
    pub node_id: String,
    pub webhooks: Vec<Webhook>,
    /// `users[].slack_id` by user name, for mentions in Slack messages.
    pub slack_ids: HashMap<String, String>,
}

impl Feed {
    /// Reads and queues until `shutdown`.
    pub(super) async fn run(self, shutdown: CancellationToken) {
        let started = OffsetDateTime::now_utc();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut forgotten = Instant::now();
        let mut complained: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let outcome = async {
                // A full page means more are waiting: read on at once.
                while self.poll(started).await? {}
                if forgotten.elapsed() >= FORGET_EVERY {
                    forgotten = Instant::now();
                    self.db.forget_notification_claims(CLAIMS_KEPT).await?;
                }
                Ok::<(), DbError>(())
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = outcome => outcome,
            };
            if let Err(err) = outcome
                && complained.is_none_or(|at| at.elapsed() >= COMPLAINT_INTERVAL)
            {
                complained = Some(Instant::now());
                tracing::warn!(error = %err, "webhook notifications: cannot read request events from the database; will retry");
            }
        }
    }

    /// One page: claims each event and queues the notices; true when the page was full.
    async fn poll(&self, started: OffsetDateTime) -> Result<bool, DbError> {
        let since = (started - START_MARGIN).max(OffsetDateTime::now_utc() - LOOKBACK);
        let page = self
            .db
            .unclaimed_audit_events(NOTIFIED_EVENTS, since, MAX_NOTIFY_PAGE)
            .await?;
        let full = page.len() >= MAX_NOTIFY_PAGE as usize;
        for (event_id, notice) in plan(&page) {
            // Claimed even when there is nothing to post, so it is not read again.
            if !self.db.claim_notification(event_id, &self.node_id).await? {
                continue;
            }
            let Some(mut notice) = notice else { continue };
            if notice.step == Step::Filed {
                notice.pending = self.still_pending(&notice.request).await;
            }
            self.queue(&notice);
        }
        Ok(full)
    }

    /// Whether request `id` still waits for a decision; when the store cannot say, the
    /// buttons are offered and the approval itself finds out.
    async fn still_pending(&self, id: &str) -> bool {
        match self.db.request(id).await {
            Ok(Some(request)) => request.state == RequestState::Pending,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    fn queue(&self, notice: &Notice) {
        let mut slack_body = None;
        let mut teams_body = None;
        for webhook in &self.webhooks {
            let body = match webhook.kind() {
                NotifyKind::Slack => {
                    slack_body.get_or_insert_with(|| body(&slack::message(notice, &self.slack_ids)))
                }
                NotifyKind::Teams => {
                    teams_body.get_or_insert_with(|| body(&teams::message(notice)))
                }
            };
            webhook.offer(Outgoing {
                body: body.clone(),
                event: notice.step.event(),
                request: notice.request.clone(),
            });
        }
    }
}

fn body(value: &serde_json::Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (its keys are strings).
    serde_json::to_vec(value).unwrap_or_default()
}

/// The notice (if any) for each event of `page`, in order. A break-glass filing is left to its
/// `break_glass` event; an auto-approval filed in the same page is one notice, the approval's,
/// with the filing's facts: no Approve button for a request nobody has to approve.
pub(super) fn plan(page: &[AuditRecord]) -> Vec<(i64, Option<Notice>)> {
    let mut planned: Vec<(i64, Option<Notice>)> = page
        .iter()
        .map(|record| {
            let notice = Notice::from_audit(&record.json).filter(|n| !n.is_break_glass_filing());
            (record.id, notice)
        })
        .collect();
    let auto_approved: HashMap<String, usize> = planned
        .iter()
        .enumerate()
        .filter_map(|(i, (_, notice))| {
            notice
                .as_ref()
                .filter(|n| n.step == Step::AutoApproved)
                .map(|n| (n.request.clone(), i))
        })
        .collect();
    for i in 0..planned.len() {
        let Some(filed) = planned[i].1.as_ref().filter(|n| n.step == Step::Filed) else {
            continue;
        };
        if let Some(&at) = auto_approved.get(&filed.request)
            && at > i
            && let Some(filed) = planned[i].1.take()
            && let Some(approval) = planned[at].1.as_mut()
        {
            approval.absorb(filed);
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, json: &str) -> AuditRecord {
        AuditRecord {
            id,
            at: OffsetDateTime::UNIX_EPOCH,
            event: String::new(),
            user: None,
            target: None,
            json: json.to_string(),
        }
    }

    #[test]
    fn an_auto_approval_is_one_notice_and_break_glass_is_posted_once() {
        let page = [
            record(
                1,
                r#"{"event":"request.filed","request":"r-aaaa","kind":"access","user":"alice",
                    "target":"db-1","logins":["app"],"duration":"5m","reason":"deploy"}"#,
            ),
            record(
                2,
                r#"{"event":"request.filed","request":"r-bbbb","kind":"access","user":"frank",
                    "target":"db-1","logins":["app"],"duration":"1h","reason":"INC-1"}"#,
            ),
            record(
                3,
                r#"{"event":"request.auto_approved","request":"r-aaaa","user":"alice",
                    "target":"db-1","policy":"databases","rule":"databases.auto_approve[0]",
                    "grant":3}"#,
            ),
            record(
                4,
                r#"{"event":"request.filed","request":"r-cccc","kind":"break_glass",
                    "user":"alice","target":"db-1","reason":"fire"}"#,
            ),
            record(
                5,
                r#"{"event":"break_glass","request":"r-cccc","grant":4,"user":"alice",
                    "target":"db-1","logins":["app"],"reason":"fire",
                    "expires_at":"2026-12-02T11:00:00Z"}"#,
            ),
            record(6, r#"{"event":"grant.created"}"#),
        ];
        let planned = plan(&page);
        let ids: Vec<i64> = planned.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6], "every event is claimed");
        let steps: Vec<Option<Step>> = planned
            .iter()
            .map(|(_, n)| n.as_ref().map(|n| n.step))
            .collect();
        assert_eq!(
            steps,
            vec![
                None,
                Some(Step::Filed),
                Some(Step::AutoApproved),
                None,
                Some(Step::BreakGlass),
                None
            ]
        );
        let auto = planned[2].1.as_ref().unwrap();
        assert_eq!(auto.reason.as_deref(), Some("deploy"));
        assert_eq!(auto.duration.as_deref(), Some("5m"));
        assert_eq!(auto.logins, vec!["app".to_string()]);
    }
}
