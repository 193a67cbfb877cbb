//! One task per live session: pumps the target's output to the user (recorded first), warns
//! before the grant expires, and ends the session on time whatever either peer is doing.
//!
//! The pump runs in its own task so that a user who stopped reading (the pump then waits on
//! the channel window forever) cannot delay the supervisor's timers. Ending a session aborts
//! the pump, tells the user why, and severs both connections with [`Cutoff`] when a polite
//! close does not complete within [`CLIENT_CLOSE_GRACE`].

use std::sync::Arc;
use std::time::Duration;

use recorder::RecordingWriter;
use russh::server::{self, Handle as ClientHandle};
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig, client};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::cutoff::Cutoff;
use super::input::SessionInput;
use super::registry::{Notice, Registration, Subscription};
use super::{EndReason, GrantState};
use crate::audit::AuditEvent;
use crate::db::{GrantId, SessionEnd};
use crate::serve::Daemon;
use crate::ssh::target::{TargetHandler, TargetSession};

/// How long the user's client gets to acknowledge the close of a session the bastion ended.
/// Past it the connection is severed: the whole end must fit in the one second promised.
const CLIENT_CLOSE_GRACE: Duration = Duration::from_millis(400);
/// How long a single control message (warning, exit status, close) may wait to be queued.
const CONTROL_SEND_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a session goes on after the recording spool filled up: time to finish the
/// command at hand, while the recording is still being kept (on local disk).
const STORAGE_GRACE: Duration = Duration::from_secs(30);
/// How long a pump that is about to finish may take after the user closed: OpenSSH closes
/// on the exit status, a moment before the target's own close arrives.
const PUMP_DRAIN: Duration = Duration::from_millis(200);
/// How long the target gets to act on the kill signal and disconnect before its socket is cut.
const TARGET_CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Who and what a session is, fixed when it starts.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant: GrantId,
    /// The user asked for a PTY.
    pub interactive: bool,
    /// The session goes on when its recording fails or the spool fills (`fail_open`, or a
    /// target that is not recorded at all).
    pub fail_open: bool,
}

/// The user's side of the session: their channel on the bastion's SSH server.
pub struct ClientSide {
    pub handle: ClientHandle,
    pub channel: ChannelId,
    pub tx: Arc<ChannelWriteHalf<server::Msg>>,
    pub cutoff: Arc<Cutoff>,
    /// Notified by the SSH handler when the client closes this channel.
    pub closed: Arc<Notify>,
}

/// Starts supervising a session whose target is connected and whose recording has begun
/// (`None`: the target has `record = false`). Returns the input side, which the SSH handler
/// drives.
pub fn start(
    daemon: Arc<Daemon>,
    info: SessionInfo,
    client: ClientSide,
    target: TargetSession,
    recording: Option<RecordingWriter>,
    state: GrantState,
) -> SessionInput {
    let TargetSession {
        handle: target_handle,
        channel,
        cutoff: target_cutoff,
        early,
    } = target;
    let (target_rx, target_tx) = channel.split();
    let target_tx = Arc::new(target_tx);
    let (end_tx, end_rx) = mpsc::unbounded_channel();
    let Subscription {
        registration,
        state: state_rx,
        notices,
    } = daemon
        .sessions
        .register(info.grant, &info.id, info.fail_open, state);
    let input = SessionInput {
        target: target_tx.clone(),
        recording: recording.clone(),
        fail_open: info.fail_open,
        end: end_tx,
    };
    let supervisor = Supervisor {
        daemon: daemon.clone(),
        info,
        client,
        target_handle: Some(target_handle),
        target_tx,
        target_cutoff,
        recording,
        state_rx,
        end_rx,
        notices,
        _registration: registration,
    };
    daemon.tracker.spawn(supervisor.run(early, target_rx));
    input
}

struct Supervisor {
    daemon: Arc<Daemon>,
    info: SessionInfo,
    client: ClientSide,
    /// Taken when the session ends.
    target_handle: Option<client::Handle<TargetHandler>>,
    target_tx: Arc<ChannelWriteHalf<client::Msg>>,
    target_cutoff: Cutoff,
    recording: Option<RecordingWriter>,
    state_rx: watch::Receiver<GrantState>,
    end_rx: mpsc::UnboundedReceiver<EndReason>,
    notices: mpsc::UnboundedReceiver<Notice>,
    /// Keeps the session visible to the grant watcher until the supervisor is done.
    _registration: Registration,
}

impl Supervisor {
    async fn run(mut self, early: Vec<ChannelMsg>, target_rx: ChannelReadHalf) {
        let pump = tokio::spawn(pump(
            early,
            target_rx,
            self.client.tx.clone(),
            self.client.handle.clone(),
            self.client.channel,
            self.recording.clone(),
            self.info.fail_open,
        ));
        let abort = pump.abort_handle();
        let reason = self.watch(pump).await;
        abort.abort();
        tracing::info!(session = %self.info.id, user = %self.info.user, target = %self.info.target, reason = %reason, "session ended");
        let forced = reason.is_forced() || reason == EndReason::ClientClosed;
        let target = end_target(
            self.target_handle.take(),
            &self.target_tx,
            &self.target_cutoff,
            // Without a PTY, sshd leaves a command running when its connection drops.
            forced && !self.info.interactive,
        );
        let client = async {
            if forced {
                self.end_client(&reason).await;
            } else {
                // The target ended it: exit status and EOF already went to the user.
                let _ = timeout(CONTROL_SEND_TIMEOUT, self.client.tx.close()).await;
            }
        };
        tokio::join!(target, client);
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
                // A changed expiry (an extension) re-arms the warnings still ahead.
                warned.clear();
                last_expiry = Some(state.expires_at);
            }
            let remaining = until(state.expires_at);
            if remaining.is_zero() {
                return EndReason::Expired;
            }
            let expiry = Instant::now() + remaining;
            let next_warning = self
                .daemon
                .config
                .warn_before
                .iter()
                .copied()
                .filter(|w| *w < remaining && !warned.contains(w))
                .max();
            let warn_at = next_warning.map(|w| expiry - w).unwrap_or(expiry);
            tokio::select! {
                biased;
                _ = self.daemon.shutdown.cancelled() => return EndReason::Shutdown,
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

    async fn warn(&self, before: Duration, expires_at: OffsetDateTime) {
        let text = format!(
            "bastion: warning: your access to {} expires in {} (at {}); this session will be closed then",
            self.info.target,
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
            tracing::error!(session = %self.info.id, error = %e, "cannot record marker");
        }
    }

    /// Writes one line to the user's terminal (stderr, so stdout stays the target's alone).
    async fn notify_user(&self, text: &str) {
        let line = if self.info.interactive {
            format!("\r\n{text}\r\n")
        } else {
            format!("{text}\n")
        };
        let _ = timeout(
            CONTROL_SEND_TIMEOUT,
            self.client
                .handle
                .extended_data(self.client.channel, 1, line.into_bytes()),
        )
        .await;
    }

    /// Tells the user why the session ends and closes their channel, severing the
    /// connection if their client does not acknowledge in time.
    async fn end_client(&self, reason: &EndReason) {
        if *reason == EndReason::ClientClosed {
            return;
        }
        let deadline = Instant::now() + CLIENT_CLOSE_GRACE;
        let text = format!("bastion: session closed: {}", self.describe(reason));
        self.notify_user(&text).await;
        let _ = timeout(
            CONTROL_SEND_TIMEOUT,
            self.client.handle.close(self.client.channel),
        )
        .await;
        if tokio::time::timeout_at(deadline, self.client.closed.notified())
            .await
            .is_err()
        {
            tracing::warn!(session = %self.info.id, "client did not close in time; severing its connection");
            self.client.cutoff.cut();
        }
    }

    fn describe(&self, reason: &EndReason) -> String {
        match reason {
            EndReason::Expired => format!("your grant for {} expired", self.info.target),
            EndReason::Revoked { by } => {
                format!("your grant for {} was revoked by {by}", self.info.target)
            }
            EndReason::GrantUnverifiable => {
                "the bastion cannot re-check your grant right now".to_string()
            }
            EndReason::RecordingFailed(_) => {
                "the session cannot be recorded safely right now".to_string()
            }
            EndReason::Shutdown => "the bastion is shutting down".to_string(),
            EndReason::Terminated { by } => format!("ended by {by}"),
            other => other.to_string(),
        }
    }

    /// Seals the recording and writes the session's end to the database and audit log.
    async fn finish(self, reason: EndReason) {
        let info = &self.info;
        // `finish` writes the `end: REASON` marker itself.
        let (bytes, complete) = match &self.recording {
            Some(recording) => match recording.finish(reason.code()).await {
                Ok(summary) => (summary.raw_bytes, summary.complete),
                Err(e) => {
                    tracing::error!(session = %info.id, error = %e, "cannot finish recording");
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
        if let Err(e) = self.daemon.store.session_ended(&info.id, &end).await {
            tracing::error!(session = %info.id, error = %e, "cannot record session end");
        }
        self.daemon.audit.record(AuditEvent::SessionEnd {
            session: info.id.clone(),
            user: info.user.clone(),
            target: info.target.clone(),
            reason: reason.code().to_string(),
            bytes,
            recording_complete: complete,
        });
    }
}

/// Ends the target side: optionally kill its command, disconnect, wait briefly for the
/// disconnect to be written, then sever the socket whatever happened.
async fn end_target(
    handle: Option<client::Handle<TargetHandler>>,
    tx: &ChannelWriteHalf<client::Msg>,
    cutoff: &Cutoff,
    kill: bool,
) {
    let polite = async {
        let Some(mut handle) = handle else { return };
        if kill {
            let _ = tx.signal(Sig::KILL).await;
        }
        let _ = handle
            .disconnect(
                russh::Disconnect::ByApplication,
                "session ended by bastion",
                "en",
            )
            .await;
        // The handle resolves once the connection task has written the disconnect and
        // ended; cutting before that would drop the kill signal unsent.
        let _ = (&mut handle).await;
    };
    let _ = timeout(TARGET_CLOSE_GRACE, polite).await;
    cutoff.cut();
}

/// Copies the target's output to the user, recording it first. Returns why it stopped.
async fn pump(
    early: Vec<ChannelMsg>,
    mut target_rx: ChannelReadHalf,
    client: Arc<ChannelWriteHalf<server::Msg>>,
    handle: ClientHandle,
    channel: ChannelId,
    recording: Option<RecordingWriter>,
    fail_open: bool,
) -> EndReason {
    let mut recording = recording;
    let mut exit = None;
    let mut early = early.into_iter();
    loop {
        let msg = match early.next() {
            Some(msg) => msg,
            None => match target_rx.wait().await {
                Some(msg) => msg,
                None => break,
            },
        };
        let (data, ext) = match msg {
            ChannelMsg::Data { data } => (data, None),
            ChannelMsg::ExtendedData { data, ext } => (data, Some(ext)),
            ChannelMsg::ExitStatus { exit_status } => {
                let _ = client.exit_status(exit_status).await;
                exit = Some(EndReason::Exit(exit_status));
                continue;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                exit = Some(EndReason::Signal(format!("{signal_name:?}")));
                let _ = handle
                    .exit_signal_request(channel, signal_name, core_dumped, error_message, lang_tag)
                    .await;
                continue;
            }
            ChannelMsg::Eof => {
                let _ = client.eof().await;
                continue;
            }
            ChannelMsg::Close => break,
            _ => continue,
        };
        if let Some(writer) = &recording
            && let Err(e) = writer.output(&data).await
        {
            if !fail_open {
                return EndReason::RecordingFailed(e.to_string());
            }
            tracing::error!(error = %e, "recording failed; target is fail-open, session goes on unrecorded");
            recording = None;
        }
        let sent = match ext {
            None => client.data_bytes(data).await,
            Some(ext) => client.extended_data_bytes(ext, data).await,
        };
        if sent.is_err() {
            return EndReason::ClientClosed;
        }
    }
    exit.unwrap_or(EndReason::TargetClosed)
}

/// Time left until `at`, zero when it has passed.
fn until(at: OffsetDateTime) -> Duration {
    Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
}

fn clock(at: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| at.to_string())
}
