//! Waking every node when something that can end sessions changed: on PostgreSQL, each such
//! write also runs `pg_notify('bastion_sessions', '')` (inside its transaction where it has
//! one, so the notification goes out at commit) and every daemon listens on that channel.
//! The watcher's `grant_poll` stays the fallback: a notification is only a reason to look now,
//! and one lost while a listener reconnects costs at most one poll interval. SQLite has one
//! node, so there is nobody to wake.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::store::{Database, Pool};

/// The PostgreSQL channel that session-ending writes notify.
pub const SESSIONS_CHANNEL: &str = "bastion_sessions";

const NOTIFY_SQL: &str = "SELECT pg_notify('bastion_sessions', '')";

/// The longest wait between two attempts to listen again after the connection failed.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Notifications that something which can end sessions changed. Dropping it stops listening.
#[derive(Debug)]
pub struct Changes {
    wakeups: mpsc::Receiver<()>,
    task: JoinHandle<()>,
}

impl Changes {
    /// Waits for the next change (several coalesce into one). Also wakes after the listener
    /// had to reconnect, since changes made meanwhile were missed. Cancel-safe. `None` only if
    /// the listening task ended, which it does not do on its own.
    pub async fn next(&mut self) -> Option<()> {
        self.wakeups.recv().await
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Database {
    /// Listens for changes from every node: `None` on SQLite. The first `LISTEN` is in place
    /// when this returns (if the server could be reached), so no change made after it is
    /// missed; later connection losses are retried in the background.
    pub async fn changes(&self) -> Option<Changes> {
        let Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        // A pool of its own: closing the main pool at shutdown must not wait for the
        // listener's connection, nor may the listener take one of the queries' connections.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*pool.connect_options()).clone());
        let first = listen(&own).await;
        if let Err(e) = &first {
            tracing::warn!(error = %e, "cannot listen for changes from other nodes yet; polling meanwhile");
        }
        let (tx, wakeups) = mpsc::channel(1);
        let task = tokio::spawn(relay(own, first.ok(), tx));
        Some(Changes { wakeups, task })
    }

    /// Wakes every node's watcher after a write outside a transaction. Best effort: the write
    /// is done, and a lost notification costs one `grant_poll`.
    pub(super) async fn notify_sessions(&self) {
        if let Pool::Postgres(pool) = &self.pool
            && let Err(e) = sqlx::query(NOTIFY_SQL).execute(pool).await
        {
            tracing::warn!(error = %e, "cannot notify other nodes of a change; they see it at their next poll");
        }
    }

    /// The statement to run inside a transaction so that it notifies at commit: `None` on
    /// SQLite.
    pub(super) fn notify_sql(&self) -> Option<&'static str> {
        match self.pool {
            Pool::Postgres(_) => Some(NOTIFY_SQL),
            Pool::Sqlite(_) => None,
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(SESSIONS_CHANNEL).await?;
    Ok(listener)
}

/// Passes notifications on until the receiver is gone, listening again after failures.
async fn relay(pool: PgPool, mut listener: Option<PgListener>, tx: mpsc::Sender<()>) {
    let mut retry = Duration::from_millis(250);
    loop {
        let Some(active) = listener.as_mut() else {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(MAX_RETRY);
            match listen(&pool).await {
                Ok(fresh) => {
                    tracing::info!("listening for changes from other nodes again");
                    listener = Some(fresh);
                    retry = Duration::from_millis(250);
                    // Whatever changed while nobody listened is looked at now.
                    let _ = tx.try_send(());
                }
                Err(e) => tracing::debug!(error = %e, "cannot listen for changes yet"),
            }
            continue;
        };
        let received = tokio::select! {
            _ = tx.closed() => return,
            received = active.try_recv() => received,
        };
        match received {
            // A full channel already holds a wakeup: one is as good as several.
            Ok(Some(_)) | Ok(None) => {
                let _ = tx.try_send(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection that listens for changes from other nodes; polling until it is back");
                listener = None;
                let _ = tx.try_send(());
            }
        }
    }
}
