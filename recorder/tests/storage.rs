//! Storage behaviour: segmentation, the manifest chain, spool recovery, create-only uploads,
//! retries and failing closed when the spool breaks.

mod support;

use std::io::Write as _;
use std::time::Duration;

use recorder::{RecordError, RecordingStore, chain_of, parse_cast};
use sha2::Digest as _;
use support::{Fixture, eventually, files_named, meta};

#[tokio::test]
async fn segments_close_by_size_and_concatenate_to_the_cast() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 4096).await?;
    let writer = fx.store.begin(meta("size-1"))?;
    let mut expected = String::new();
    for i in 0..100 {
        let chunk = format!("{i:04} {}\r\n", "x".repeat(990));
        expected.push_str(&chunk);
        writer.output(chunk.as_bytes()).await?;
    }
    let summary = writer.finish("done").await?;
    assert!(summary.complete && summary.uploaded);

    let segments = fx.stored_segments("size-1")?;
    assert_eq!(segments.len() as u32, summary.segments);
    assert!(segments.len() >= 20, "only {} segments", segments.len());
    let mut concatenated = Vec::new();
    for (n, (name, stored)) in segments.iter().enumerate() {
        assert_eq!(name, &recorder::segment_name(n as u32));
        // Each segment is an independent frame of whole lines.
        let text = zstd::decode_all(stored.as_slice())?;
        assert!(
            text.ends_with(b"\n"),
            "{name} does not end with a whole line"
        );
        assert_eq!(
            text.starts_with(b"{"),
            n == 0,
            "{name}: header only in segment 0"
        );
        if n + 1 < segments.len() {
            assert!(
                text.len() >= 4096,
                "{name} closed early at {} bytes",
                text.len()
            );
        }
        concatenated.extend_from_slice(stored);
    }
    // `cat seg-* | zstd -dc` semantics: one multi-frame stream equal to the cast.
    let cast = fx.store.read_cast("size-1").await?;
    assert_eq!(zstd::decode_all(concatenated.as_slice())?, cast);
    assert_eq!(cast.len() as u64, summary.raw_bytes);

    let parsed = parse_cast(&cast)?;
    let output: String = parsed
        .events
        .iter()
        .filter(|e| e.kind.code() == "o")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(output, expected);
    Ok(())
}

/// `flush` covers segments still being compressed, not only those already queued for upload:
/// right after the writes, every closed segment is in the store although the session goes on.
#[tokio::test]
async fn flush_waits_for_segments_still_compressing() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 1024).await?;
    let writer = fx.store.begin(meta("flush-1"))?;
    // Each 4 KiB event fills a segment by itself, so every write closes exactly one.
    let writes = 64;
    for i in 0..writes {
        writer
            .output(format!("{i:04}{}", "y".repeat(4092)).as_bytes())
            .await?;
    }
    assert!(fx.store.flush(Duration::from_secs(30)).await);
    let stored = fx.stored_segments("flush-1")?;
    assert_eq!(
        stored.len(),
        writes,
        "segments closed before flush but not stored when it returned"
    );
    let summary = writer.finish("done").await?;
    assert!(summary.complete && summary.uploaded);
    Ok(())
}

#[tokio::test]
async fn interval_closes_a_segment_without_new_events() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_interval = Duration::from_millis(200)).await?;
    let writer = fx.store.begin(meta("interval-1"))?;
    writer.output(b"first").await?;
    let seg0 = fx.store_root().join("interval-1").join("seg-00000000.zst");
    // No further event: only the timer can close the segment.
    assert!(
        eventually(Duration::from_secs(5), || seg0.exists()).await,
        "segment 0 never closed"
    );
    let text = zstd::decode_all(std::fs::read(&seg0)?.as_slice())?;
    assert!(String::from_utf8(text)?.contains("\"first\""));

    writer.output(b"second").await?;
    let seg1 = fx.store_root().join("interval-1").join("seg-00000001.zst");
    assert!(
        eventually(Duration::from_secs(5), || seg1.exists()).await,
        "segment 1 never closed"
    );
    // An idle recording does not produce empty segments.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.stored_segments("interval-1")?.len(), 2);

    let summary = writer.finish("done").await?;
    assert_eq!(summary.segments, 3);
    let parsed = parse_cast(&fx.store.read_cast("interval-1").await?)?;
    let data: Vec<&str> = parsed.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["first", "second", "end: done"]);
    Ok(())
}

#[tokio::test]
async fn manifest_chain_matches_the_stored_segments() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 1000).await?;
    let writer = fx.store.begin(meta("chain-1"))?;
    let other = writer.clone();
    for i in 0..30 {
        writer
            .output(format!("output {i} {}\r\n", "y".repeat(100)).as_bytes())
            .await?;
        other.input(b"k").await?;
    }
    let summary = writer.finish("logout").await?;
    // A clone shares the recording: it is finished for every handle.
    assert!(matches!(
        other.output(b"late").await,
        Err(RecordError::Finished { .. })
    ));
    assert!(matches!(
        other.finish("again").await,
        Err(RecordError::Finished { .. })
    ));

    let manifest = fx
        .store
        .read_manifest("chain-1")
        .await?
        .expect("manifest stored");
    assert_eq!(manifest.format, recorder::MANIFEST_FORMAT);
    assert!(manifest.complete);
    assert_eq!(manifest.end_reason, "logout");
    assert_eq!(manifest.session.grant_id, Some(42));
    assert_eq!((&manifest.signature, &manifest.public_key), (&None, &None));
    assert_eq!(manifest.totals.events, 61);
    assert_eq!(manifest.totals.segments, summary.segments);
    assert_eq!(manifest.totals.raw_bytes, summary.raw_bytes);
    assert_eq!(manifest.totals.stored_bytes, summary.stored_bytes);

    let stored = fx.store.read_segments("chain-1").await?;
    assert_eq!(stored.len(), manifest.segments.len());
    let frames = stored
        .iter()
        .map(|s| s.frame())
        .collect::<Result<Vec<_>, _>>()?;
    let chain = chain_of(frames.iter().copied());
    let mut previous_last = 0.0;
    for (((entry, segment), link), frame) in manifest
        .segments
        .iter()
        .zip(&stored)
        .zip(&chain)
        .zip(&frames)
    {
        assert_eq!(entry.seq, segment.seq);
        assert_eq!(entry.object, recorder::segment_name(segment.seq));
        assert_eq!(entry.stored_bytes, segment.stored.len() as u64);
        assert_eq!(entry.raw_bytes, segment.decompress()?.len() as u64);
        // Hashes cover the data frame; the trailer repeats them.
        assert_eq!(entry.sha256, hex::encode(sha2::Sha256::digest(frame)));
        assert_eq!(entry.chain, hex::encode(link));
        let trailer = segment.trailer()?.expect("every segment has a trailer");
        assert_eq!((trailer.seq, trailer.id.as_str()), (segment.seq, "chain-1"));
        assert_eq!(
            (&trailer.sha256, &trailer.chain),
            (&entry.sha256, &entry.chain)
        );
        assert_eq!(trailer.raw, entry.raw_bytes);
        assert_eq!(
            (trailer.t0, trailer.t1),
            (entry.first_time, entry.last_time)
        );
        assert_eq!(trailer.sig, None, "the fixture store has no signing key");
        let (first, last) = (entry.first_time.unwrap(), entry.last_time.unwrap());
        assert!(previous_last <= first && first <= last);
        previous_last = last;
    }
    assert_eq!(manifest.chain, hex::encode(chain.last().unwrap()));
    // Spool is empty once everything is uploaded.
    assert!(!fx.spool_root().join("chain-1").exists());
    Ok(())
}

/// Encodes asciicast lines as one zstd frame, like a segment.
fn frame(lines: &str) -> anyhow::Result<Vec<u8>> {
    Ok(zstd::encode_all(lines.as_bytes(), 3)?)
}

#[tokio::test]
async fn spool_leftovers_are_uploaded_on_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = support::config(dir.path());
    let header = "{\"version\":2,\"width\":80,\"height\":24}\n";
    let seg0 = frame(&format!("{header}[0.100000, \"o\", \"before crash\"]\n"))?;
    let seg1 = frame("[0.200000, \"o\", \"still spooled\"]\n")?;
    let seg2 = frame("[0.300000, \"o\", \"also spooled\"]\n")?;

    // A crashed process: seg 0 was uploaded but its spool copy not yet deleted, seg 1 and 2 were
    // never uploaded, and a write was interrupted.
    let spooled = cfg.spool_dir.join("crashed-1");
    std::fs::create_dir_all(&spooled)?;
    std::fs::write(spooled.join("seg-00000000.zst"), &seg0)?;
    std::fs::write(spooled.join("seg-00000001.zst"), &seg1)?;
    std::fs::write(spooled.join("seg-00000002.zst"), &seg2)?;
    std::fs::write(spooled.join("seg-00000003.zst.tmp"), b"half a segment")?;
    let stored = dir.path().join("store").join("crashed-1");
    std::fs::create_dir_all(&stored)?;
    std::fs::write(stored.join("seg-00000000.zst"), &seg0)?;

    let store = RecordingStore::open(cfg.clone()).await?;
    assert!(
        store.flush(Duration::from_secs(10)).await,
        "uploads did not settle"
    );

    let objects = files_named(&stored, |_| true)?;
    let names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["seg-00000000.zst", "seg-00000001.zst", "seg-00000002.zst"]
    );
    assert!(!spooled.exists(), "spool dir should be gone after upload");
    let cast = store.read_cast("crashed-1").await?;
    let parsed = parse_cast(&cast)?;
    let data: Vec<&str> = parsed.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["before crash", "still spooled", "also spooled"]);
    // No manifest: the process died before finish.
    assert!(store.read_manifest("crashed-1").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn upload_never_overwrites_a_different_object() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = support::config(dir.path());
    let original =
        frame("{\"version\":2,\"width\":80,\"height\":24}\n[0.1, \"o\", \"original\"]\n")?;
    let forged = frame("{\"version\":2,\"width\":80,\"height\":24}\n[0.1, \"o\", \"forged\"]\n")?;
    let stored = dir.path().join("store").join("conflict-1");
    std::fs::create_dir_all(&stored)?;
    std::fs::write(stored.join("seg-00000000.zst"), &original)?;
    let spooled = cfg.spool_dir.join("conflict-1");
    std::fs::create_dir_all(&spooled)?;
    std::fs::write(spooled.join("seg-00000000.zst"), &forged)?;

    let store = RecordingStore::open(cfg).await?;
    assert!(store.flush(Duration::from_secs(10)).await);
    assert_eq!(std::fs::read(stored.join("seg-00000000.zst"))?, original);
    // The conflicting copy stays in the spool for a human to look at.
    assert_eq!(std::fs::read(spooled.join("seg-00000000.zst"))?, forged);
    // And a new recording with an id still in the spool is refused.
    assert!(matches!(
        store.begin(meta("conflict-1")),
        Err(recorder::StoreError::AlreadyExists { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn uploads_retry_until_the_store_accepts_them() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.finish_timeout = Duration::from_millis(300)).await?;
    // A plain file where the recording's directory must go makes every PUT fail.
    let blocker = fx.store_root().join("retry-1");
    std::fs::write(&blocker, b"not a directory")?;
    let writer = fx.store.begin(meta("retry-1"))?;
    writer.output(b"kept safe in the spool").await?;
    let summary = writer.finish("done").await?;
    assert!(summary.complete);
    assert!(
        !summary.uploaded,
        "the store was unavailable, nothing can be uploaded"
    );
    let spooled = fx.spool_root().join("retry-1");
    assert!(spooled.join("seg-00000000.zst").exists());
    assert!(spooled.join("manifest.json").exists());

    std::fs::remove_file(&blocker)?;
    assert!(
        fx.store.flush(Duration::from_secs(10)).await,
        "retries did not finish"
    );
    assert!(!spooled.exists());
    let manifest = fx
        .store
        .read_manifest("retry-1")
        .await?
        .expect("manifest uploaded");
    assert_eq!(manifest.segments.len(), 1);
    let cast = String::from_utf8(fx.store.read_cast("retry-1").await?)?;
    assert!(cast.contains("kept safe in the spool"));
    Ok(())
}

#[tokio::test]
async fn spool_failure_breaks_the_recording() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 100).await?;
    let writer = fx.store.begin(meta("broken-1"))?;
    writer.output(&[b'a'; 150]).await?;
    let seg0 = fx.store_root().join("broken-1").join("seg-00000000.zst");
    assert!(eventually(Duration::from_secs(5), || seg0.exists()).await);

    // Sabotage the spool: the recording's directory becomes a file.
    let spooled = fx.spool_root().join("broken-1");
    std::fs::remove_dir_all(&spooled)?;
    std::fs::File::create(&spooled)?.write_all(b"in the way")?;

    let mut error = None;
    for _ in 0..100 {
        match writer.output(&[b'b'; 150]).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("writes must fail once the spool is broken");
    assert!(matches!(error, RecordError::Broken { .. }), "{error}");
    assert!(error.to_string().contains("cannot spool"), "{error}");
    // Every later call fails too.
    assert!(matches!(
        writer.input(b"x").await,
        Err(RecordError::Broken { .. })
    ));
    assert!(matches!(
        writer.marker("m").await,
        Err(RecordError::Broken { .. })
    ));

    // With the spool usable again, finish still records an honest manifest.
    std::fs::remove_file(&spooled)?;
    std::fs::create_dir(&spooled)?;
    let summary = writer.finish("spool failure").await?;
    assert!(!summary.complete);
    assert_eq!(summary.segments, 1);
    let manifest = fx.store.read_manifest("broken-1").await?.expect("manifest");
    assert!(!manifest.complete);
    assert_eq!(manifest.segments.len(), 1);
    Ok(())
}

#[tokio::test]
async fn ids_are_validated_and_missing_recordings_reported() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    assert!(matches!(
        fx.store.begin(meta("../escape")),
        Err(recorder::StoreError::InvalidId { .. })
    ));
    assert!(matches!(
        fx.store.read_cast("../escape").await,
        Err(recorder::ReadError::InvalidId { .. })
    ));
    assert!(matches!(
        fx.store.read_cast("nope").await,
        Err(recorder::ReadError::NotFound { .. })
    ));
    let root = std::fs::canonicalize(fx.store_root())?;
    assert_eq!(
        fx.store.location("abc"),
        format!("file://{}/abc/", root.display())
    );

    // A hole in the segments is an error for read_cast, not silently skipped.
    let dir = fx.store_root().join("holey-1");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("seg-00000000.zst"),
        frame("{\"version\":2,\"width\":1,\"height\":1}\n")?,
    )?;
    std::fs::write(
        dir.join("seg-00000002.zst"),
        frame("[1.0, \"o\", \"x\"]\n")?,
    )?;
    assert!(matches!(
        fx.store.read_cast("holey-1").await,
        Err(recorder::ReadError::MissingSegment { seq: 1, .. })
    ));
    assert_eq!(fx.store.read_segments("holey-1").await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn dropped_writers_still_finish_the_recording() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let writer = fx.store.begin(meta("dropped-1"))?;
    writer.output(b"session task crashed").await?;
    drop(writer);
    let manifest = manifest_eventually(&fx.store, "dropped-1").await?;
    assert_eq!(manifest.end_reason, "writer dropped");
    assert!(manifest.complete);
    Ok(())
}

async fn manifest_eventually(
    store: &RecordingStore,
    id: &str,
) -> anyhow::Result<recorder::Manifest> {
    for _ in 0..250 {
        if let Some(manifest) = store.read_manifest(id).await? {
            return Ok(manifest);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("manifest of {id} never appeared")
}
