//! The session supervisor in process, with a fake target leg and a fake user side, under
//! paused tokio time: warnings at their offsets, the end at expiry (also when the user never
//! reads), revocation, an end request, the storage-degraded path and the order of the end of
//! a normal session. Each test runs in milliseconds of real time and is deterministic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bastion::audit::AuditLog;
use bastion::db::{DbError, SessionEnd};
use bastion::session::facts::{SessionFacts, Terminal};
use bastion::session::input::SessionInput;
use bastion::session::leg::{
    Exit, LegClosed, OutputStream, Signal, TargetControl, TargetEvent, TargetOutput, TermSize,
    UserSide,
};
use bastion::session::registry::{Notice, Registry};
use bastion::session::supervisor::{self, Legs, STORAGE_GRACE, SessionContext, SessionIndex};
use bastion::session::{GrantState, Revocation};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const GRANT: i64 = 42;

/// What the user saw, with the (paused) time it arrived.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Output(OutputStream, Vec<u8>),
    Notice(String),
    Eof,
    Exit(Exit),
    Close,
    Severed,
}

#[derive(Default)]
struct FakeUser {
    seen: Mutex<Vec<(Instant, Seen)>>,
    /// A client that stopped reading: output never completes.
    stalled: bool,
    blocked: std::sync::atomic::AtomicBool,
    closed: Notify,
}

impl FakeUser {
    fn push(&self, what: Seen) {
        self.seen.lock().unwrap().push((Instant::now(), what));
    }
    fn seen(&self) -> Vec<(Instant, Seen)> {
        self.seen.lock().unwrap().clone()
    }
    fn notices(&self) -> Vec<(Instant, String)> {
        self.seen()
            .into_iter()
            .filter_map(|(at, s)| match s {
                Seen::Notice(text) => Some((at, text)),
                _ => None,
            })
            .collect()
    }
}

impl UserSide for FakeUser {
    fn output(&self, stream: OutputStream, data: Bytes) -> BoxFuture<'_, Result<(), LegClosed>> {
        async move {
            if self.stalled {
                self.blocked
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            self.push(Seen::Output(stream, data.to_vec()));
            Ok(())
        }
        .boxed()
    }
    fn notice(&self, line: String) -> BoxFuture<'_, ()> {
        async move { self.push(Seen::Notice(line)) }.boxed()
    }
    fn eof(&self) -> BoxFuture<'_, ()> {
        async move { self.push(Seen::Eof) }.boxed()
    }
    fn exit(&self, exit: Exit) -> BoxFuture<'_, ()> {
        async move { self.push(Seen::Exit(exit)) }.boxed()
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        async move { self.push(Seen::Close) }.boxed()
    }
    fn closed(&self) -> BoxFuture<'_, ()> {
        // Like russh: the client's answer to the bastion's close is never reported.
        async move { self.closed.notified().await }.boxed()
    }
    fn blocked(&self) -> bool {
        self.blocked.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn sever(&self) {
        self.push(Seen::Severed);
    }
}

/// The target: events are fed by the test; what the session did to it is kept.
#[derive(Default)]
struct FakeTarget {
    ended: Mutex<Option<(Instant, bool)>>,
    input: Mutex<Vec<u8>>,
}

impl TargetControl for FakeTarget {
    fn send(&self, data: Bytes) -> BoxFuture<'_, Result<(), LegClosed>> {
        async move {
            self.input.lock().unwrap().extend_from_slice(&data);
            Ok(())
        }
        .boxed()
    }
    fn eof(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    fn resize(&self, _size: TermSize) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    fn signal(&self, _signal: Signal) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    fn end(&self, kill: bool) -> BoxFuture<'_, ()> {
        async move {
            *self.ended.lock().unwrap() = Some((Instant::now(), kill));
        }
        .boxed()
    }
}

struct FakeOutput(mpsc::UnboundedReceiver<TargetEvent>);

impl TargetOutput for FakeOutput {
    fn next(&mut self) -> BoxFuture<'_, TargetEvent> {
        async move { self.0.recv().await.unwrap_or(TargetEvent::Closed) }.boxed()
    }
}

#[derive(Default)]
struct FakeIndex {
    ended: Mutex<Vec<(String, SessionEnd)>>,
    done: Notify,
}

impl SessionIndex for FakeIndex {
    fn session_ended<'a>(
        &'a self,
        id: &'a str,
        end: &'a SessionEnd,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        async move {
            self.ended
                .lock()
                .unwrap()
                .push((id.to_string(), end.clone()));
            self.done.notify_one();
            Ok(())
        }
        .boxed()
    }
}

struct Bed {
    /// Dropping the input side means the user's client went away.
    _input: SessionInput,
    user: Arc<FakeUser>,
    target: Arc<FakeTarget>,
    feed: mpsc::UnboundedSender<TargetEvent>,
    index: Arc<FakeIndex>,
    registry: Registry,
    shutdown: CancellationToken,
    started: Instant,
    /// The wall clock at the start, from which grant expiries are set.
    wall: OffsetDateTime,
    _audit_dir: tempfile::TempDir,
    audit_path: std::path::PathBuf,
}

impl Bed {
    fn start(expires_in: Duration, interactive: bool, stalled: bool) -> Bed {
        let audit_dir = tempfile::tempdir().unwrap();
        let audit_path = audit_dir.path().join("audit.jsonl");
        let index = Arc::new(FakeIndex::default());
        let registry = Registry::default();
        let shutdown = CancellationToken::new();
        let ctx = SessionContext {
            index: index.clone(),
            audit: AuditLog::open(&audit_path).unwrap(),
            registry: registry.clone(),
            warn_before: vec![Duration::from_secs(300), Duration::from_secs(60)].into(),
            shutdown: shutdown.clone(),
            tracker: TaskTracker::new(),
        };
        let user = Arc::new(FakeUser {
            stalled,
            ..FakeUser::default()
        });
        let target = Arc::new(FakeTarget::default());
        let (feed, rx) = mpsc::unbounded_channel();
        let now = OffsetDateTime::now_utc();
        let facts = SessionFacts {
            id: "s-1".into(),
            user: "alice".into(),
            target: "db-1".into(),
            login: "app".into(),
            grant: GRANT,
            request: None,
            command: if interactive {
                None
            } else {
                Some("tail -f log".into())
            },
            terminal: interactive.then(|| Terminal {
                term: "xterm".into(),
                cols: 80,
                rows: 24,
            }),
            client: "127.0.0.1:1".into(),
            node: "test".into(),
            recorded: false,
            fail_open: false,
            started_at: now,
        };
        let state = GrantState {
            expires_at: now + expires_in,
            revoked: None,
            unverifiable: false,
        };
        let legs = Legs {
            target: target.clone(),
            output: Box::new(FakeOutput(rx)),
            user: user.clone(),
        };
        let input = supervisor::start(ctx, facts, legs, None, state);
        Bed {
            _input: input,
            user,
            target,
            feed,
            index,
            registry,
            shutdown,
            started: Instant::now(),
            wall: now,
            _audit_dir: audit_dir,
            audit_path,
        }
    }

    /// Waits (in paused time) until the session wrote its end; returns the reason code.
    async fn ended(&self) -> String {
        loop {
            if let Some((_, end)) = self.index.ended.lock().unwrap().first() {
                return end.reason.clone();
            }
            tokio::time::timeout(Duration::from_secs(3600), self.index.done.notified())
                .await
                .expect("the session never ended");
        }
    }

    fn since_start(&self, at: Instant) -> Duration {
        at - self.started
    }
}

fn near(actual: Duration, expected: Duration) -> bool {
    actual.abs_diff(expected) <= Duration::from_millis(50)
}

#[tokio::test(start_paused = true)]
async fn warnings_at_their_offsets_then_the_end_at_expiry() {
    let bed = Bed::start(Duration::from_secs(600), true, false);
    assert_eq!(bed.ended().await, "expired");
    let notices = bed.user.notices();
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert!(near(
        bed.since_start(notices[0].0),
        Duration::from_secs(300)
    ));
    assert!(notices[0].1.contains("expires in 5m"), "{}", notices[0].1);
    assert!(near(
        bed.since_start(notices[1].0),
        Duration::from_secs(540)
    ));
    assert!(notices[1].1.contains("expires in 1m"), "{}", notices[1].1);
    assert!(near(
        bed.since_start(notices[2].0),
        Duration::from_secs(600)
    ));
    assert!(
        notices[2].1.contains("your grant for db-1 expired"),
        "{}",
        notices[2].1
    );
    let (ended_at, kill) = bed.target.ended.lock().unwrap().expect("target ended");
    assert!(near(bed.since_start(ended_at), Duration::from_secs(600)));
    assert!(
        !kill,
        "a terminal session's command dies by hang-up, not a kill"
    );
    // The user's side was closed after the message; a client that reads is not severed.
    let seen: Vec<Seen> = bed.user.seen().into_iter().map(|(_, s)| s).collect();
    assert_eq!(seen.last(), Some(&Seen::Close));
    let audit = std::fs::read_to_string(&bed.audit_path).unwrap();
    assert!(audit.contains("\"session.end\"") && audit.contains("\"expired\""));
}

#[tokio::test(start_paused = true)]
async fn expiry_ends_the_session_on_time_when_the_user_never_reads() {
    let bed = Bed::start(Duration::from_secs(30), false, true);
    // The target talks; the user's client reads nothing, so the pump hangs on its output.
    bed.feed
        .send(TargetEvent::Output {
            stream: OutputStream::Stdout,
            data: Bytes::from_static(b"tick\n"),
        })
        .unwrap();
    assert_eq!(bed.ended().await, "expired");
    let (ended_at, kill) = bed.target.ended.lock().unwrap().expect("target ended");
    assert!(near(bed.since_start(ended_at), Duration::from_secs(30)));
    assert!(kill, "a command without a terminal is killed");
    let seen = bed.user.seen();
    let severed = seen
        .iter()
        .find(|(_, s)| *s == Seen::Severed)
        .expect("a client that stopped reading is severed");
    assert!(
        bed.since_start(severed.0) <= Duration::from_secs(31),
        "severed {:?} after start",
        bed.since_start(severed.0)
    );
}

#[tokio::test(start_paused = true)]
async fn an_extension_moves_the_warnings_and_the_end_and_tells_the_user() {
    let bed = Bed::start(Duration::from_secs(600), true, false);
    tokio::time::sleep(Duration::from_secs(240)).await;
    bed.registry.update(
        GRANT,
        &GrantState {
            expires_at: bed.wall + Duration::from_secs(1200),
            revoked: None,
            unverifiable: false,
        },
    );
    assert_eq!(bed.ended().await, "expired");
    let notices = bed.user.notices();
    assert_eq!(notices.len(), 4, "{notices:?}");
    assert!(near(
        bed.since_start(notices[0].0),
        Duration::from_secs(240)
    ));
    assert!(
        notices[0]
            .1
            .contains("your access to db-1 was extended: this session now ends at"),
        "{}",
        notices[0].1
    );
    // No warning at the first expiry's 5 and 1 minutes: they moved with the end.
    assert!(near(
        bed.since_start(notices[1].0),
        Duration::from_secs(900)
    ));
    assert!(notices[1].1.contains("expires in 5m"), "{}", notices[1].1);
    assert!(near(
        bed.since_start(notices[2].0),
        Duration::from_secs(1140)
    ));
    assert!(near(
        bed.since_start(notices[3].0),
        Duration::from_secs(1200)
    ));
    assert!(notices[3].1.contains("expired"), "{}", notices[3].1);
}

#[tokio::test(start_paused = true)]
async fn a_revocation_ends_the_session_and_names_who_revoked() {
    let bed = Bed::start(Duration::from_secs(3600), true, false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    bed.registry.update(
        GRANT,
        &GrantState {
            expires_at: OffsetDateTime::now_utc() + Duration::from_secs(3600),
            revoked: Some(Revocation {
                at: OffsetDateTime::now_utc(),
                by: "bob\x1b]0;pwned\x07".into(),
            }),
            unverifiable: false,
        },
    );
    assert_eq!(bed.ended().await, "revoked");
    let last = bed.user.notices().pop().expect("an end message").1;
    assert!(
        last.contains("revoked by bob\\x1b]0;pwned\\x07"),
        "{last:?}"
    );
    assert!(
        !last.contains('\x1b'),
        "control characters reach the terminal raw"
    );
    assert!(bed.since_start(bed.target.ended.lock().unwrap().unwrap().0) < Duration::from_secs(11));
}

#[tokio::test(start_paused = true)]
async fn an_end_request_ends_the_session() {
    let bed = Bed::start(Duration::from_secs(3600), true, false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    bed.registry
        .notify_session("s-1", Notice::EndRequested { by: "carol".into() });
    assert_eq!(bed.ended().await, "terminated");
    assert!(
        bed.user
            .notices()
            .pop()
            .unwrap()
            .1
            .contains("ended by carol")
    );
}

#[tokio::test(start_paused = true)]
async fn storage_degraded_warns_then_ends_and_a_recovery_calls_it_off() {
    let bed = Bed::start(Duration::from_secs(3600), true, false);
    bed.registry.notify_fail_closed(Notice::StorageDegraded);
    tokio::time::sleep(STORAGE_GRACE / 2).await;
    bed.registry.notify_fail_closed(Notice::StorageRecovered);
    tokio::time::sleep(STORAGE_GRACE).await;
    assert!(
        bed.index.ended.lock().unwrap().is_empty(),
        "a recovery calls the end off"
    );
    let notices = bed.user.notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[0].1.contains("cannot be stored safely"));
    assert!(notices[1].1.contains("recovered"));

    let degraded_at = Instant::now();
    bed.registry.notify_fail_closed(Notice::StorageDegraded);
    assert_eq!(bed.ended().await, "recording_failed");
    let (ended_at, _) = bed.target.ended.lock().unwrap().unwrap();
    assert!(near(ended_at - degraded_at, STORAGE_GRACE));
}

#[tokio::test(start_paused = true)]
async fn a_normal_end_reaches_the_user_as_exit_before_eof_before_close() {
    let bed = Bed::start(Duration::from_secs(3600), false, false);
    // A target may send its EOF before its exit status; the user must get the exit status
    // first, or a client that closes on EOF loses it.
    for event in [
        TargetEvent::Output {
            stream: OutputStream::Stdout,
            data: Bytes::from_static(b"p\n"),
        },
        TargetEvent::Output {
            stream: OutputStream::Stderr,
            data: Bytes::from_static(b"late\n"),
        },
        TargetEvent::Eof,
        TargetEvent::Exit(Exit::Status(4)),
        TargetEvent::Closed,
    ] {
        bed.feed.send(event).unwrap();
    }
    assert_eq!(bed.ended().await, "exit");
    let seen: Vec<Seen> = bed.user.seen().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        seen,
        vec![
            Seen::Output(OutputStream::Stdout, b"p\n".to_vec()),
            Seen::Output(OutputStream::Stderr, b"late\n".to_vec()),
            Seen::Exit(Exit::Status(4)),
            Seen::Eof,
            Seen::Close,
        ]
    );
    let (_, killed) = bed.target.ended.lock().unwrap().expect("target ended");
    assert!(!killed, "a command that exited is not killed");
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_every_session_with_a_message() {
    let bed = Bed::start(Duration::from_secs(3600), true, false);
    bed.shutdown.cancel();
    assert_eq!(bed.ended().await, "shutdown");
    assert!(
        bed.user
            .notices()
            .pop()
            .unwrap()
            .1
            .contains("shutting down")
    );
}
