//! Webhook notifications (`[[notify]]`): every new request, decision, cancellation, expiry and
//! break glass is posted to each configured Slack or Teams webhook.
//!
//! The events come from the database's copy of the audit log (`feed`), so whichever face or
//! node took a step, one node posts it once. Payloads are built from the event's facts
//! (`notice`, then `slack` or `teams`); delivery (`delivery`) runs in background tasks with a
//! bounded queue per webhook, retries with backoff, and counts of what was delivered or given
//! up. Nothing here is on the path of a request or a session: a dead webhook costs its own
//! queue, never a user's time.

mod delivery;
mod feed;
mod notice;
pub mod slack;
mod teams;

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::db::Database;

pub use delivery::{MAX_ATTEMPTS, NotifyCounts, NotifyStats, QUEUE_CAPACITY, TIMEOUT};
pub use notice::{NOTIFIED_EVENTS, Notice, Step};
pub use slack::{APPROVE_ACTION, DENY_ACTION, slack_outcome};

/// Starts the notifier on `tracker` when `config.notify` names webhooks: one task reading
/// request events from `db`, one worker per webhook; all stop at `shutdown`. Returns the
/// delivery counts (all zero, and staying so, without webhooks).
pub fn spawn(
    tracker: &TaskTracker,
    db: Database,
    config: Arc<Config>,
    shutdown: CancellationToken,
) -> Arc<NotifyStats> {
    let stats = Arc::new(NotifyStats::default());
    if config.notify.is_empty() {
        return stats;
    }
    let client = match delivery::client() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "webhook notifications are off: cannot build the HTTP client");
            return stats;
        }
    };
    let webhooks = config
        .notify
        .iter()
        .map(|notify| {
            delivery::Webhook::start(
                notify,
                client.clone(),
                stats.clone(),
                tracker,
                shutdown.clone(),
            )
        })
        .collect::<Vec<_>>();
    tracing::info!(
        webhooks = %config.notify.iter().map(|n| delivery::shown(&n.url)).collect::<Vec<_>>().join(", "),
        "posting request events to webhooks"
    );
    let slack_ids: HashMap<String, String> = config
        .users
        .iter()
        .filter_map(|user| Some((user.name.clone(), user.slack_id.clone()?)))
        .collect();
    let feed = feed::Feed {
        db,
        node_id: config.node_id.clone(),
        webhooks,
        slack_ids,
    };
    tracker.spawn(feed.run(shutdown));
    stats
}
