//! Where a store URL points (`file://` or `s3://`) and the S3 client behind `s3://` URLs.
//!
//! S3 settings come from the standard environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, ... as read
//! by `AmazonS3Builder::from_env`), overridden field by field by [`S3Options`] (bastion's `[s3]`
//! config table). AWS S3, MinIO, Ceph RGW and Cloudflare R2 all speak this; create-only writes use
//! `If-None-Match: *`, which all of them (and moto) honour.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::StoreError;

/// Connecting to the store takes at most this long; a down endpoint then fails fast and the
/// uploader's own backoff takes over.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// S3 settings that override what `AmazonS3Builder::from_env()` found (`AWS_*` variables).
#[derive(Clone, Default)]
pub struct S3Options {
    /// `http(s)://host:port` of an S3-compatible server; unset for AWS itself. With
    /// `virtual_hosted_style` it is used as is, so it must then include the bucket
    /// (`https://BUCKET.minio.example.com`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Permit `http://` endpoints (test servers, a MinIO on a private network).
    pub allow_http: Option<bool>,
    /// `https://BUCKET.host/KEY` instead of the default path style `https://host/BUCKET/KEY`.
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

pub(crate) enum Target {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

pub(crate) fn parse_url(url: &str) -> Result<Target, StoreError> {
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

/// The S3 client for `bucket`. `request_timeout` bounds one request (connect included), after
/// which object_store retries it a few times within the same limit before giving up, so that an
/// outage surfaces as an error to the uploader, which keeps the spool copy and backs off.
pub(crate) fn s3_store(
    bucket: &str,
    opts: &S3Options,
    request_timeout: Duration,
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let millis = |d: Duration| format!("{}ms", d.as_millis().max(1));
    // Timeouts go through `with_config` rather than `with_client_options`, which would replace
    // the client settings `from_env` found (`AWS_ALLOW_HTTP` among them).
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            millis(CONNECT_TIMEOUT.min(request_timeout)),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            millis(request_timeout),
        )
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: request_timeout,
            ..RetryConfig::default()
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordingStore, StoreConfig};

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

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let opts = S3Options {
            secret_access_key: Some("hunter2".to_string()),
            ..S3Options::default()
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
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
