//! Recording one session: the cheap `RecordingWriter` handle the session calls; the work happens
//! in the recording task (`recording.rs`) behind it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cast::{self, BASTION_FORMAT, BastionHeader, Header};
use crate::error::{RecordError, StoreError, check_id};
use crate::meta::RecordingMeta;
use crate::recording::{Command, Queued, RecordingTask, Shared, TaskSettings};
use crate::store::RecordingStore;
use crate::uploader::Uploader;

/// Commands queued between the session and its recording task. At the proxy's 32 KiB chunks
/// this bounds buffered data to about 2 MiB per session; when the task falls behind, `write()`
/// waits, which slows the session down (backpressure) instead of growing memory without limit.
const COMMAND_QUEUE: usize = 64;

const DEFAULT_TERM: &str = "xterm-256color";

/// Which stream of a session a piece of data travelled on, given with it to
/// [`RecordingWriter::write`].
///
/// A session has either a terminal (a pty: an interactive shell, `ssh -t`) or a command's plain
/// streams (no pty: `ssh bastion db-1 pg_dump`). All are recorded as asciicast text for now:
/// the output streams as `o` events and the input streams as `i` events, each direction through
/// one UTF-8 decoder, byte for byte what [`RecordingWriter::output`] and
/// [`RecordingWriter::input`] write. The tag reaches the recording task, where asciicast text is
/// made, so that stdout, stderr and stdin can get a byte-exact encoding there later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// What the target sent to the user's terminal (pty session): program output, echo and
    /// escape sequences, already merged by the pty. An `o` event.
    TerminalOutput,
    /// What the user typed into the terminal (pty session): keys, pastes, escape sequences. An
    /// `i` event.
    TerminalInput,
    /// A command's standard output (session without pty). An `o` event for now.
    Stdout,
    /// A command's standard error, SSH extended data (session without pty). An `o` event for
    /// now, interleaved with stdout in arrival order.
    Stderr,
    /// What the user's client sent to a command's standard input (session without pty). An `i`
    /// event for now.
    Stdin,
}

/// What `finish` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub id: String,
    /// asciicast text bytes, header included.
    pub raw_bytes: u64,
    /// Compressed bytes of all segments.
    pub stored_bytes: u64,
    pub segments: u32,
    /// Every event was captured into a segment (no spool write failed).
    pub complete: bool,
    /// All segments and the manifest reached the store before `finish_timeout`; when false they
    /// are still in the spool and the uploader keeps trying.
    pub uploaded: bool,
    pub duration: Duration,
}

/// Handle to a running recording; clones share it (input and output paths).
#[derive(Clone)]
pub struct RecordingWriter {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Queued>,
    uploader: Uploader,
}

impl RecordingStore {
    /// Starts a recording: creates its spool dir and spawns its task. Nothing is sent to the
    /// store until the first segment closes. Fails on a store opened with `open_reader`.
    pub fn begin(&self, meta: RecordingMeta) -> Result<RecordingWriter, StoreError> {
        self.check_writable()?;
        check_id(&meta.id).map_err(|reason| StoreError::InvalidId {
            id: meta.id.clone(),
            reason,
        })?;
        let cfg = &self.inner.cfg;
        let dir = cfg.spool_dir.join(&meta.id);
        // create_dir, not create_dir_all: an existing dir means the id is in use (or its data
        // still awaits upload) and must not be mixed with a new recording.
        std::fs::create_dir(&dir).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => StoreError::AlreadyExists {
                id: meta.id.clone(),
            },
            _ => StoreError::Spool {
                path: dir.clone(),
                source,
            },
        })?;
        let start = Instant::now();
        let shared = Arc::new(Shared {
            id: meta.id.clone(),
            start,
            broken: OnceLock::new(),
            finishing: AtomicBool::new(false),
        });
        let header = header_line(&meta).map_err(|e| StoreError::Spool {
            path: dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let settings = TaskSettings {
            dir,
            compress_slots: self.inner.compress_slots.clone(),
            segment_bytes: cfg.segment_bytes,
            segment_interval: cfg.segment_interval,
            finish_timeout: cfg.finish_timeout,
            signing_key: cfg.signing_key.clone(),
        };
        let uploader = self.inner.uploader.clone();
        let task = RecordingTask::new(shared.clone(), uploader.clone(), settings, meta, header);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.inner.runtime.spawn(task.run(rx));
        Ok(RecordingWriter {
            shared,
            tx,
            uploader,
        })
    }
}

fn header_line(meta: &RecordingMeta) -> Result<Vec<u8>, serde_json::Error> {
    let term = meta
        .term
        .clone()
        .unwrap_or_else(|| DEFAULT_TERM.to_string());
    let header = Header {
        version: cast::ASCIICAST_VERSION,
        width: meta.width.into(),
        height: meta.height.into(),
        timestamp: Some(meta.started_at.unix_timestamp()),
        env: Some([("TERM".to_string(), Some(term))].into_iter().collect()),
        title: Some(format!("{} to {}@{}", meta.user, meta.login, meta.target)),
        bastion: Some(BastionHeader {
            format: BASTION_FORMAT,
            session_id: meta.id.clone(),
            user: meta.user.clone(),
            target: meta.target.clone(),
            login: meta.login.clone(),
            grant_id: meta.grant_id,
            command: meta.command.clone(),
        }),
    };
    let mut line = Vec::new();
    cast::push_header(&mut line, &header)?;
    Ok(line)
}

impl RecordingWriter {
    /// The recording id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Records bytes that travelled on `stream`. Chunks may be cut anywhere: the output
    /// streams are decoded as one text and the input streams as another, across calls, so a
    /// character split between chunks comes out whole.
    pub async fn write(&self, stream: Stream, data: &[u8]) -> Result<(), RecordError> {
        // Every event is timed here, before queueing, so waiting for the task does not skew
        // the replay.
        self.write_at(self.now(), stream, data).await
    }

    /// Records bytes the target sent to the user's terminal: `write(Stream::TerminalOutput, ..)`.
    pub async fn output(&self, data: &[u8]) -> Result<(), RecordError> {
        self.write(Stream::TerminalOutput, data).await
    }

    /// Records bytes the user typed: `write(Stream::TerminalInput, ..)`.
    pub async fn input(&self, data: &[u8]) -> Result<(), RecordError> {
        self.write(Stream::TerminalInput, data).await
    }

    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), RecordError> {
        self.resize_at(self.now(), cols, rows).await
    }

    /// Records a marker (warnings such as "grant expires in 5 minutes").
    pub async fn marker(&self, label: &str) -> Result<(), RecordError> {
        self.marker_at(self.now(), label).await
    }

    /// Ends the recording: writes an `end: REASON` marker, closes and spools the last segment,
    /// spools the manifest and waits up to `finish_timeout` for everything to be uploaded.
    ///
    /// A broken recording still gets a manifest (with `complete: false`) if the spool allows.
    /// Only the first call does anything; later ones return [`RecordError::Finished`].
    pub async fn finish(&self, end_reason: &str) -> Result<RecordingSummary, RecordError> {
        self.finish_at(self.now(), end_reason).await
    }

    // The `*_at` variants take the event time (since the recording began) from the caller
    // instead of the clock: for importing existing recordings and for byte-exact golden tests.
    // Times that go backwards are clamped to the previous event's.

    pub async fn write_at(
        &self,
        at: Duration,
        stream: Stream,
        data: &[u8],
    ) -> Result<(), RecordError> {
        if data.is_empty() {
            return self.check();
        }
        self.send(Command::Data {
            stream,
            at,
            bytes: data.to_vec(),
        })
        .await
    }

    pub async fn output_at(&self, at: Duration, data: &[u8]) -> Result<(), RecordError> {
        self.write_at(at, Stream::TerminalOutput, data).await
    }

    pub async fn input_at(&self, at: Duration, data: &[u8]) -> Result<(), RecordError> {
        self.write_at(at, Stream::TerminalInput, data).await
    }

    pub async fn resize_at(&self, at: Duration, cols: u16, rows: u16) -> Result<(), RecordError> {
        let text = format!("{cols}x{rows}");
        self.send(Command::Line {
            at,
            code: "r",
            text,
        })
        .await
    }

    pub async fn marker_at(&self, at: Duration, label: &str) -> Result<(), RecordError> {
        let text = label.to_string();
        self.send(Command::Line {
            at,
            code: "m",
            text,
        })
        .await
    }

    pub async fn finish_at(
        &self,
        at: Duration,
        end_reason: &str,
    ) -> Result<RecordingSummary, RecordError> {
        if self.shared.finishing.swap(true, Ordering::SeqCst) {
            return Err(self.finished());
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Finish {
            at,
            reason: end_reason.to_string(),
            reply,
        };
        self.queue(command).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn now(&self) -> Duration {
        self.shared.start.elapsed()
    }

    fn check(&self) -> Result<(), RecordError> {
        if let Some(reason) = self.shared.broken.get() {
            return Err(RecordError::Broken {
                id: self.shared.id.clone(),
                reason: reason.clone(),
            });
        }
        if self.shared.finishing.load(Ordering::SeqCst) {
            return Err(self.finished());
        }
        Ok(())
    }

    async fn send(&self, command: Command) -> Result<(), RecordError> {
        self.check()?;
        self.queue(command).await
    }

    async fn queue(&self, command: Command) -> Result<(), RecordError> {
        let queued = Queued {
            command,
            _queued: self.uploader.command(),
        };
        self.tx.send(queued).await.map_err(|_| self.stopped())
    }

    fn finished(&self) -> RecordError {
        RecordError::Finished {
            id: self.shared.id.clone(),
        }
    }

    fn stopped(&self) -> RecordError {
        match self.check() {
            Err(e) => e,
            Ok(()) => RecordError::Stopped {
                id: self.shared.id.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send>(_: T) {}

    /// The proxy drives input and output from separate spawned tasks: the handle must be
    /// shareable and its futures `Send`.
    #[tokio::test]
    async fn writer_is_shareable_across_tasks() {
        shareable::<RecordingWriter>();
        shareable::<RecordingStore>();
        let dir = tempfile::tempdir().unwrap();
        let store = RecordingStore::open(crate::StoreConfig {
            url: format!("file://{}", dir.path().join("store").display()),
            spool_dir: dir.path().join("spool"),
            ..crate::StoreConfig::default()
        })
        .await
        .unwrap();
        let meta = RecordingMeta {
            id: "send-1".to_string(),
            user: "u".to_string(),
            target: "t".to_string(),
            login: "l".to_string(),
            grant_id: None,
            command: None,
            width: 80,
            height: 24,
            term: None,
            started_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let writer = store.begin(meta).unwrap();
        send(writer.output(b"x"));
        send(writer.finish("end"));
        let other = writer.clone();
        tokio::spawn(async move { other.input(b"y").await })
            .await
            .unwrap()
            .unwrap();
        let summary = writer.finish("end").await.unwrap();
        assert_eq!(summary.segments, 1);
        assert!(
            String::from_utf8(store.read_cast("send-1").await.unwrap())
                .unwrap()
                .contains("\"y\"")
        );
    }
}
