//! The recording task: one per recording. It turns queued writer commands into asciicast lines,
//! cuts segments by size and time, has them compressed, sealed and spooled off the async threads,
//! queues their upload, and writes the (signed) manifest at finish.
//!
//! Segments compress in parallel but are sealed and spooled in order: after compressing, each
//! blocking job waits for the chain value of the segment before it (a oneshot handed from job to
//! job once that segment is durable), so the chain costs no compression parallelism, only a hash
//! and a signature per segment, and a segment that failed is never followed by a spooled one.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::cast;
use crate::error::RecordError;
use crate::manifest::{
    CHAIN_SEED, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, SegmentEntry, Totals, chain_next,
};
use crate::meta::RecordingMeta;
use crate::segment::{ClosedSegment, OpenSegment, seconds, segment_name};
use crate::sign::SigningKey;
use crate::spool::write_durably;
use crate::uploader::{InFlight, QueuedCommand, RecordingUploads, Uploader};
use crate::utf8::Utf8Stream;
use crate::writer::{RecordingSummary, Stream};

/// Commands the task takes off the queue at once: one wake-up per batch instead of per chunk.
const COMMAND_BATCH: usize = 32;

/// Longest piece of input turned into one event line: keeps a single huge `write()` call from
/// producing a line (and so a segment) far larger than `segment_bytes`.
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Segments of one recording being compressed and spooled at once. Two lets compression of one
/// segment overlap with filling the next (and use the second core) while bounding memory to a
/// few segments; a third waits, which backs up into the writer queue and slows the session.
const MAX_CLOSING: usize = 2;

/// State shared between the writer handles and the task.
pub(crate) struct Shared {
    pub(crate) id: String,
    pub(crate) start: Instant,
    /// Set by the task on the first write failure; every later call returns it.
    pub(crate) broken: OnceLock<String>,
    pub(crate) finishing: AtomicBool,
}

/// A command on its way to the recording task. Its guard makes `RecordingStore::flush` wait
/// for it: until it is handled, its events may belong to a segment not yet closed.
pub(crate) struct Queued {
    pub(crate) command: Command,
    pub(crate) _queued: QueuedCommand,
}

pub(crate) enum Command {
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

/// A segment that is compressed and durably in the spool.
struct Spooled {
    closed: ClosedSegment,
    name: String,
    path: PathBuf,
    stored_bytes: u64,
    /// The segment's text buffer, for reuse.
    text: Vec<u8>,
    /// Closed because it was full (a busy stream: worth keeping the buffer).
    full: bool,
}

/// A segment being compressed and spooled. It counts as an upload in flight from the moment it
/// is closed, so `RecordingStore::flush` also waits for segments not yet queued for upload.
struct Closing {
    handle: JoinHandle<Result<Spooled, String>>,
    _job: InFlight,
}

pub(crate) struct RecordingTask {
    shared: Arc<Shared>,
    uploader: Uploader,
    uploads: Arc<RecordingUploads>,
    /// This recording's spool dir.
    dir: PathBuf,
    /// Store-wide limit on segments being compressed at once (see `RecordingStore::open`).
    compress_slots: Arc<Semaphore>,
    segment_bytes: usize,
    segment_interval: Duration,
    finish_timeout: Duration,
    signing_key: Option<SigningKey>,
    meta: RecordingMeta,
    segment: Option<OpenSegment>,
    /// When the open segment must be closed.
    deadline: Option<Instant>,
    next_seq: u32,
    spare: Option<Vec<u8>>,
    closing: VecDeque<Closing>,
    entries: Vec<SegmentEntry>,
    chain: [u8; 32],
    /// Chain value of the last segment handed to a closing job, delivered once it is sealed.
    chain_tail: oneshot::Receiver<[u8; 32]>,
    /// Events in spooled segments.
    events: u64,
    /// Event times are clamped to never go backwards: input and output are timed on different
    /// tasks and may be queued out of order, and players expect non-decreasing times.
    last_time: Duration,
    /// UTF-8 decoder of the `o` streams (terminal output, stdout, stderr).
    output: Utf8Stream,
    /// UTF-8 decoder of the `i` streams (terminal input, stdin).
    input: Utf8Stream,
}

pub(crate) struct TaskSettings {
    pub(crate) dir: PathBuf,
    pub(crate) compress_slots: Arc<Semaphore>,
    pub(crate) segment_bytes: usize,
    pub(crate) segment_interval: Duration,
    pub(crate) finish_timeout: Duration,
    pub(crate) signing_key: Option<SigningKey>,
}

impl RecordingTask {
    /// A task whose segment 0 already holds `header`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        uploader: Uploader,
        settings: TaskSettings,
        meta: RecordingMeta,
        header: Vec<u8>,
    ) -> RecordingTask {
        let (seed, chain_tail) = oneshot::channel();
        // The receiver is alive, so this cannot fail.
        let _ = seed.send(CHAIN_SEED);
        RecordingTask {
            shared,
            uploader,
            uploads: RecordingUploads::new(),
            dir: settings.dir,
            compress_slots: settings.compress_slots,
            segment_bytes: settings.segment_bytes,
            segment_interval: settings.segment_interval,
            finish_timeout: settings.finish_timeout,
            signing_key: settings.signing_key,
            meta,
            segment: Some(OpenSegment::new(header)),
            deadline: Some(deadline_after(settings.segment_interval)),
            next_seq: 0,
            spare: None,
            closing: VecDeque::new(),
            entries: Vec::new(),
            chain: CHAIN_SEED,
            chain_tail,
            events: 0,
            last_time: Duration::ZERO,
            output: Utf8Stream::default(),
            input: Utf8Stream::default(),
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        // One timer, re-armed whenever a segment opens, so the interval fires without events.
        let timer = tokio::time::sleep_until(self.deadline.unwrap_or_else(Instant::now));
        tokio::pin!(timer);
        let mut armed = self.deadline;
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        loop {
            tokio::select! {
                received = rx.recv_many(&mut batch, COMMAND_BATCH) => {
                    if received == 0 {
                        // Every writer was dropped without finish (e.g. the session task died):
                        // still close the recording properly.
                        let at = self.shared.start.elapsed();
                        if let Err(e) = self.finish(at, "writer dropped").await {
                            tracing::error!(recording = %self.shared.id, error = %e, "cannot finish abandoned recording");
                        }
                        return;
                    }
                    for queued in batch.drain(..) {
                        match queued.command {
                            Command::Finish { at, reason, reply } => {
                                let _ = reply.send(self.finish(at, &reason).await);
                                return;
                            }
                            command => self.handle(command).await,
                        }
                    }
                }
                () = &mut timer, if self.deadline.is_some() => self.close_segment(false).await,
                result = oldest(&mut self.closing), if !self.closing.is_empty() => {
                    // The job guard goes only after `spooled` queued the upload (or gave up).
                    let closing = self.closing.pop_front();
                    self.spooled(result);
                    drop(closing);
                }
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
                    self.data_event(stream, at, piece).await;
                }
            }
            Command::Line { at, code, text } => {
                let at = self.event_time(at);
                self.line_event(at, code, &text);
                self.after_event().await;
            }
            // Handled by `run`.
            Command::Finish { .. } => {}
        }
    }

    fn event_time(&mut self, at: Duration) -> Duration {
        self.last_time = self.last_time.max(at);
        self.last_time
    }

    fn open_segment(&mut self) -> &mut OpenSegment {
        if self.segment.is_none() {
            self.deadline = Some(deadline_after(self.segment_interval));
        }
        self.segment
            .get_or_insert_with(|| OpenSegment::new(self.spare.take().unwrap_or_default()))
    }

    /// Appends an output/input event, decoding and escaping straight into the segment text.
    async fn data_event(&mut self, stream: Stream, at: Duration, piece: &[u8]) {
        let at = self.event_time(at);
        // The one place a stream becomes asciicast. Output streams share one decoder, input
        // streams the other, so a stdout/stderr mix is recorded exactly as the same bytes given
        // to `output()`; a byte-exact encoding of stdout, stderr and stdin belongs here.
        let (decoder, code) = match stream {
            Stream::TerminalOutput | Stream::Stdout | Stream::Stderr => (&mut self.output, "o"),
            Stream::TerminalInput | Stream::Stdin => (&mut self.input, "i"),
        };
        // `open_segment`, spelled out on the fields so the decoder borrow stays disjoint.
        if self.segment.is_none() {
            self.deadline = Some(deadline_after(self.segment_interval));
        }
        let spare = &mut self.spare;
        let segment = self
            .segment
            .get_or_insert_with(|| OpenSegment::new(spare.take().unwrap_or_default()));
        let line_start = segment.text.len();
        cast::push_event_start(&mut segment.text, at, code);
        let data_start = segment.text.len();
        let text = &mut segment.text;
        decoder.decode(piece, &mut |s| cast::push_escaped(text, s));
        if segment.text.len() == data_start {
            // Only part of a character so far: it goes out whole with the next chunk.
            segment.text.truncate(line_start);
            return;
        }
        cast::push_event_end(&mut segment.text);
        segment.add_event(at);
        self.after_event().await;
    }

    fn line_event(&mut self, at: Duration, code: &str, data: &str) {
        let segment = self.open_segment();
        cast::push_event(&mut segment.text, at, code, data);
        segment.add_event(at);
    }

    /// Closes the open segment when it is full or due.
    async fn after_event(&mut self) {
        let full = self
            .segment
            .as_ref()
            .is_some_and(|s| s.text.len() >= self.segment_bytes);
        // Checked here too because a busy queue may keep the timer branch from being polled.
        let due = self.deadline.is_some_and(|d| Instant::now() >= d);
        if full || due {
            self.close_segment(full).await;
        }
    }

    /// Hands the open segment to the blocking pool to be compressed and spooled.
    async fn close_segment(&mut self, full: bool) {
        self.deadline = None;
        let Some(segment) = self.segment.take() else {
            return;
        };
        if segment.text.is_empty() {
            self.spare = Some(segment.text);
            return;
        }
        while self.closing.len() >= MAX_CLOSING {
            if let Some(closing) = self.closing.pop_front() {
                let result = closing.handle.await;
                self.spooled(result);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let (next, tail) = oneshot::channel();
        let seal = Seal {
            id: self.shared.id.clone(),
            prev: std::mem::replace(&mut self.chain_tail, tail),
            next,
            key: self.signing_key.clone(),
        };
        let dir = self.dir.clone();
        // The semaphore is never closed; without a slot we would only lose the limit.
        let slot = self.compress_slots.clone().acquire_owned().await.ok();
        // Compression and fsync take milliseconds of CPU and disk: keep them off the async
        // workers. The session waits for them only through backpressure, never on the network.
        let handle = tokio::task::spawn_blocking(move || {
            spool_segment(segment, seq, &dir, full, slot, seal)
        });
        self.closing.push_back(Closing {
            handle,
            _job: self.uploader.start_job(),
        });
    }

    /// Records a segment that reached the spool and queues its upload.
    fn spooled(&mut self, result: Result<Result<Spooled, String>, JoinError>) {
        let spooled = match result {
            Ok(Ok(spooled)) => spooled,
            Ok(Err(reason)) => return self.break_with(reason),
            Err(e) => return self.break_with(format!("segment spooling did not complete: {e}")),
        };
        let closed = &spooled.closed;
        // Sealing hands the chain from job to job, so this only restates it; a mismatch would
        // mean a job sealed against the wrong predecessor.
        let chain = chain_next(&self.chain, &closed.sha256);
        if chain != closed.chain {
            return self.break_with(format!("segment {} was sealed out of order", closed.seq));
        }
        self.chain = chain;
        self.events += closed.events;
        self.uploader.add_spooled(spooled.stored_bytes);
        self.entries.push(SegmentEntry {
            seq: closed.seq,
            object: spooled.name.clone(),
            stored_bytes: spooled.stored_bytes,
            raw_bytes: closed.raw_bytes,
            first_time: closed.first_time.map(seconds),
            last_time: closed.last_time.map(seconds),
            sha256: hex::encode(closed.sha256),
            chain: hex::encode(self.chain),
        });
        self.uploader
            .segment(&self.uploads, &self.shared.id, &spooled.name, spooled.path);
        if spooled.full && self.spare.is_none() {
            let mut text = spooled.text;
            text.clear();
            self.spare = Some(text);
        }
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
            let mut tail = String::new();
            self.output.finish(&mut |t| tail.push_str(t));
            if !tail.is_empty() {
                self.line_event(at, "o", &tail);
            }
            tail.clear();
            self.input.finish(&mut |t| tail.push_str(t));
            if !tail.is_empty() {
                self.line_event(at, "i", &tail);
            }
            self.line_event(at, "m", &format!("end: {reason}"));
            self.close_segment(false).await;
        }
        while let Some(closing) = self.closing.pop_front() {
            let result = closing.handle.await;
            self.spooled(result);
        }
        let complete = self.shared.broken.get().is_none();
        let mut manifest = self.manifest(at, reason, complete);
        let manifest_error = |reason: String| RecordError::Manifest {
            id: self.shared.id.clone(),
            reason,
        };
        if let Some(key) = &self.signing_key {
            manifest
                .sign(key)
                .map_err(|e| manifest_error(e.to_string()))?;
        }
        let bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| manifest_error(e.to_string()))?;
        let manifest_bytes = bytes.len() as u64;
        let dir = self.dir.clone();
        let path =
            tokio::task::spawn_blocking(move || write_durably(&dir, MANIFEST_NAME, &bytes, false))
                .await
                .map_err(|e| manifest_error(e.to_string()))?
                .map_err(|e| manifest_error(e.to_string()))?;
        self.uploader.add_spooled(manifest_bytes);
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
        Manifest {
            format: MANIFEST_FORMAT,
            session: self.meta.clone(),
            totals: Totals {
                segments: self.entries.len() as u32,
                events: self.events,
                raw_bytes: self.entries.iter().map(|e| e.raw_bytes).sum(),
                stored_bytes: self.entries.iter().map(|e| e.stored_bytes).sum(),
                duration_secs: seconds(at),
            },
            segments: self.entries.clone(),
            end_reason: reason.to_string(),
            ended_at: OffsetDateTime::now_utc(),
            complete,
            chain: hex::encode(self.chain),
            public_key: None,
            signature: None,
        }
    }
}

/// Waits for the oldest closing segment (never resolves when there is none).
async fn oldest(closing: &mut VecDeque<Closing>) -> Result<Result<Spooled, String>, JoinError> {
    match closing.front_mut() {
        Some(closing) => (&mut closing.handle).await,
        None => std::future::pending().await,
    }
}

/// What a closing job needs to seal its segment into the chain.
struct Seal {
    id: String,
    /// Delivers the previous segment's chain value; dropped unsent if that segment failed.
    prev: oneshot::Receiver<[u8; 32]>,
    /// Passes this segment's chain value on to the next job.
    next: oneshot::Sender<[u8; 32]>,
    key: Option<SigningKey>,
}

/// Compresses a segment, seals it after its predecessor and writes it durably to the spool
/// (blocking).
fn spool_segment(
    segment: OpenSegment,
    seq: u32,
    dir: &Path,
    full: bool,
    slot: Option<OwnedSemaphorePermit>,
    seal: Seal,
) -> Result<Spooled, String> {
    let name = segment_name(seq);
    let (mut closed, text) = segment
        .close(seq)
        .map_err(|e| format!("cannot compress {name}: {e}"))?;
    drop(slot);
    // Waiting here, on a blocking thread, after the slot is released: the predecessor was
    // spawned earlier and needs no slot to finish, so this cannot deadlock.
    let prev = seal
        .prev
        .blocking_recv()
        .map_err(|_| format!("cannot seal {name}: the segment before it was not stored"))?;
    let chain = closed
        .seal(&seal.id, &prev, seal.key.as_ref())
        .map_err(|e| format!("cannot seal {name}: {e}"))?;
    let path = write_durably(dir, &name, &closed.bytes, seq == 0)
        .map_err(|e| format!("cannot spool {name} in {}: {e}", dir.display()))?;
    // Only once this segment is durable may the next one be sealed after it: a failed segment
    // drops `next`, so no later segment reaches the spool and the store never gets a gap.
    // The next job may be gone already (recording broken); nothing to tell it then.
    let _ = seal.next.send(chain);
    // Only the spool copy is needed from here on.
    let stored_bytes = std::mem::take(&mut closed.bytes).len() as u64;
    Ok(Spooled {
        closed,
        name,
        path,
        stored_bytes,
        text,
        full,
    })
}

/// `now + after`, saturating instead of panicking on absurd configured durations.
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}
