//! One task per live session: runs the pump (target output to the user, recorded first),
//! warns before the grant expires, and ends the session on time whatever either peer is doing.
//!
//! The pump runs in its own task so that a user who stopped reading (the pump then waits on
//! the user's flow control forever) cannot delay the supervisor's timers. Ending a session
//! aborts the pump, tells the user why, ends the target leg, and severs the user's connection
//! when their client was not reading. Both legs are traits ([`super::leg`]): nothing here
//! knows which protocol carries them.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use recorder::{RecordingWriter, Stream};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::facts::SessionFacts;
use super::input::SessionInput;
use super::leg::{TargetControl, TargetOutput, UserSide};
use super::registry::{Notice, Registration, Registry, Subscription};
use super::{EndReason, GrantState, pump};
use crate::audit::AuditLog;
use crate::db::{Database, DbError, SessionEnd};
use crate::text::escape_controls;

/// How long the user's client gets to acknowledge the close of a session the bastion ended.
/// Past it a client that was not reading is severed: the whole end must fit in the one second
/// promised.
const CLIENT_CLOSE_GRACE: Duration = Duration::from_millis(400);
/// How long a single control message (warning, close) may wait to be queued.
const CONTROL_SEND_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a session goes on after the recording spool filled up: time to finish the
/// command at hand, while the recording is still being kept (on local disk).
pub const STORAGE_GRACE: Duration = Duration::from_secs(30);
/// How long a pump that is about to finish may take after the user closed: OpenSSH closes
/// on the exit status, a moment before the target's own close arrives.
const PUMP_DRAIN: Duration = Duration::from_millis(200);

/// Where a session's end is written: the database's session index (a fake in tests).
pub trait SessionIndex: Send + Sync + 'static {
    fn session_ended<'a>(
        &'a self,
        id: &'a str,
        end: &'a SessionEnd,
    ) -> BoxFuture<'a, Result<(), DbError>>;
}

impl SessionIndex for Database {
    fn session_ended<'a>(
        &'a self,
        id: &'a str,
        end: &'a SessionEnd,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        Database::session_ended(self, id, end).boxed()
    }
}

/// What every session needs from the daemon, and nothing more: the daemon builds one, tests
/// build their own.
#[derive(Clone)]
pub struct SessionContext {
    pub index: Arc<dyn SessionIndex>,
    pub audit: AuditLog,
    pub registry: Registry,
    /// When to warn before the grant expires (`warn_before`).
    pub warn_before: Arc<[Duration]>,
    /// Cancelled when the daemon shuts down: every session ends with a message.
    pub shutdown: CancellationToken,
    /// Every session task, so shutdown can wait for recordings to be sealed.
    pub tracker: TaskTracker,
}

/// The two legs of a session.
pub struct Legs {
    pub target: Arc<dyn TargetControl>,
    pub output: Box<dyn TargetOutput>,
    pub user: Arc<dyn UserSide>,
}

/// Starts supervising a session whose target is connected and whose recording has begun
/// (`None`: the target has `record = false`). Returns the input side, which the user's
/// connection drives.
pub fn start(
    ctx: SessionContext,
    facts: SessionFacts,
    legs: Legs,
    recording: Option<RecordingWriter>,
    state: GrantState,
) -> SessionInput {
    let (end_tx, end_rx) = mpsc::unbounded_channel();
    let Subscription {
        registration,
        state: state_rx,
        notices,
    } = ctx
        .registry
        .register(facts.grant, &facts.id, &facts.user, facts.fail_open, state);
    let input = SessionInput {
        target: legs.target.clone(),
        recording: recording.clone(),
        stream: if facts.interactive() {
            Stream::TerminalInput
        } else {
            Stream::Stdin
        },
        fail_open: facts.fail_open,
        end: end_tx,
    };
    let tracker = ctx.tracker.clone();
    let supervisor = Supervisor {
        ctx,
        facts,
        user: legs.user,
        target: legs.target,
        recording,
        state_rx,
        end_rx,
        notices,
        _registration: registration,
        anchor: (Instant::now(), OffsetDateTime::now_utc()),
    };
    tracker.spawn(supervisor.run(legs.output));
    input
}

struct Supervisor {
    ctx: SessionContext,
    facts: SessionFacts,
    user: Arc<dyn UserSide>,
    target: Arc<dyn TargetControl>,
    recording: Option<RecordingWriter>,
    state_rx: watch::Receiver<GrantState>,
    end_rx: mpsc::UnboundedReceiver<EndReason>,
    notices: mpsc::UnboundedReceiver<Notice>,
    /// Keeps the session visible to the watcher until the supervisor is done.
    _registration: Registration,
    /// The wall clock read once, at start; later instants are derived from the monotonic
    /// clock, so a wall-clock jump cannot move an expiry (and paused-time tests drive it).
    anchor: (Instant, OffsetDateTime),
}

impl Supervisor {
    async fn run(mut self, output: Box<dyn TargetOutput>) {
        let pump = tokio::spawn(pump::run(
            output,
            self.user.clone(),
            self.recording.clone(),
            self.facts.fail_open,
            self.facts.interactive(),
        ));
        let abort = pump.abort_handle();
        let reason = self.watch(pump).await;
        abort.abort();
        tracing::info!(session = %self.facts.id, user = %self.facts.user, target = %self.facts.target, reason = %reason, "session ended");
        let forced = reason.is_forced() || reason == EndReason::ClientClosed;
        // Without a terminal, the target would leave a command running when its leg drops.
        let kill = forced && !self.facts.interactive();
        let target = self.target.end(kill);
        let user = async {
            if forced {
                self.end_user(&reason).await;
            }
            // Otherwise the pump already sent EOF, the exit status and the close.
        };
        tokio::join!(target, user);
        self.finish(reason).await;
    }

    /// Waits for the reason the session ends, sending the expiry warnings on the way.
    async fn watch(&mut self, mut pump: tokio::task::JoinHandle<EndReason>) -> EndReason {
        let mut warned: Vec<Duration> = Vec::new();
        let mut last_expiry = None;
        let mut storage_deadline: Option<Instant> = None;
        loop {
            let state = self.state_rx.borrow_and_update().clone();
            if let Some(revocation) = state.revoked {
                return EndReason::Revoked { by: revocation.by };
            }
            if state.unverifiable {
                return EndReason::GrantUnverifiable;
            }
            if last_expiry != Some(state.expires_at) {
                // A changed expiry (an extension) re-arms the warnings still ahead, and the
                // user learns the new end on their terminal.
                warned.clear();
                if let Some(previous) = last_expiry
                    && state.expires_at > previous
                {
                    self.notify_user(&format!(
                        "bastion: your access to {} was extended: this session now ends at {}",
                        self.facts.target,
                        clock(state.expires_at)
                    ))
                    .await;
                    self.mark(&format!("extended until {}", clock(state.expires_at)))
                        .await;
                }
                last_expiry = Some(state.expires_at);
            }
            let remaining = self.until(state.expires_at);
            if remaining.is_zero() {
                return EndReason::Expired;
            }
            let expiry = Instant::now() + remaining;
            let next_warning = self
                .ctx
                .warn_before
                .iter()
                .copied()
                .filter(|w| *w < remaining && !warned.contains(w))
                .max();
            let warn_at = next_warning.map(|w| expiry - w).unwrap_or(expiry);
            tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => return EndReason::Shutdown,
                // Before the user's close: a client closes as soon as it has the exit
                // status, which can be before the target's own close reached the pump.
                ended = &mut pump => {
                    return ended.unwrap_or(EndReason::TargetClosed);
                }
                reason = self.end_rx.recv() => {
                    let reason = reason.unwrap_or(EndReason::ClientClosed);
                    if reason == EndReason::ClientClosed
                        && let Ok(Ok(ended)) = timeout(PUMP_DRAIN, &mut pump).await
                    {
                        return ended;
                    }
                    return reason;
                }
                changed = self.state_rx.changed() => {
                    if changed.is_err() {
                        // The registry is gone: only happens while the daemon stops.
                        return EndReason::Shutdown;
                    }
                }
                _ = sleep_until(expiry) => return EndReason::Expired,
                _ = sleep_until(storage_deadline.unwrap_or(expiry)), if storage_deadline.is_some() => {
                    return EndReason::RecordingFailed("recording storage is full".into());
                }
                Some(notice) = self.notices.recv() => match notice {
                    Notice::EndRequested { by } => return EndReason::Terminated { by },
                    Notice::StorageDegraded if storage_deadline.is_none() => {
                        storage_deadline = Some(Instant::now() + STORAGE_GRACE);
                        self.notify_user(&format!(
                            "bastion: warning: recordings cannot be stored safely right now; this session will be closed in {}",
                            humantime::format_duration(STORAGE_GRACE)
                        ))
                        .await;
                        self.mark("warning: recording storage full").await;
                    }
                    Notice::StorageRecovered if storage_deadline.is_some() => {
                        storage_deadline = None;
                        self.notify_user("bastion: recording storage recovered; this session goes on").await;
                        self.mark("recording storage recovered").await;
                    }
                    Notice::StorageDegraded | Notice::StorageRecovered => {}
                },
                _ = sleep_until(warn_at), if next_warning.is_some() => {
                    if let Some(w) = next_warning {
                        warned.push(w);
                        self.warn(w, state.expires_at).await;
                    }
                }
            }
        }
    }

    /// Time left until `at`, zero when it has passed.
    fn until(&self, at: OffsetDateTime) -> Duration {
        let (instant, wall) = self.anchor;
        let now = wall + instant.elapsed();
        Duration::try_from(at - now).unwrap_or(Duration::ZERO)
    }

    async fn warn(&self, before: Duration, expires_at: OffsetDateTime) {
        let text = format!(
            "bastion: warning: your access to {} expires in {} (at {}); this session will be closed then",
            self.facts.target,
            humantime::format_duration(Duration::from_secs(before.as_secs().max(1))),
            clock(expires_at),
        );
        self.notify_user(&text).await;
        self.mark(&format!(
            "warning: expires in {}",
            humantime::format_duration(before)
        ))
        .await;
    }

    /// Records a marker; a failure here is logged, the next output write will end the
    /// session if the recording is broken.
    async fn mark(&self, label: &str) {
        let Some(recording) = &self.recording else {
            return;
        };
        if let Err(e) = recording.marker(label).await {
            tracing::error!(session = %self.facts.id, error = %e, "cannot record marker");
        }
    }

    /// Writes one line to the user's terminal (stderr, so stdout stays the target's alone).
    async fn notify_user(&self, text: &str) {
        let line = if self.facts.interactive() {
            format!("\r\n{text}\r\n")
        } else {
            format!("{text}\n")
        };
        let _ = timeout(CONTROL_SEND_TIMEOUT, self.user.notice(line)).await;
    }

    /// Tells the user why the session ends and closes their side, severing their connection
    /// if their client was not reading.
    async fn end_user(&self, reason: &EndReason) {
        if *reason == EndReason::ClientClosed {
            return;
        }
        let deadline = Instant::now() + CLIENT_CLOSE_GRACE;
        let text = format!("bastion: session closed: {}", self.describe(reason));
        self.notify_user(&text).await;
        let closed_in_time = timeout(CONTROL_SEND_TIMEOUT, self.user.close())
            .await
            .is_ok();
        let acknowledged = tokio::time::timeout_at(deadline, self.user.closed())
            .await
            .is_ok();
        if !acknowledged && (!closed_in_time || self.user.blocked()) {
            tracing::warn!(session = %self.facts.id, "client is not reading; severing its connection");
            self.user.sever();
        }
    }

    fn describe(&self, reason: &EndReason) -> String {
        match reason {
            EndReason::Expired => format!("your grant for {} expired", self.facts.target),
            EndReason::Revoked { by } => {
                format!(
                    "your grant for {} was revoked by {}",
                    self.facts.target,
                    escape_controls(by)
                )
            }
            EndReason::GrantUnverifiable => {
                "the bastion cannot re-check your grant right now".to_string()
            }
            EndReason::RecordingFailed(_) => {
                "the session cannot be recorded safely right now".to_string()
            }
            EndReason::Shutdown => "the bastion is shutting down".to_string(),
            EndReason::Terminated { by } => format!("ended by {}", escape_controls(by)),
            other => escape_controls(&other.to_string()),
        }
    }

    /// Seals the recording and writes the session's end to the database and audit log.
    async fn finish(self, reason: EndReason) {
        let facts = &self.facts;
        // `finish` writes the `end: REASON` marker itself.
        let (bytes, complete) = match &self.recording {
            Some(recording) => match recording.finish(reason.code()).await {
                Ok(summary) => (summary.raw_bytes, summary.complete),
                Err(e) => {
                    tracing::error!(session = %facts.id, error = %e, "cannot finish recording");
                    (0, false)
                }
            },
            // Not recorded: nothing was kept, so nothing is complete.
            None => (0, false),
        };
        let end = SessionEnd {
            reason: reason.code().to_string(),
            bytes,
            recording_complete: complete,
        };
        if let Err(e) = self.ctx.index.session_ended(&facts.id, &end).await {
            tracing::error!(session = %facts.id, error = %e, "cannot record session end");
        }
        self.ctx
            .audit
            .record(facts.end_event(reason.code(), bytes, complete));
    }
}

fn clock(at: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| at.to_string())
}
