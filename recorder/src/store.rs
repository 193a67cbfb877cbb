//! The recording store: where recordings go (local directory or S3), the spool in front of it,
//! reading recordings back, side objects, listing and deletion. Verification is in `verify.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::error::{ReadError, StoreError, check_id, check_object_name};
use crate::manifest::{MANIFEST_NAME, Manifest};
use crate::s3::{S3Options, Target, parse_url, s3_store};
// Re-exported here too: `SegmentData` lived in this module before trailers moved it.
pub use crate::segment::SegmentData;
use crate::segment::parse_segment_name;
use crate::sign::SigningKey;
use crate::spool;
use crate::uploader::{Layout, RecordingUploads, Uploader};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `file://data/recordings` (relative to the current dir), `file:///abs/path` or
    /// `s3://bucket/prefix`.
    pub url: String,
    pub spool_dir: PathBuf,
    /// A segment is closed at most this long after it got its first line.
    pub segment_interval: Duration,
    /// A segment is closed once it holds this many bytes of asciicast text.
    pub segment_bytes: usize,
    pub s3: S3Options,
    /// How long `finish` waits for the recording to be uploaded.
    pub finish_timeout: Duration,
    /// S3 only: the time limit of one request (connecting takes at most 5 s of it). A large
    /// segment over a slow link must fit in it; a store that does not answer fails the attempt.
    pub request_timeout: Duration,
    /// Signs segments and manifests; `None` stores them unsigned (verification says so).
    pub signing_key: Option<SigningKey>,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            url: "file://data/recordings".to_string(),
            spool_dir: PathBuf::from("data/spool"),
            segment_interval: Duration::from_secs(5),
            segment_bytes: 1024 * 1024,
            s3: S3Options::default(),
            finish_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            signing_key: None,
        }
    }
}

/// Handle to the store; cheap to clone. Needs a tokio runtime (it spawns upload tasks).
#[derive(Clone)]
pub struct RecordingStore {
    pub(crate) inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    pub(crate) cfg: StoreConfig,
    /// `location()` of the store root, ending in `/`.
    base: String,
    pub(crate) uploader: Uploader,
    pub(crate) runtime: Handle,
    /// Limits segments being compressed at once across all recordings to the number of CPUs:
    /// each compression holds a multi-megabyte zstd context on a blocking thread, and many idle
    /// sessions' timers can fire together.
    pub(crate) compress_slots: Arc<Semaphore>,
    /// Opened by [`RecordingStore::open_reader`]: no spool, no recording.
    read_only: bool,
}

/// The object store behind a URL, the layout of recordings in it and its printable root.
fn connect(
    cfg: &StoreConfig,
    create: bool,
) -> Result<(Arc<dyn ObjectStore>, Layout, String), StoreError> {
    let backend = |source| StoreError::Backend {
        url: cfg.url.clone(),
        source,
    };
    match parse_url(&cfg.url)? {
        Target::File(dir) => {
            let local_dir = |source| StoreError::LocalDir {
                path: dir.clone(),
                source,
            };
            if create {
                std::fs::create_dir_all(&dir).map_err(local_dir)?;
            }
            let root = std::fs::canonicalize(&dir).map_err(local_dir)?;
            // fsync: the spool copy is deleted once a put returns, so it must be durable.
            // Cleanup: a deleted recording leaves no empty directory behind for `list_ids`.
            let local = LocalFileSystem::new_with_prefix(&root)
                .map_err(backend)?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            let base = format!("file://{}/", root.display());
            let layout = Layout {
                prefix: String::new(),
            };
            Ok((Arc::new(local), layout, base))
        }
        Target::S3 { bucket, prefix } => {
            let store = s3_store(&bucket, &cfg.s3, cfg.request_timeout).map_err(backend)?;
            let base = if prefix.is_empty() {
                format!("s3://{bucket}/")
            } else {
                format!("s3://{bucket}/{prefix}/")
            };
            Ok((store, Layout { prefix }, base))
        }
    }
}

impl RecordingStore {
    /// Opens the store and queues whatever a previous process left in the spool for upload.
    /// A spool dir belongs to one process at a time.
    pub async fn open(mut cfg: StoreConfig) -> Result<RecordingStore, StoreError> {
        let (store, layout, base) = connect(&cfg, true)?;
        let spool_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Spool { path, source }
        };
        std::fs::create_dir_all(&cfg.spool_dir).map_err(spool_error(&cfg.spool_dir))?;
        cfg.spool_dir =
            std::fs::canonicalize(&cfg.spool_dir).map_err(spool_error(&cfg.spool_dir))?;
        cfg.segment_bytes = cfg.segment_bytes.max(1);

        let runtime = Handle::current();
        let uploader = Uploader::new(store, layout, runtime.clone());
        let leftovers = spool::scan(&cfg.spool_dir).map_err(spool_error(&cfg.spool_dir))?;
        for rec in leftovers {
            if check_id(&rec.id).is_err() {
                tracing::warn!(dir = %rec.dir.display(), "ignoring spool directory that is not a recording id");
                continue;
            }
            tracing::info!(
                recording = %rec.id,
                segments = rec.segments.len(),
                manifest = rec.manifest.is_some(),
                "uploading recording left in spool"
            );
            let files = rec.segments.iter().map(|(_, p)| p).chain(&rec.manifest);
            uploader.add_spooled(
                files
                    .filter_map(|p| p.metadata().ok())
                    .map(|m| m.len())
                    .sum(),
            );
            let uploads = RecordingUploads::new();
            for (seq, path) in rec.segments {
                uploader.segment(&uploads, &rec.id, &crate::segment::segment_name(seq), path);
            }
            match rec.manifest {
                Some(path) => uploader.manifest(&uploads, &rec.id, path),
                None => uploader.cleanup_when_settled(&uploads, rec.dir),
            }
        }
        Ok(RecordingStore::new(cfg, base, uploader, runtime, false))
    }

    /// Opens the store for reading, verifying, side objects and deletion only: no uploader work,
    /// no spool recovery, nothing created (not even the store directory). For the admin CLI and
    /// the replay UI, which run next to the daemon that owns the spool. [`RecordingStore::begin`]
    /// fails on it.
    pub async fn open_reader(cfg: StoreConfig) -> Result<RecordingStore, StoreError> {
        let (store, layout, base) = connect(&cfg, false)?;
        let runtime = Handle::current();
        let uploader = Uploader::new(store, layout, runtime.clone());
        Ok(RecordingStore::new(cfg, base, uploader, runtime, true))
    }

    fn new(
        cfg: StoreConfig,
        base: String,
        uploader: Uploader,
        runtime: Handle,
        read_only: bool,
    ) -> RecordingStore {
        RecordingStore {
            inner: Arc::new(StoreInner {
                cfg,
                base,
                uploader,
                runtime,
                compress_slots: Arc::new(Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
                read_only,
            }),
        }
    }

    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        if self.inner.read_only {
            return Err(StoreError::ReadOnly {
                url: self.inner.cfg.url.clone(),
            });
        }
        Ok(())
    }

    /// Bytes of segments and manifests waiting in the spool for upload (those that could not be
    /// uploaded for good included). Kept as a counter by a store from [`RecordingStore::open`];
    /// a reader store sums the spool directory's files instead (0 if it does not exist).
    pub fn spool_bytes(&self) -> u64 {
        if self.inner.read_only {
            spool::spooled_bytes(&self.inner.cfg.spool_dir)
        } else {
            self.inner.uploader.spooled()
        }
    }

    /// Human/DB-readable location of a recording, e.g. `s3://bucket/prefix/ID/`.
    pub fn location(&self, id: &str) -> String {
        format!("{}{id}/", self.inner.base)
    }

    /// Waits until everything handed to any writer before the call has been processed, and
    /// every segment closed and manifest written by then (all recordings) has been compressed,
    /// spooled and uploaded or given up on; false on timeout. A segment still open (neither
    /// full nor at its interval) stays open: `finish` closes it.
    /// Meant for a clean daemon shutdown; whatever is left stays in the spool for the next start.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.inner.uploader.idle(timeout).await
    }

    pub(crate) fn object_name(&self, path: &ObjectPath) -> String {
        let prefix = &self.inner.uploader.layout().prefix;
        let relative = path.as_ref();
        let relative = relative
            .strip_prefix(prefix.as_str())
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(relative);
        format!("{}{relative}", self.inner.base)
    }

    pub(crate) async fn segment_paths(
        &self,
        id: &str,
    ) -> Result<Vec<(u32, ObjectPath)>, ReadError> {
        check_id(id).map_err(|reason| ReadError::InvalidId {
            id: id.to_string(),
            reason,
        })?;
        let dir = self.inner.uploader.layout().recording_dir(id);
        let listed: Vec<_> = self
            .inner
            .uploader
            .store()
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| ReadError::Store {
                object: self.location(id),
                source,
            })?;
        let mut segments: Vec<(u32, ObjectPath)> = listed
            .into_iter()
            .filter_map(|meta| {
                let seq = parse_segment_name(meta.location.filename()?)?;
                Some((seq, meta.location))
            })
            .collect();
        segments.sort_by_key(|(seq, _)| *seq);
        if segments.is_empty() {
            return Err(ReadError::NotFound { id: id.to_string() });
        }
        Ok(segments)
    }

    pub(crate) async fn fetch(&self, path: &ObjectPath) -> Result<bytes::Bytes, ReadError> {
        let store = self.inner.uploader.store();
        let result = match store.get(path).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        };
        result.map_err(|source| ReadError::Store {
            object: self.object_name(path),
            source,
        })
    }

    /// The stored segments of a recording in order, whatever is there (gaps included): found by
    /// listing, so recordings without a manifest (crashed sessions) are readable too.
    pub async fn read_segments(&self, id: &str) -> Result<Vec<SegmentData>, ReadError> {
        let mut out = Vec::new();
        for (seq, path) in self.segment_paths(id).await? {
            let stored = self.fetch(&path).await?;
            out.push(SegmentData {
                seq,
                object: self.object_name(&path),
                stored,
            });
        }
        Ok(out)
    }

    /// Segment paths checked to be contiguous from 0: a cast with a hole would silently replay
    /// as if nothing happened in between.
    async fn contiguous_segments(&self, id: &str) -> Result<Vec<ObjectPath>, ReadError> {
        let segments = self.segment_paths(id).await?;
        let mut paths = Vec::with_capacity(segments.len());
        for (expected, (seq, path)) in (0u32..).zip(segments) {
            if seq != expected {
                return Err(ReadError::MissingSegment {
                    id: id.to_string(),
                    seq: expected,
                });
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// The recording as plain asciicast v2 bytes.
    pub async fn read_cast(&self, id: &str) -> Result<Vec<u8>, ReadError> {
        let mut cast = Vec::new();
        for path in self.contiguous_segments(id).await? {
            let stored = self.fetch(&path).await?;
            zstd::stream::copy_decode(stored.as_ref(), &mut cast).map_err(|source| {
                ReadError::Corrupt {
                    object: self.object_name(&path),
                    source,
                }
            })?;
        }
        Ok(cast)
    }

    /// Exports the recording to `out` as a `.cast` file, one segment in memory at a time;
    /// returns the number of bytes written.
    pub async fn write_cast(&self, id: &str, out: &Path) -> Result<u64, ReadError> {
        let paths = self.contiguous_segments(id).await?;
        let export = |source| ReadError::Export {
            path: out.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(out).await.map_err(export)?;
        let mut written = 0u64;
        for path in paths {
            let stored = self.fetch(&path).await?;
            let text = zstd::decode_all(stored.as_ref()).map_err(|source| ReadError::Corrupt {
                object: self.object_name(&path),
                source,
            })?;
            file.write_all(&text).await.map_err(export)?;
            written += text.len() as u64;
        }
        file.flush().await.map_err(export)?;
        file.sync_all().await.map_err(export)?;
        Ok(written)
    }

    /// The manifest, or `None` when the recording has none (still running, crashed, or its
    /// manifest is still in the spool).
    pub async fn read_manifest(&self, id: &str) -> Result<Option<Manifest>, ReadError> {
        check_id(id).map_err(|reason| ReadError::InvalidId {
            id: id.to_string(),
            reason,
        })?;
        let path = self.inner.uploader.layout().object(id, MANIFEST_NAME);
        let Some(bytes) = self.fetch_optional(&path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ReadError::Manifest {
                object: self.object_name(&path),
                source,
            })
    }
}

impl RecordingStore {
    /// Ids of the recordings present in the store (one listing request per 1,000 on S3), sorted.
    /// Names under the prefix that are not valid recording ids are skipped.
    pub async fn list_ids(&self) -> Result<Vec<String>, ReadError> {
        let layout = self.inner.uploader.layout();
        let root = (!layout.prefix.is_empty()).then(|| ObjectPath::from(layout.prefix.as_str()));
        let listed = self
            .inner
            .uploader
            .store()
            .list_with_delimiter(root.as_ref())
            .await
            .map_err(|source| ReadError::Store {
                object: self.inner.base.clone(),
                source,
            })?;
        let mut ids: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|dir| dir.filename())
            .filter(|id| check_id(id).is_ok())
            .map(str::to_string)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every object of a recording (segments, manifest, side objects).
    pub(crate) async fn recording_objects(&self, id: &str) -> Result<Vec<ObjectPath>, ReadError> {
        check_id(id).map_err(|reason| ReadError::InvalidId {
            id: id.to_string(),
            reason,
        })?;
        let dir = self.inner.uploader.layout().recording_dir(id);
        self.inner
            .uploader
            .store()
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|source| ReadError::Store {
                object: self.location(id),
                source,
            })
    }

    /// Removes every object of a recording and returns how many there were (0: nothing there).
    ///
    /// The manifest goes first, so a deletion cut short never leaves a recording that looks
    /// complete; the rest goes in bulk (S3 `DeleteObjects`, 1,000 keys a request), newest segment
    /// first. Works on a reader store; the spool is not touched (a recording still being uploaded
    /// reappears).
    pub async fn delete(&self, id: &str) -> Result<u64, ReadError> {
        let mut objects = self.recording_objects(id).await?;
        // Sort key: manifest, then side objects, then segments by descending seq.
        objects.sort_by_key(|path| match path.filename() {
            Some(MANIFEST_NAME) => (0, 0),
            Some(name) => parse_segment_name(name).map_or((1, 0), |seq| (2, u32::MAX - seq)),
            None => (1, 0),
        });
        let store = self.inner.uploader.store();
        let failed = |path: &ObjectPath, source| ReadError::Delete {
            object: self.object_name(path),
            source,
        };
        let mut deleted = 0;
        let mut rest = objects.into_iter().peekable();
        if let Some(manifest) = rest.next_if(|p| p.filename() == Some(MANIFEST_NAME)) {
            match store.delete(&manifest).await {
                Ok(()) => deleted += 1,
                // Someone else deleted it meanwhile: the goal is reached all the same.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(failed(&manifest, source)),
            }
        }
        let mut results = store.delete_stream(futures::stream::iter(rest.map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(ReadError::Delete {
                        object: self.location(id),
                        source,
                    });
                }
            }
        }
        Ok(deleted)
    }

    /// Stores a side object next to a recording's segments (e.g. its search index), create-only:
    /// writing identical bytes again succeeds, different bytes fail with
    /// [`StoreError::ObjectExists`]. Names starting with `seg-` and `manifest.json` are refused.
    /// Written straight to the store (no spool), so it also works on a reader store.
    pub async fn write_object(
        &self,
        id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let path = self.side_object(id, name).map_err(|e| match e {
            SideName::Id(reason) => StoreError::InvalidId {
                id: id.to_string(),
                reason,
            },
            SideName::Name(reason) => StoreError::InvalidName {
                name: name.to_string(),
                reason,
            },
        })?;
        let write = |source| StoreError::Write {
            object: self.object_name(&path),
            source,
        };
        let bytes = bytes::Bytes::from(bytes);
        let store = self.inner.uploader.store();
        let create = PutOptions::from(PutMode::Create);
        match store
            .put_opts(&path, PutPayload::from(bytes.clone()), create)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = match store.get(&path).await {
                    Ok(result) => result.bytes().await.map_err(write)?,
                    Err(e) => return Err(write(e)),
                };
                if existing == bytes {
                    Ok(())
                } else {
                    Err(StoreError::ObjectExists {
                        object: self.object_name(&path),
                    })
                }
            }
            Err(e) => Err(write(e)),
        }
    }

    /// A side object written by [`RecordingStore::write_object`]; `None` if there is none.
    pub async fn read_object(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<bytes::Bytes>, ReadError> {
        let path = self.side_object(id, name).map_err(|e| match e {
            SideName::Id(reason) => ReadError::InvalidId {
                id: id.to_string(),
                reason,
            },
            SideName::Name(reason) => ReadError::InvalidName {
                name: name.to_string(),
                reason,
            },
        })?;
        self.fetch_optional(&path).await
    }

    /// One stored segment, for seeking; [`ReadError::MissingSegment`] if it is not there.
    pub async fn read_segment(&self, id: &str, seq: u32) -> Result<SegmentData, ReadError> {
        check_id(id).map_err(|reason| ReadError::InvalidId {
            id: id.to_string(),
            reason,
        })?;
        let path = self
            .inner
            .uploader
            .layout()
            .object(id, &crate::segment::segment_name(seq));
        match self.fetch_optional(&path).await? {
            Some(stored) => Ok(SegmentData {
                seq,
                object: self.object_name(&path),
                stored,
            }),
            None => Err(ReadError::MissingSegment {
                id: id.to_string(),
                seq,
            }),
        }
    }

    fn side_object(&self, id: &str, name: &str) -> Result<ObjectPath, SideName> {
        check_id(id).map_err(SideName::Id)?;
        check_object_name(name).map_err(SideName::Name)?;
        Ok(self.inner.uploader.layout().object(id, name))
    }

    pub(crate) async fn fetch_optional(
        &self,
        path: &ObjectPath,
    ) -> Result<Option<bytes::Bytes>, ReadError> {
        match self.fetch(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(ReadError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Which half of a side object's address was invalid.
enum SideName {
    Id(&'static str),
    Name(&'static str),
}
