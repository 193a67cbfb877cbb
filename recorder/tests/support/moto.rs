//! A real S3-compatible server for the recorder's tests and examples: testkit's `moto_server`
//! launcher, plus the recorder settings that point a store at it.
//!
//! Missing `moto_server` fails the test in CI (`CI=true`) and skips it loudly elsewhere.
//! `MOTO_SERVER` overrides the program path. The seek benchmark includes this file too.

use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use recorder::{S3Options, StoreConfig};

pub const BUCKET: &str = testkit::moto::BUCKET;

/// A running server with bucket [`BUCKET`], killed on drop.
pub struct Moto(testkit::moto::Moto);

impl Deref for Moto {
    type Target = testkit::moto::Moto;

    fn deref(&self) -> &testkit::moto::Moto {
        &self.0
    }
}

impl Moto {
    /// A running server; `None` (after saying SKIP) when moto is not installed outside CI.
    /// A server that does not start fails the test.
    pub fn start(test: &str) -> Option<Moto> {
        match testkit::moto::Moto::start_for(test) {
            Ok(moto) => moto.map(Moto),
            Err(err) => panic!("{err:#}"),
        }
    }

    /// A running server for a benchmark asked to use S3: missing moto is an error.
    pub fn start_required() -> anyhow::Result<Moto> {
        testkit::moto::Moto::start_required().map(Moto)
    }

    /// Path-style options pointing at this server (moto accepts any credentials).
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some(testkit::moto::REGION.to_string()),
            access_key_id: Some(testkit::moto::ACCESS_KEY_ID.to_string()),
            secret_access_key: Some(testkit::moto::SECRET_ACCESS_KEY.to_string()),
            allow_http: Some(true),
            virtual_hosted_style: Some(false),
        }
    }

    /// A store config for `s3://BUCKET/{prefix}` with its spool under `dir`.
    pub fn config(&self, dir: &Path, prefix: &str) -> StoreConfig {
        StoreConfig {
            url: self.url(prefix),
            spool_dir: dir.join("spool"),
            segment_interval: Duration::from_secs(3600),
            s3: self.s3_options(),
            ..StoreConfig::default()
        }
    }
}
