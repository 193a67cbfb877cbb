//! Background upload of spooled files to the object store.
//!
//! Every spooled file becomes one upload job (a tokio task) that retries with exponential backoff
//! until the object exists, then deletes the spool file. Jobs run concurrently up to
//! [`UPLOAD_CONCURRENCY`] so one slow or failing recording does not hold up the others; a
//! recording's manifest job waits until all of that recording's segment jobs have settled, so a
//! manifest never points at segments that are not stored yet.
//!
//! Objects are created with `PutMode::Create` (S3: `If-None-Match: *`) and one single PUT each.
//! Multipart upload is deliberately not used: every part but the last must be at least 5 MiB,
//! while a segment is `segment_bytes` of text compressed (about 250 KiB at the 1 MiB default),
//! so a segment would be a one-part upload costing three requests and, when interrupted, an
//! orphaned upload to clean up; and a conditional create of a multipart upload is not supported
//! everywhere. A single PUT takes up to 5 GiB, far above any sensible segment size.
//!
//! Request time limits (connect 5 s, request `StoreConfig::request_timeout`) are set on the S3
//! client, so an unreachable store makes an attempt fail and be retried here rather than hang.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// Uploads in flight at once across all recordings: enough to hide S3 latency for a few busy
/// sessions, small enough not to flood a local disk or a small MinIO.
const UPLOAD_CONCURRENCY: usize = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where recordings live in the store: `{prefix}/{id}/{name}`.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) prefix: String,
}

impl Layout {
    pub(crate) fn recording_dir(&self, id: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(id)
        } else {
            ObjectPath::from(format!("{}/{id}", self.prefix))
        }
    }

    pub(crate) fn object(&self, id: &str, name: &str) -> ObjectPath {
        self.recording_dir(id).join(name)
    }
}

#[derive(Clone)]
pub(crate) struct Uploader {
    inner: Arc<UploaderInner>,
}

struct UploaderInner {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    runtime: Handle,
    permits: Semaphore,
    /// Jobs not yet settled, across all recordings (for `RecordingStore::flush`).
    in_flight: watch::Sender<usize>,
    /// Commands queued to recording tasks and not yet handled (for `RecordingStore::flush`).
    /// A plain counter, not a `watch`: it changes twice per recorded event.
    queued: AtomicUsize,
    /// Bytes of files in the spool not yet uploaded and deleted.
    spooled: AtomicU64,
}

/// Upload progress of one recording, shared by its writer task and its upload jobs.
pub(crate) struct RecordingUploads {
    state: watch::Sender<UploadState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct UploadState {
    pending_segments: usize,
    failed: usize,
    manifest_uploaded: bool,
}

impl RecordingUploads {
    pub(crate) fn new() -> Arc<RecordingUploads> {
        Arc::new(RecordingUploads {
            state: watch::Sender::new(UploadState::default()),
        })
    }

    /// Waits until the manifest is stored; false if `deadline` passed first.
    pub(crate) async fn wait_manifest(&self, deadline: Instant) -> bool {
        let mut rx = self.state.subscribe();
        let waited = tokio::time::timeout_at(deadline, rx.wait_for(|s| s.manifest_uploaded)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// True when any upload of this recording failed for good (e.g. a conflicting object).
    pub(crate) fn any_failed(&self) -> bool {
        self.state.borrow().failed > 0
    }

    async fn segments_settled(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives in `self`, so `wait_for` cannot see it dropped.
        let _ = rx.wait_for(|s| s.pending_segments == 0).await;
    }
}

/// Decrements the global in-flight count however a job ends (even if its task is cancelled).
/// One unit of work `idle` waits for; it ends when the guard is dropped.
pub(crate) struct InFlight(Arc<UploaderInner>);

/// A command queued to a recording task; `idle` waits until it is handled.
pub(crate) struct QueuedCommand(Arc<UploaderInner>);

impl Drop for QueuedCommand {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n -= 1);
    }
}

impl Uploader {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, layout: Layout, runtime: Handle) -> Uploader {
        Uploader {
            inner: Arc::new(UploaderInner {
                store,
                layout,
                runtime,
                permits: Semaphore::new(UPLOAD_CONCURRENCY),
                in_flight: watch::Sender::new(0),
                queued: AtomicUsize::new(0),
                spooled: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Counts a file that was just written to the spool (or found there at start).
    pub(crate) fn add_spooled(&self, bytes: u64) {
        self.inner.spooled.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes waiting in the spool.
    pub(crate) fn spooled(&self) -> u64 {
        self.inner.spooled.load(Ordering::Relaxed)
    }

    /// Queues a spooled segment.
    pub(crate) fn segment(
        &self,
        rec: &Arc<RecordingUploads>,
        id: &str,
        name: &str,
        spool: PathBuf,
    ) {
        rec.state.send_modify(|s| s.pending_segments += 1);
        let guard = self.start_job();
        let (rec, location) = (rec.clone(), self.inner.layout.object(id, name));
        self.inner.runtime.spawn(async move {
            let ok = guard.0.upload(&location, &spool).await;
            rec.state.send_modify(|s| {
                s.pending_segments -= 1;
                s.failed += usize::from(!ok);
            });
        });
    }

    /// Queues a spooled manifest; it is uploaded once the recording's segments have settled, and
    /// the recording's spool dir is removed afterwards if that left it empty.
    pub(crate) fn manifest(&self, rec: &Arc<RecordingUploads>, id: &str, spool: PathBuf) {
        let guard = self.start_job();
        let (rec, location) = (
            rec.clone(),
            self.inner.layout.object(id, crate::manifest::MANIFEST_NAME),
        );
        self.inner.runtime.spawn(async move {
            rec.segments_settled().await;
            let ok = guard.0.upload(&location, &spool).await;
            if ok && let Some(dir) = spool.parent() {
                let _ = tokio::fs::remove_dir(dir).await;
            }
            rec.state.send_modify(|s| {
                s.manifest_uploaded = ok;
                s.failed += usize::from(!ok);
            });
        });
    }

    /// Removes a recovered recording's spool dir once its segments are stored (recordings that
    /// crashed before writing a manifest).
    pub(crate) fn cleanup_when_settled(&self, rec: &Arc<RecordingUploads>, dir: PathBuf) {
        let (rec, guard) = (rec.clone(), self.start_job());
        self.inner.runtime.spawn(async move {
            rec.segments_settled().await;
            let _ = tokio::fs::remove_dir(dir).await;
            drop(guard);
        });
    }

    /// Waits until no upload job is left; false if `timeout` passed first.
    /// Counts a command on its way to a recording task until the guard is dropped.
    pub(crate) fn command(&self) -> QueuedCommand {
        self.inner.queued.fetch_add(1, Ordering::AcqRel);
        QueuedCommand(self.inner.clone())
    }

    /// Waits until no command is queued and no job is in flight. A command's segment job
    /// starts before the command's guard is dropped, so seeing both at zero means settled.
    pub(crate) async fn idle(&self, timeout: Duration) -> bool {
        let settled = async {
            let mut rx = self.inner.in_flight.subscribe();
            loop {
                // Commands are handled within milliseconds; polling keeps the per-event
                // path down to two atomic operations.
                while self.inner.queued.load(Ordering::Acquire) > 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if rx.wait_for(|n| *n == 0).await.is_err() {
                    return false;
                }
                if self.inner.queued.load(Ordering::Acquire) == 0 {
                    return true;
                }
            }
        };
        tokio::time::timeout(timeout, settled)
            .await
            .unwrap_or(false)
    }

    /// Counts work that will end in an upload (an upload, or a segment still compressing)
    /// until the guard is dropped.
    pub(crate) fn start_job(&self) -> InFlight {
        self.inner.in_flight.send_modify(|n| *n += 1);
        InFlight(self.inner.clone())
    }
}

/// Result of one PUT attempt.
enum PutOutcome {
    Stored,
    /// The object exists with other bytes: retrying cannot help and overwriting is forbidden.
    Conflict,
    Retry(String),
}

impl UploaderInner {
    /// Uploads one spool file, retrying transient errors forever (the spool keeps the data safe
    /// meanwhile); true once the object holds exactly these bytes and the spool file is deleted.
    async fn upload(&self, location: &ObjectPath, spool: &std::path::Path) -> bool {
        let bytes = match tokio::fs::read(spool).await {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                tracing::error!(spool = %spool.display(), error = %e, "cannot read spooled recording file");
                return false;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.put_once(location, &bytes).await {
                PutOutcome::Stored => break,
                PutOutcome::Conflict => {
                    tracing::error!(
                        object = %location, spool = %spool.display(),
                        "recording object already exists with different content; keeping spool file"
                    );
                    return false;
                }
                PutOutcome::Retry(error) => {
                    tracing::warn!(object = %location, attempt, retry_in = ?backoff, error, "recording upload failed, will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        match tokio::fs::remove_file(spool).await {
            Ok(()) => {
                // Saturating: a file counted at start may have been replaced by an operator.
                let _ = self
                    .spooled
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(bytes.len() as u64))
                    });
            }
            Err(e) => {
                tracing::warn!(spool = %spool.display(), error = %e, "cannot delete uploaded spool file");
            }
        }
        true
    }

    async fn put_once(&self, location: &ObjectPath, bytes: &Bytes) -> PutOutcome {
        // The semaphore is never closed; treat the impossible case as transient.
        let Ok(_permit) = self.permits.acquire().await else {
            return PutOutcome::Retry("upload slots closed".to_string());
        };
        let payload = PutPayload::from(bytes.clone());
        match self
            .store
            .put_opts(location, payload, PutOptions::from(PutMode::Create))
            .await
        {
            Ok(_) => PutOutcome::Stored,
            // Happens after a crash between a successful upload and the spool delete: identical
            // content means the earlier attempt already did the job.
            Err(object_store::Error::AlreadyExists { .. }) => {
                let stored = match self.store.get(location).await {
                    Ok(result) => result.bytes().await,
                    Err(e) => Err(e),
                };
                match stored {
                    Ok(stored) if stored == *bytes => PutOutcome::Stored,
                    Ok(_) => PutOutcome::Conflict,
                    Err(e) => PutOutcome::Retry(e.to_string()),
                }
            }
            Err(e) => PutOutcome::Retry(e.to_string()),
        }
    }
}
