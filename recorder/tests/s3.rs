//! The recorder against a real S3-compatible server (moto, started per test): round trips with
//! path-style requests, create-only writes, a segment above the 5 MiB multipart threshold going
//! up as one PUT, an outage in the middle of a session, a killed process's spool, and tampering.
//! Virtual-hosted requests are checked at the wire against a stub listener (moto would need
//! wildcard DNS for them).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use recorder::{
    ReadError, RecordingStore, S3Options, StoreConfig, StoreError, VerifyStatus, parse_cast,
};
use support::moto::{BUCKET, Moto};
use support::{meta, signing_key};

/// A plain S3 client on the same server, for doing what the recorder never does.
fn raw_client(moto: &Moto) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(moto.endpoint())
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_allow_http(true)
            .build()?,
    ))
}

/// Output events' data joined, from a cast.
fn output_of(cast: &[u8]) -> anyhow::Result<String> {
    Ok(parse_cast(cast)?
        .events
        .iter()
        .filter(|e| e.kind.code() == "o")
        .map(|e| e.data.as_str())
        .collect())
}

#[tokio::test]
async fn recording_round_trips_through_s3_with_path_style_requests() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("recording_round_trips_through_s3") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        segment_bytes: 2000,
        signing_key: Some(signing_key()),
        ..moto.config(dir.path(), "bastion/prod")
    };
    let store = RecordingStore::open(cfg.clone()).await?;
    let writer = store.begin(meta("s3-1"))?;
    let mut expected = String::new();
    for i in 0..60 {
        let chunk = format!("row {i:03} {}\r\n", "w".repeat(150));
        writer.output(chunk.as_bytes()).await?;
        expected.push_str(&chunk);
    }
    let summary = writer.finish("logout").await?;
    assert!(summary.complete && summary.uploaded, "{summary:?}");
    assert!(summary.segments > 3);
    assert_eq!(
        store.location("s3-1"),
        format!("s3://{BUCKET}/bastion/prod/s3-1/")
    );

    let cast = store.read_cast("s3-1").await?;
    assert_eq!(cast.len() as u64, summary.raw_bytes);
    assert_eq!(output_of(&cast)?, expected);
    let key = signing_key().verifying_key();
    let v = store.verify("s3-1", Some(&key)).await?;
    assert_eq!(
        (v.status, v.segments_ok, v.signed),
        (VerifyStatus::Complete, summary.segments, true),
        "{v:?}"
    );
    // Path style: the bucket is the first path element, the prefix follows.
    let log = moto.log();
    assert!(
        log.contains(&format!(
            "\"PUT /{BUCKET}/bastion/prod/s3-1/seg-00000000.zst HTTP/1.1\" 200"
        )),
        "{log}"
    );
    assert!(log.contains(&format!("\"PUT /{BUCKET}/bastion/prod/s3-1/manifest.json")));

    // The read-only side: listing, one segment, side objects, deletion.
    let reader = RecordingStore::open_reader(cfg).await?;
    assert_eq!(reader.list_ids().await?, ["s3-1"]);
    let seg = reader.read_segment("s3-1", 1).await?;
    assert_eq!(seg.trailer()?.expect("trailer").seq, 1);
    reader
        .write_object("s3-1", "index.json.zst", b"index".to_vec())
        .await?;
    assert_eq!(
        reader
            .read_object("s3-1", "index.json.zst")
            .await?
            .as_deref(),
        Some(b"index".as_slice())
    );
    let objects = summary.segments as u64 + 2;
    assert_eq!(reader.delete("s3-1").await?, objects);
    // Segments go in bulk requests (the manifest first, on its own).
    let log = moto.log();
    assert!(
        log.contains(&format!("\"POST /{BUCKET}?delete HTTP/1.1\" 200")),
        "{log}"
    );
    assert!(reader.list_ids().await?.is_empty());
    assert!(matches!(
        reader.read_cast("s3-1").await,
        Err(ReadError::NotFound { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn create_only_holds_on_the_server() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("create_only_holds_on_the_server") else {
        return Ok(());
    };
    // moto honours `If-None-Match: *`: a second create of a key fails, whatever the bytes.
    let raw = raw_client(&moto)?;
    let path = ObjectPath::from("probe/key");
    let create = || PutOptions::from(PutMode::Create);
    raw.put_opts(&path, PutPayload::from_static(b"one"), create())
        .await?;
    let second = raw
        .put_opts(&path, PutPayload::from_static(b"one"), create())
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "{second:?}"
    );

    let dir = tempfile::tempdir()?;
    let cfg = moto.config(dir.path(), "rec");
    let store = RecordingStore::open(cfg.clone()).await?;
    store.write_object("c-1", "notes", b"a".to_vec()).await?;
    store.write_object("c-1", "notes", b"a".to_vec()).await?;
    assert!(matches!(
        store.write_object("c-1", "notes", b"b".to_vec()).await,
        Err(StoreError::ObjectExists { .. })
    ));

    // A spooled segment whose object already exists with other bytes is never overwritten.
    let original = zstd::encode_all(&b"{\"version\":2,\"width\":1,\"height\":1}\n"[..], 3)?;
    let forged = zstd::encode_all(&b"{\"version\":2,\"width\":9,\"height\":9}\n"[..], 3)?;
    let object = ObjectPath::from("rec/c-2/seg-00000000.zst");
    raw.put(&object, PutPayload::from(original.clone())).await?;
    let spooled = cfg.spool_dir.join("c-2");
    std::fs::create_dir_all(&spooled)?;
    std::fs::write(spooled.join("seg-00000000.zst"), &forged)?;
    let restarted = RecordingStore::open(cfg).await?;
    assert!(restarted.flush(Duration::from_secs(30)).await);
    assert_eq!(raw.get(&object).await?.bytes().await?, original);
    assert_eq!(std::fs::read(spooled.join("seg-00000000.zst"))?, forged);
    Ok(())
}

/// Text zstd cannot shrink much: 64 symbols, 6 bits of entropy per byte.
fn incompressible_text(bytes: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state >> 58) as usize] as char
        })
        .collect()
}

#[tokio::test]
async fn a_segment_above_the_multipart_threshold_is_one_put() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("a_segment_above_the_multipart_threshold_is_one_put") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        segment_bytes: 64 * 1024 * 1024,
        ..moto.config(dir.path(), "big")
    };
    let store = RecordingStore::open(cfg).await?;
    let writer = store.begin(meta("big-1"))?;
    let text = incompressible_text(8 * 1024 * 1024);
    for chunk in text.as_bytes().chunks(32 * 1024) {
        writer.output(chunk).await?;
    }
    let summary = writer.finish("done").await?;
    assert!(summary.uploaded, "{summary:?}");
    assert_eq!(summary.segments, 1);
    let segment = store.read_segment("big-1", 0).await?;
    assert!(
        segment.stored.len() > 5 * 1024 * 1024,
        "segment is only {} bytes",
        segment.stored.len()
    );
    assert_eq!(output_of(&store.read_cast("big-1").await?)?, text);

    let log = moto.log();
    let puts = log
        .lines()
        .filter(|l| l.contains("PUT /recordings/big/big-1/seg-00000000.zst HTTP"))
        .count();
    assert_eq!(puts, 1, "{log}");
    assert!(!log.contains("uploads"), "multipart upload used: {log}");
    Ok(())
}

#[tokio::test]
async fn an_outage_mid_session_loses_nothing() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("an_outage_mid_session_loses_nothing") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        segment_bytes: 2000,
        request_timeout: Duration::from_secs(2),
        signing_key: Some(signing_key()),
        ..moto.config(dir.path(), "outage")
    };
    let store = RecordingStore::open(cfg.clone()).await?;
    let writer = store.begin(meta("out-1"))?;
    let mut expected = String::new();
    let mut line = |i: usize| {
        let chunk = format!("event {i:04} {}\r\n", "o".repeat(200));
        expected.push_str(&chunk);
        chunk
    };
    for i in 0..20 {
        writer.output(line(i).as_bytes()).await?;
    }
    assert!(store.flush(Duration::from_secs(30)).await);
    assert_eq!(store.spool_bytes(), 0);

    moto.pause();
    let outage = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut i = 20;
    while outage.elapsed() < Duration::from_secs(10) {
        let started = Instant::now();
        writer.output(line(i).as_bytes()).await?;
        slowest = slowest.max(started.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let piled = store.spool_bytes();
    let spooled_segments = support::files_named(&cfg.spool_dir.join("out-1"), |n| {
        recorder::parse_segment_name(n).is_some()
    })?
    .len();
    moto.resume();

    // The session never waited for the store.
    assert!(
        slowest < Duration::from_secs(1),
        "an output call took {slowest:?}"
    );
    assert!(
        spooled_segments >= 10,
        "only {spooled_segments} segments piled up"
    );
    assert!(piled > 0);

    writer.output(line(i).as_bytes()).await?;
    writer.finish("logout").await?;
    assert!(
        store.flush(Duration::from_secs(120)).await,
        "uploads did not catch up"
    );
    assert_eq!(store.spool_bytes(), 0);
    assert!(!cfg.spool_dir.join("out-1").exists());
    assert_eq!(output_of(&store.read_cast("out-1").await?)?, expected);
    let v = store
        .verify("out-1", Some(&signing_key().verifying_key()))
        .await?;
    assert_eq!(v.status, VerifyStatus::Complete, "{v:?}");
    Ok(())
}

/// `kill -9` as far as the recorder can tell: its runtime vanishes with segments in the spool,
/// no finish and no manifest; the next `open` on that spool uploads them.
#[test]
fn a_killed_process_leaves_segments_the_next_open_uploads() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("a_killed_process_leaves_segments_the_next_open_uploads") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        segment_bytes: 1000,
        request_timeout: Duration::from_secs(1),
        signing_key: Some(signing_key()),
        ..moto.config(dir.path(), "killed")
    };
    let spool = cfg.spool_dir.join("kill-1");
    let chunk = |i: usize| format!("before the kill {i:03} {}\r\n", "k".repeat(100));

    // The store is frozen so that nothing leaves the spool before the "kill".
    moto.pause();
    let first = tokio::runtime::Runtime::new()?;
    let written = first.block_on(async {
        let store = RecordingStore::open(cfg.clone()).await?;
        let writer = store.begin(meta("kill-1"))?;
        for i in 0..50 {
            writer.output(chunk(i).as_bytes()).await?;
        }
        let closed = support::eventually(Duration::from_secs(10), || {
            support::files_named(&spool, |n| n.ends_with(".zst"))
                .is_ok_and(|files| files.len() >= 5)
        })
        .await;
        anyhow::ensure!(closed, "segments did not reach the spool");
        // Let any spool write in progress finish, then drop everything mid-session.
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::mem::forget(writer);
        Ok::<_, anyhow::Error>(50)
    })?;
    first.shutdown_background();
    let left: Vec<String> = support::files_named(&spool, |_| true)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(
        left.iter()
            .all(|n| recorder::parse_segment_name(n).is_some()),
        "{left:?}"
    );
    moto.resume();

    let second = tokio::runtime::Runtime::new()?;
    second.block_on(async {
        let store = RecordingStore::open(cfg.clone()).await?;
        assert!(
            store.flush(Duration::from_secs(60)).await,
            "leftovers not uploaded"
        );
        assert!(!spool.exists());
        let cast = store.read_cast("kill-1").await?;
        let events = parse_cast(&cast)?.events;
        // Everything in a closed segment survived, in order; only the open segment is lost.
        assert!(!events.is_empty());
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.data, chunk(i));
        }
        assert!(events.len() > written - 10, "only {} events", events.len());
        let v = store
            .verify("kill-1", Some(&signing_key().verifying_key()))
            .await?;
        assert_eq!(v.status, VerifyStatus::Truncated, "{v:?}");
        assert_eq!(v.segments_ok as usize, left.len());
        assert!(v.detail.contains("no manifest"), "{}", v.detail);
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

#[tokio::test]
async fn tampering_on_s3_is_detected() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("tampering_on_s3_is_detected") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        segment_bytes: 1000,
        signing_key: Some(signing_key()),
        ..moto.config(dir.path(), "tamper")
    };
    let store = RecordingStore::open(cfg).await?;
    let writer = store.begin(meta("t-1"))?;
    for i in 0..30 {
        writer
            .output(format!("secret {i} {}\r\n", "s".repeat(100)).as_bytes())
            .await?;
    }
    writer.finish("logout").await?;
    // Someone with write access to the bucket moves segment 2 over segment 1.
    let raw = raw_client(&moto)?;
    let two = raw
        .get(&ObjectPath::from("tamper/t-1/seg-00000002.zst"))
        .await?
        .bytes()
        .await?;
    raw.put(
        &ObjectPath::from("tamper/t-1/seg-00000001.zst"),
        PutPayload::from(two),
    )
    .await?;
    let v = store
        .verify("t-1", Some(&signing_key().verifying_key()))
        .await?;
    assert_eq!(
        (v.status, v.first_bad),
        (VerifyStatus::Tampered, Some(1)),
        "{v:?}"
    );
    assert!(v.detail.contains("segment 1 is segment 2"), "{}", v.detail);
    Ok(())
}

/// Serves one request on a stub listener and returns its request line.
fn request_line_for(opts: S3Options, url: &str) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> std::io::Result<String> {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte)? == 1 {
            head.push(byte[0]);
        }
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        let head = String::from_utf8_lossy(&head).into_owned();
        Ok(head.lines().next().unwrap_or_default().to_string())
    });
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        url: url.to_string(),
        spool_dir: dir.path().join("spool"),
        s3: S3Options {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            ..opts
        },
        ..StoreConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = RecordingStore::open_reader(cfg).await?;
        store.write_object("v-1", "probe", b"x".to_vec()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("stub server panicked"))?
        .map_err(Into::into)
}

#[test]
fn virtual_hosted_requests_leave_the_bucket_out_of_the_path() -> anyhow::Result<()> {
    let opts = S3Options {
        region: Some("us-east-1".to_string()),
        access_key_id: Some("k".to_string()),
        secret_access_key: Some("s".to_string()),
        allow_http: Some(true),
        ..S3Options::default()
    };
    let path_style = request_line_for(
        S3Options {
            virtual_hosted_style: Some(false),
            ..opts.clone()
        },
        "s3://rec-bucket/pre",
    )?;
    assert_eq!(path_style, "PUT /rec-bucket/pre/v-1/probe HTTP/1.1");
    // Virtual-hosted: the endpoint already names the bucket (`https://BUCKET.host`).
    let virtual_hosted = request_line_for(
        S3Options {
            virtual_hosted_style: Some(true),
            ..opts
        },
        "s3://rec-bucket/pre",
    )?;
    assert_eq!(virtual_hosted, "PUT /pre/v-1/probe HTTP/1.1");
    Ok(())
}
