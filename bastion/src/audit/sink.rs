//! The database copy of the audit log: a bounded queue and one writer task that stores events
//! in batches, so recording an event never waits on the database.
//!
//! The file stays the primary record. What the database copy can lose, it loses loudly: an
//! event that finds the queue full, or whose batch the database refuses (after one retry when
//! the database was fine until then), is in the file only. Each such event is counted
//! ([`DatabaseCopy::lost`]) and reported through `tracing` at most once per
//! [`COMPLAINT_INTERVAL`], with the number lost since the last report.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::AuditLog;
use crate::db::{Database, DbError, NewAuditEvent};

/// Events waiting for the writer at most; beyond it, events reach the file only.
pub const QUEUE_CAPACITY: usize = 4096;
/// Events stored by one `INSERT` transaction at most.
const BATCH: usize = 256;
/// How long the writer waits before retrying a batch the database refused.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Reports of lost events are at least this far apart.
pub const COMPLAINT_INTERVAL: Duration = Duration::from_secs(60);

/// How the database copy is doing, for the CLI's warning and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseCopy {
    /// Events stored in the database.
    pub stored: u64,
    /// Events whose database copy was lost: they are in the file only.
    pub lost: u64,
    /// Why the last lost event was lost.
    pub last_error: Option<String>,
}

impl AuditLog {
    /// Sends every event recorded from now on to `db` as well, through a bounded queue and a
    /// writer task on the current Tokio runtime; `record` never waits for it. The owner of
    /// `db` should [`flush`](AuditLog::flush) before closing it. Attaching a second database
    /// does nothing but log a warning.
    ///
    /// When the database is down or too slow, the events recorded meanwhile are in the file
    /// only: their database copy is lost, counted in [`AuditLog::database_copy`] and logged
    /// (see the `sink` module).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn attach_database(&self, db: Database) {
        self.attach(Box::pin(std::future::ready(Ok(db))), false);
    }

    /// Like [`attach_database`](AuditLog::attach_database), for a process that has not opened
    /// the database yet: the writer opens `database_url` when the first event arrives, and
    /// closes it when the last handle on this log is dropped.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn attach_database_url(&self, database_url: String) {
        self.attach(
            Box::pin(async move { Database::open(&database_url).await }),
            true,
        );
    }

    fn attach(&self, connect: Connect, owned: bool) {
        let mut started = false;
        self.inner.sink.get_or_init(|| {
            started = true;
            DatabaseSink::start(connect, owned)
        });
        if !started {
            tracing::warn!("the audit log already has a database attached; ignoring another");
        }
    }

    /// Waits until every event recorded before the call is stored in the attached database or
    /// counted lost; returns at once without one. The CLI calls it before exiting and the
    /// daemon at shutdown, before closing the database.
    pub async fn flush(&self) {
        if let Some(sink) = self.inner.sink.get() {
            sink.flush().await;
        }
    }

    /// How the database copy is doing; `None` without a database attached.
    pub fn database_copy(&self) -> Option<DatabaseCopy> {
        self.inner.sink.get().map(DatabaseSink::status)
    }
}

/// The columns an export filters on, read back from the line itself so they always say what
/// the file says.
#[derive(Deserialize)]
struct Columns {
    event: String,
    user: Option<String>,
    target: Option<String>,
}

/// Where the writer gets its database from.
pub(super) type Connect = Pin<Box<dyn Future<Output = Result<Database, DbError>> + Send>>;

/// The sending side, held by the audit log.
#[derive(Debug)]
pub(super) struct DatabaseSink {
    queue: mpsc::Sender<Message>,
    state: Arc<State>,
}

#[derive(Debug)]
enum Message {
    Event(NewAuditEvent),
    /// Answered once every event queued before it is stored or counted lost.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct State {
    stored: AtomicU64,
    lost: AtomicU64,
    complaints: Mutex<Complaints>,
}

#[derive(Debug, Default)]
struct Complaints {
    last_report: Option<Instant>,
    unreported: u64,
    last_error: Option<String>,
}

impl DatabaseSink {
    /// Starts the writer on the current Tokio runtime. With `owned`, the writer closes the
    /// database when the audit log is gone (it opened it itself); else its owner does.
    ///
    /// # Panics
    /// Outside a Tokio runtime, like `tokio::spawn`.
    pub(super) fn start(connect: Connect, owned: bool) -> DatabaseSink {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let state = Arc::new(State::default());
        tokio::spawn(write_batches(connect, owned, receiver, state.clone()));
        DatabaseSink { queue, state }
    }

    /// Queues the audit log `line` (without its newline) written at `at`.
    pub(super) fn offer_line(&self, at: OffsetDateTime, line: Vec<u8>) {
        let columns: Columns = match serde_json::from_slice(&line) {
            Ok(columns) => columns,
            Err(err) => {
                return self
                    .state
                    .lose(1, &format!("cannot read back the audit line: {err}"));
            }
        };
        // Lines are serde_json's output, hence UTF-8; the lossy path is never taken.
        let json = String::from_utf8(line)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
        self.offer(NewAuditEvent {
            at,
            event: columns.event,
            user: columns.user,
            target: columns.target,
            json,
        });
    }

    /// Queues `event` without waiting; counts it lost when the queue is full or the writer is
    /// gone.
    fn offer(&self, event: NewAuditEvent) {
        match self.queue.try_send(Message::Event(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.state.lose(
                1,
                &format!("the queue to the database is full ({QUEUE_CAPACITY} events)"),
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.state.lose(1, "the database writer has stopped")
            }
        }
    }

    /// Waits until every event offered before is stored or counted lost.
    pub(super) async fn flush(&self) {
        let (done, answered) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            // An error means the writer stopped: nothing more will be stored.
            let _ = answered.await;
        }
    }

    pub(super) fn status(&self) -> DatabaseCopy {
        self.state.status()
    }
}

impl State {
    fn lose(&self, count: u64, why: &str) {
        self.lost.fetch_add(count, Ordering::Relaxed);
        let mut complaints = self
            .complaints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        complaints.unreported += count;
        complaints.last_error = Some(why.to_string());
        let now = Instant::now();
        let due = complaints
            .last_report
            .is_none_or(|last| now.saturating_duration_since(last) >= COMPLAINT_INTERVAL);
        if due {
            tracing::error!(
                lost = complaints.unreported,
                lost_total = self.lost.load(Ordering::Relaxed),
                reason = why,
                "audit events were written to the audit log file but NOT to the database \
                 (exports from the database will miss them)"
            );
            complaints.last_report = Some(now);
            complaints.unreported = 0;
        }
    }

    fn status(&self) -> DatabaseCopy {
        DatabaseCopy {
            stored: self.stored.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            last_error: self
                .complaints
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_error
                .clone(),
        }
    }
}

/// The writer: takes what is queued, up to [`BATCH`] events, stores it in one transaction,
/// answers the flushes queued behind it, and again, until the audit log is gone.
async fn write_batches(
    connect: Connect,
    owned: bool,
    mut queue: mpsc::Receiver<Message>,
    state: Arc<State>,
) {
    // Connecting waits for the first message: a CLI command that records nothing never
    // connects, and one that does has opened (and migrated) its own store by then.
    let Some(first) = queue.recv().await else {
        return;
    };
    let mut db = None;
    let mut connect = Some(connect);
    let mut open_error = String::new();
    let mut healthy = true;
    let mut pending = Some(first);
    loop {
        let mut events = Vec::new();
        let mut flush = None;
        let mut next = pending.take();
        while let Some(message) = next {
            match message {
                Message::Event(event) => events.push(event),
                // Later events wait for the next batch so a flush answers for no more than
                // what came before it.
                Message::Flush(done) => {
                    flush = Some(done);
                    break;
                }
            }
            if events.len() >= BATCH {
                break;
            }
            next = queue.try_recv().ok();
        }
        if !events.is_empty() {
            if db.is_none()
                && let Some(opening) = connect.take()
            {
                match opening.await {
                    Ok(opened) => db = Some(opened),
                    // Tried once: every event of this log is then lost the same way, counted.
                    Err(err) => open_error = format!("cannot open the database: {err}"),
                }
            }
            match &db {
                Some(db) => healthy = store(db, &events, healthy, &state).await,
                None => state.lose(events.len() as u64, &open_error),
            }
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
        match queue.recv().await {
            Some(message) => pending = Some(message),
            None => break,
        }
    }
    if owned && let Some(db) = db {
        db.close().await;
    }
}

/// Stores one batch; returns whether the database took it. A batch that fails after the
/// database was healthy is retried once after [`RETRY_AFTER`] (a restart, a lock held too
/// long); during an outage each batch gets one try, so the queue keeps moving.
async fn store(db: &Database, events: &[NewAuditEvent], healthy: bool, state: &State) -> bool {
    let mut result = db.insert_audit_events(events).await;
    if result.is_err() && healthy {
        tokio::time::sleep(RETRY_AFTER).await;
        result = db.insert_audit_events(events).await;
    }
    match result {
        Ok(()) => {
            state
                .stored
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            if !healthy {
                tracing::info!(
                    lost_total = state.lost.load(Ordering::Relaxed),
                    "the database takes audit events again"
                );
            }
            true
        }
        Err(err) => {
            state.lose(events.len() as u64, &format!("the database failed: {err}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_costs_its_copy_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        // Its directory would have to be inside a file.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        log.attach_database_url(format!("sqlite://{}/bastion.db", file.display()));
        // A second database is ignored (it would be created if it were opened).
        let second = dir.path().join("ignored.db");
        log.attach_database_url(format!("sqlite://{}", second.display()));
        for grant in [1, 2] {
            log.record(AuditEvent::GrantRevoked {
                grant,
                user: "alice".into(),
                target: "db-1".into(),
                by: "carol".into(),
                client: None,
            });
            log.flush().await;
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "the file has every line");
        let copy = log.database_copy().unwrap();
        assert_eq!((copy.stored, copy.lost), (0, 2));
        let error = copy.last_error.unwrap();
        assert!(error.starts_with("cannot open the database"), "{error}");
        assert!(!second.exists());
    }
}
