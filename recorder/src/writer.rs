//! Recording one session: the cheap `RecordingWriter` handle the session calls, and the recording
//! task behind it that encodes events, cuts segments, spools them and writes the manifest.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cast::{self, BASTION_FORMAT, BastionHeader, Header};
use crate::error::{RecordError, StoreError, check_id};
use crate::manifest::{
    CHAIN_SEED, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, SegmentEntry, SessionInfo, Totals,
    chain_next,
};
use crate::segment::{SegmentEncoder, segment_name};
use crate::spool::write_durably;
use crate::store::RecordingStore;
use crate::uploader::{RecordingUploads, Uploader};
use crate::utf8::Utf8Stream;

/// Commands queued between the session and its recording task. At the proxy's 32 KiB chunks
/// this bounds buffered data to about 2 MiB per session; when the task falls behind, `output()`
/// waits, which slows the session down (backpressure) instead of growing memory without limit.
const COMMAND_QUEUE: usize = 64;

/// Longest piece of input turned into one event line: keeps a single huge `output()` call from
/// producing a line (and so a segment) far larger than `segment_bytes`.
const MAX_EVENT_BYTES: usize = 64 * 1024;

const DEFAULT_TERM: &str = "xterm-256color";

/// Who and what a recording is about; written into the cast header and the manifest.
#[derive(Debug, Clone)]
pub struct RecordingMeta {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant_id: Option<i64>,
    pub command: Option<String>,
    pub width: u16,
    pub height: u16,
    pub term: Option<String>,
    pub started_at: OffsetDateTime,
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
    tx: mpsc::Sender<Command>,
}

struct Shared {
    id: String,
    start: Instant,
    /// Set by the task on the first write failure; every later call returns it.
    broken: OnceLock<String>,
    finishing: AtomicBool,
}

#[derive(Clone, Copy)]
enum Stream {
    Output,
    Input,
}

enum Command {
    Data {
        stream: Stream,
        at: Duration,
        bytes: Vec<u8>,
    },
    Line {
        at: Duration,
        code: &'static str,
        text: String,
    },
    Finish {
        at: Duration,
        reason: String,
        reply: oneshot::Sender<Result<RecordingSummary, RecordError>>,
    },
}

impl RecordingStore {
    /// Starts a recording: creates its spool dir and spawns its task. Nothing is sent to the
    /// store until the first segment closes.
    pub fn begin(&self, meta: RecordingMeta) -> Result<RecordingWriter, StoreError> {
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
        let task = RecordingTask {
            shared: shared.clone(),
            uploader: self.inner.uploader.clone(),
            uploads: RecordingUploads::new(),
            dir,
            segment_bytes: cfg.segment_bytes as u64,
            segment_interval: cfg.segment_interval,
            finish_timeout: cfg.finish_timeout,
            meta,
            segment: None,
            deadline: None,
            next_seq: 0,
            entries: Vec::new(),
            chain: CHAIN_SEED,
            events: 0,
            last_time: Duration::ZERO,
            output: Utf8Stream::default(),
            input: Utf8Stream::default(),
            line: Vec::with_capacity(MAX_EVENT_BYTES + 64),
        };
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.inner.runtime.spawn(task.run(rx, header));
        Ok(RecordingWriter { shared, tx })
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

    /// Records bytes the target sent to the user's terminal.
    pub async fn output(&self, data: &[u8]) -> Result<(), RecordError> {
        // Every event is timed here, before queueing, so waiting for the task does not skew
        // the replay.
        self.output_at(self.now(), data).await
    }

    /// Records bytes the user typed.
    pub async fn input(&self, data: &[u8]) -> Result<(), RecordError> {
        self.input_at(self.now(), data).await
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

    pub async fn output_at(&self, at: Duration, data: &[u8]) -> Result<(), RecordError> {
        self.data(Stream::Output, at, data).await
    }

    pub async fn input_at(&self, at: Duration, data: &[u8]) -> Result<(), RecordError> {
        self.data(Stream::Input, at, data).await
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
        self.tx.send(command).await.map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn now(&self) -> Duration {
        self.shared.start.elapsed()
    }

    async fn data(&self, stream: Stream, at: Duration, data: &[u8]) -> Result<(), RecordError> {
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
        self.tx.send(command).await.map_err(|_| self.stopped())
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

struct RecordingTask {
    shared: Arc<Shared>,
    uploader: Uploader,
    uploads: Arc<RecordingUploads>,
    /// This recording's spool dir.
    dir: PathBuf,
    segment_bytes: u64,
    segment_interval: Duration,
    finish_timeout: Duration,
    meta: RecordingMeta,
    segment: Option<SegmentEncoder>,
    /// When the open segment must be closed.
    deadline: Option<Instant>,
    next_seq: u32,
    entries: Vec<SegmentEntry>,
    chain: [u8; 32],
    /// Events in spooled segments.
    events: u64,
    /// Event times are clamped to never go backwards: input and output are timed on different
    /// tasks and may be queued out of order, and players expect non-decreasing times.
    last_time: Duration,
    output: Utf8Stream,
    input: Utf8Stream,
    /// Reused buffer for one event line.
    line: Vec<u8>,
}

impl RecordingTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, header: Vec<u8>) {
        if let Err(e) = self
            .open_segment()
            .and_then(|seg| seg.write_line(&header, None))
        {
            self.break_with(format!("cannot start segment: {e}"));
        }
        // One timer, re-armed whenever a segment opens, so the interval fires without new events.
        let timer = tokio::time::sleep_until(self.deadline.unwrap_or_else(Instant::now));
        tokio::pin!(timer);
        let mut armed = self.deadline;
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Finish { at, reason, reply }) => {
                        let _ = reply.send(self.finish(at, &reason).await);
                        return;
                    }
                    Some(command) => self.handle(command).await,
                    None => {
                        // Every writer was dropped without finish (e.g. the session task died):
                        // still close the recording properly.
                        let at = self.shared.start.elapsed();
                        if let Err(e) = self.finish(at, "writer dropped").await {
                            tracing::error!(recording = %self.shared.id, error = %e, "cannot finish abandoned recording");
                        }
                        return;
                    }
                },
                () = &mut timer, if self.deadline.is_some() => self.close_segment().await,
            }
            if self.deadline != armed {
                if let Some(deadline) = self.deadline {
                    timer.as_mut().reset(deadline);
                }
                armed = self.deadline;
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        if self.shared.broken.get().is_some() {
            // Accepted before the failure became visible to the writer; cannot be stored.
            return;
        }
        match command {
            Command::Data { stream, at, bytes } => {
                for piece in bytes.chunks(MAX_EVENT_BYTES) {
                    let at = self.event_time(at);
                    let code = match stream {
                        Stream::Output => "o",
                        Stream::Input => "i",
                    };
                    self.line.clear();
                    cast::push_event_start(&mut self.line, at, code);
                    let data_start = self.line.len();
                    let decoder = match stream {
                        Stream::Output => &mut self.output,
                        Stream::Input => &mut self.input,
                    };
                    let line = &mut self.line;
                    decoder.decode(piece, &mut |text| cast::push_escaped(line, text));
                    // Only an incomplete character so far: it goes out with the next chunk.
                    if self.line.len() == data_start {
                        continue;
                    }
                    cast::push_event_end(&mut self.line);
                    self.write_event(at).await;
                }
            }
            Command::Line { at, code, text } => {
                let at = self.event_time(at);
                self.line.clear();
                cast::push_event(&mut self.line, at, code, &text);
                self.write_event(at).await;
            }
            // Handled by `run`.
            Command::Finish { .. } => {}
        }
    }

    fn event_time(&mut self, at: Duration) -> Duration {
        self.last_time = self.last_time.max(at);
        self.last_time
    }

    fn open_segment(&mut self) -> std::io::Result<&mut SegmentEncoder> {
        if self.segment.is_none() {
            self.segment = Some(SegmentEncoder::new(self.next_seq)?);
            self.next_seq += 1;
            self.deadline = Some(deadline_after(self.segment_interval));
        }
        // Just ensured above.
        self.segment
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no open segment"))
    }

    /// Writes `self.line` (one complete event line) and closes the segment when it is full or due.
    async fn write_event(&mut self, at: Duration) {
        let line = std::mem::take(&mut self.line);
        let written = self
            .open_segment()
            .and_then(|seg| seg.write_line(&line, Some(at)));
        self.line = line;
        if let Err(e) = written {
            return self.break_with(format!("cannot compress segment: {e}"));
        }
        let full = self
            .segment
            .as_ref()
            .is_some_and(|s| s.raw_bytes() >= self.segment_bytes);
        // Checked here too because a busy channel may keep the timer branch from being polled.
        let due = self.deadline.is_some_and(|d| Instant::now() >= d);
        if full || due {
            self.close_segment().await;
        }
    }

    /// Closes the open segment, writes it durably to the spool and queues its upload.
    async fn close_segment(&mut self) {
        self.deadline = None;
        let Some(segment) = self.segment.take() else {
            return;
        };
        let mut closed = match segment.finish() {
            Ok(closed) => closed,
            Err(e) => return self.break_with(format!("cannot compress segment: {e}")),
        };
        let name = segment_name(closed.seq);
        let (dir, file_name) = (self.dir.clone(), name.clone());
        let first = closed.seq == 0;
        let bytes = std::mem::take(&mut closed.bytes);
        let size = bytes.len() as u64;
        // fsync blocks for milliseconds: keep it off the async workers. The session waits for
        // it only through backpressure, never on the network.
        let spooled =
            tokio::task::spawn_blocking(move || write_durably(&dir, &file_name, &bytes, first))
                .await;
        let path = match spooled {
            Ok(Ok(path)) => path,
            Ok(Err(e)) => {
                return self.break_with(format!(
                    "cannot spool {name} in {}: {e}",
                    self.dir.display()
                ));
            }
            Err(e) => {
                return self.break_with(format!("spool write of {name} did not complete: {e}"));
            }
        };
        self.chain = chain_next(&self.chain, &closed.sha256);
        self.events += closed.events;
        self.entries.push(SegmentEntry {
            seq: closed.seq,
            object: name.clone(),
            stored_bytes: size,
            raw_bytes: closed.raw_bytes,
            first_time: closed.first_time.map(|t| t.as_secs_f64()),
            last_time: closed.last_time.map(|t| t.as_secs_f64()),
            sha256: hex::encode(closed.sha256),
            chain: hex::encode(self.chain),
        });
        self.uploader
            .segment(&self.uploads, &self.shared.id, &name, path);
        tracing::debug!(recording = %self.shared.id, seq = closed.seq, events = closed.events, "segment spooled");
    }

    fn break_with(&mut self, reason: String) {
        tracing::error!(recording = %self.shared.id, reason, "recording broken");
        self.segment = None;
        self.deadline = None;
        let _ = self.shared.broken.set(reason);
    }

    async fn finish(
        &mut self,
        at: Duration,
        reason: &str,
    ) -> Result<RecordingSummary, RecordError> {
        let finish_deadline = deadline_after(self.finish_timeout);
        if self.shared.broken.get().is_none() {
            let at = self.event_time(at);
            for (stream, code) in [(Stream::Output, "o"), (Stream::Input, "i")] {
                let mut tail = String::new();
                match stream {
                    Stream::Output => self.output.finish(&mut |t| tail.push_str(t)),
                    Stream::Input => self.input.finish(&mut |t| tail.push_str(t)),
                }
                if !tail.is_empty() {
                    self.line.clear();
                    cast::push_event(&mut self.line, at, code, &tail);
                    self.write_event(at).await;
                }
            }
            self.line.clear();
            cast::push_event(&mut self.line, at, "m", &format!("end: {reason}"));
            self.write_event(at).await;
            self.close_segment().await;
        }
        let complete = self.shared.broken.get().is_none();
        let manifest = self.manifest(at, reason, complete);
        let manifest_error = |reason: String| RecordError::Manifest {
            id: self.shared.id.clone(),
            reason,
        };
        let bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| manifest_error(e.to_string()))?;
        let dir = self.dir.clone();
        let path =
            tokio::task::spawn_blocking(move || write_durably(&dir, MANIFEST_NAME, &bytes, false))
                .await
                .map_err(|e| manifest_error(e.to_string()))?
                .map_err(|e| manifest_error(e.to_string()))?;
        self.uploader.manifest(&self.uploads, &self.shared.id, path);
        let uploaded =
            self.uploads.wait_manifest(finish_deadline).await && !self.uploads.any_failed();
        Ok(RecordingSummary {
            id: self.shared.id.clone(),
            raw_bytes: manifest.totals.raw_bytes,
            stored_bytes: manifest.totals.stored_bytes,
            segments: manifest.totals.segments,
            complete,
            uploaded,
            duration: at,
        })
    }

    fn manifest(&self, at: Duration, reason: &str, complete: bool) -> Manifest {
        let meta = &self.meta;
        Manifest {
            format: MANIFEST_FORMAT,
            id: meta.id.clone(),
            session: SessionInfo {
                user: meta.user.clone(),
                target: meta.target.clone(),
                login: meta.login.clone(),
                grant_id: meta.grant_id,
                command: meta.command.clone(),
                width: meta.width,
                height: meta.height,
                term: meta.term.clone(),
                started_at: meta.started_at,
            },
            totals: Totals {
                segments: self.entries.len() as u32,
                events: self.events,
                raw_bytes: self.entries.iter().map(|e| e.raw_bytes).sum(),
                stored_bytes: self.entries.iter().map(|e| e.stored_bytes).sum(),
                duration_secs: at.as_secs_f64(),
            },
            segments: self.entries.clone(),
            end_reason: reason.to_string(),
            ended_at: OffsetDateTime::now_utc(),
            complete,
            chain: hex::encode(self.chain),
            signature: None,
        }
    }
}

/// `now + after`, saturating instead of panicking on absurd configured durations.
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}
