//! The recording store: where recordings go (local directory or S3), the spool in front of it,
//! and reading recordings back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::error::{ReadError, StoreError, check_id};
use crate::manifest::{MANIFEST_NAME, Manifest};
use crate::segment::parse_segment_name;
use crate::spool;
use crate::uploader::{Layout, RecordingUploads, Uploader};

/// S3 settings that override what `AmazonS3Builder::from_env()` found (`AWS_*` variables).
#[derive(Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .finish()
    }
}

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
}

/// One stored segment as read back.
#[derive(Debug, Clone)]
pub struct SegmentData {
    pub seq: u32,
    /// Object path in the store.
    pub object: String,
    /// The stored (zstd-compressed) bytes.
    pub stored: bytes::Bytes,
}

impl SegmentData {
    /// The asciicast lines the segment holds.
    pub fn decompress(&self) -> Result<Vec<u8>, ReadError> {
        zstd::decode_all(self.stored.as_ref()).map_err(|source| ReadError::Corrupt {
            object: self.object.clone(),
            source,
        })
    }
}

enum Target {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

fn parse_url(url: &str) -> Result<Target, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    // `file://data/x` is not a valid file URL (url would read `data` as a host), so file URLs
    // are taken apart by hand: everything after `file://` is a path, relative unless it starts
    // with `/`.
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(invalid("missing path"));
        }
        let path = Path::new(path);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| invalid(&format!("cannot resolve relative path: {e}")))?
                .join(path)
        };
        return Ok(Target::File(path));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    match parsed.scheme() {
        "s3" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("missing bucket"))?;
            let prefix = parsed.path().trim_matches('/').to_string();
            Ok(Target::S3 {
                bucket: bucket.to_string(),
                prefix,
            })
        }
        other => Err(invalid(&format!(
            "unsupported scheme {other:?}, expected file or s3"
        ))),
    }
}

fn s3_store(bucket: &str, opts: &S3Options) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &opts.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &opts.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &opts.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(allow) = opts.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some(virtual_hosted) = opts.virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(virtual_hosted);
    }
    Ok(Arc::new(builder.build()?))
}

impl RecordingStore {
    /// Opens the store and queues whatever a previous process left in the spool for upload.
    pub async fn open(mut cfg: StoreConfig) -> Result<RecordingStore, StoreError> {
        let (store, layout, base): (Arc<dyn ObjectStore>, Layout, String) =
            match parse_url(&cfg.url)? {
                Target::File(dir) => {
                    std::fs::create_dir_all(&dir).map_err(|source| StoreError::LocalDir {
                        path: dir.clone(),
                        source,
                    })?;
                    let backend = |source| StoreError::Backend {
                        url: cfg.url.clone(),
                        source,
                    };
                    // fsync: the spool copy is deleted once this returns, so it must be durable.
                    let local = LocalFileSystem::new_with_prefix(&dir)
                        .map_err(backend)?
                        .with_fsync(true);
                    let root =
                        std::fs::canonicalize(&dir).map_err(|source| StoreError::LocalDir {
                            path: dir.clone(),
                            source,
                        })?;
                    let base = format!("file://{}/", root.display());
                    (
                        Arc::new(local),
                        Layout {
                            prefix: String::new(),
                        },
                        base,
                    )
                }
                Target::S3 { bucket, prefix } => {
                    let store =
                        s3_store(&bucket, &cfg.s3).map_err(|source| StoreError::Backend {
                            url: cfg.url.clone(),
                            source,
                        })?;
                    let base = if prefix.is_empty() {
                        format!("s3://{bucket}/")
                    } else {
                        format!("s3://{bucket}/{prefix}/")
                    };
                    (store, Layout { prefix }, base)
                }
            };
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
            let uploads = RecordingUploads::new();
            for (seq, path) in rec.segments {
                uploader.segment(&uploads, &rec.id, &crate::segment::segment_name(seq), path);
            }
            match rec.manifest {
                Some(path) => uploader.manifest(&uploads, &rec.id, path),
                None => uploader.cleanup_when_settled(&uploads, rec.dir),
            }
        }
        Ok(RecordingStore {
            inner: Arc::new(StoreInner {
                cfg,
                base,
                uploader,
                runtime,
                compress_slots: Arc::new(Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
            }),
        })
    }

    /// Human/DB-readable location of a recording, e.g. `s3://bucket/prefix/ID/`.
    pub fn location(&self, id: &str) -> String {
        format!("{}{id}/", self.inner.base)
    }

    /// Waits until every queued upload (all recordings) has settled; false on timeout.
    /// Meant for a clean daemon shutdown; whatever is left stays in the spool for the next start.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.inner.uploader.idle(timeout).await
    }

    fn object_name(&self, path: &ObjectPath) -> String {
        let prefix = &self.inner.uploader.layout().prefix;
        let relative = path.as_ref();
        let relative = relative
            .strip_prefix(prefix.as_str())
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(relative);
        format!("{}{relative}", self.inner.base)
    }

    async fn segment_paths(&self, id: &str) -> Result<Vec<(u32, ObjectPath)>, ReadError> {
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

    async fn fetch(&self, path: &ObjectPath) -> Result<bytes::Bytes, ReadError> {
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
        let bytes = match self.fetch(&path).await {
            Ok(bytes) => bytes,
            Err(ReadError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ReadError::Manifest {
                object: self.object_name(&path),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_for_file_and_s3() {
        match parse_url("s3://bucket/a/b/").unwrap() {
            Target::S3 { bucket, prefix } => {
                assert_eq!((bucket.as_str(), prefix.as_str()), ("bucket", "a/b"))
            }
            Target::File(_) => panic!("expected s3"),
        }
        match parse_url("file://data/recordings").unwrap() {
            Target::File(path) => {
                assert!(path.is_absolute());
                assert!(path.ends_with("data/recordings"));
            }
            Target::S3 { .. } => panic!("expected file"),
        }
        match parse_url("file:///srv/rec").unwrap() {
            Target::File(path) => assert_eq!(path, PathBuf::from("/srv/rec")),
            Target::S3 { .. } => panic!("expected file"),
        }
        for bad in ["s3:///nobucket", "http://x/y", "file://", "nonsense"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn s3_store_is_constructed_from_url_without_network() {
        let spool = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            url: "s3://recordings/bastion/prod".to_string(),
            spool_dir: spool.path().to_path_buf(),
            s3: S3Options {
                endpoint: Some("http://127.0.0.1:9".to_string()),
                region: Some("us-east-1".to_string()),
                access_key_id: Some("key".to_string()),
                secret_access_key: Some("secret".to_string()),
                allow_http: Some(true),
                virtual_hosted_style: Some(false),
            },
            ..StoreConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("secret\""));
        let store = RecordingStore::open(cfg).await.unwrap();
        assert_eq!(store.location("abc"), "s3://recordings/bastion/prod/abc/");
        assert_eq!(
            store
                .inner
                .uploader
                .layout()
                .object("abc", "seg-00000000.zst")
                .as_ref(),
            "bastion/prod/abc/seg-00000000.zst"
        );
    }
}
