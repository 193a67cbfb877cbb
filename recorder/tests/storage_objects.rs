//! The store beyond recording: read-only opening next to a running daemon, listing, deletion,
//! side objects, single-segment reads and the spool size.

mod support;

use std::time::Duration;

use recorder::{ReadError, RecordingStore, StoreError, VerifyStatus};
use support::{Fixture, eventually, meta};

async fn record(store: &RecordingStore, id: &str, lines: usize) -> anyhow::Result<u32> {
    let writer = store.begin(meta(id))?;
    for i in 0..lines {
        writer
            .output(format!("{id} line {i} {}\r\n", "q".repeat(100)).as_bytes())
            .await?;
    }
    Ok(writer.finish("done").await?.segments)
}

#[tokio::test]
async fn reader_store_reads_but_never_records_or_touches_the_spool() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 500).await?;
    record(&fx.store, "rec-1", 20).await?;

    // A leftover of the daemon's (still being uploaded, say): a reader must leave it alone.
    let leftover = fx.spool_root().join("in-flight-1");
    std::fs::create_dir_all(&leftover)?;
    std::fs::write(leftover.join("seg-00000000.zst"), b"not yet uploaded")?;
    std::fs::write(leftover.join("seg-00000001.zst.tmp"), b"being written")?;

    let reader = RecordingStore::open_reader(fx.cfg.clone()).await?;
    assert_eq!(
        reader.read_cast("rec-1").await?,
        fx.store.read_cast("rec-1").await?
    );
    assert_eq!(
        reader.verify("rec-1", None).await?.status,
        VerifyStatus::Complete
    );
    assert!(matches!(
        reader.begin(meta("rec-2")),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(reader.flush(Duration::from_millis(10)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        leftover.join("seg-00000001.zst.tmp").exists(),
        "reader cleaned the spool"
    );
    assert!(leftover.join("seg-00000000.zst").exists());
    assert!(
        !fx.store_root().join("in-flight-1").exists(),
        "reader uploaded"
    );
    // It still reports what waits there (the unfinished .tmp write does not count).
    assert_eq!(reader.spool_bytes(), "not yet uploaded".len() as u64);

    // Nothing is created for a reader: a missing store is an error, a missing spool is empty.
    let dir = tempfile::tempdir()?;
    let mut cfg = support::config(dir.path());
    assert!(matches!(
        RecordingStore::open_reader(cfg.clone()).await,
        Err(StoreError::LocalDir { .. })
    ));
    std::fs::create_dir(dir.path().join("store"))?;
    cfg.spool_dir = dir.path().join("no-spool");
    let empty = RecordingStore::open_reader(cfg).await?;
    assert_eq!(empty.spool_bytes(), 0);
    assert!(empty.list_ids().await?.is_empty());
    assert!(!dir.path().join("no-spool").exists());
    Ok(())
}

#[tokio::test]
async fn spool_bytes_follow_pending_uploads() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| {
        cfg.segment_bytes = 500;
        cfg.finish_timeout = Duration::from_millis(200);
    })
    .await?;
    assert_eq!(fx.store.spool_bytes(), 0);
    // A plain file where the recording's directory must go makes every upload fail.
    let blocker = fx.store_root().join("pending-1");
    std::fs::write(&blocker, b"not a directory")?;
    let segments = record(&fx.store, "pending-1", 30).await?;
    let spooled: u64 = support::files_named(&fx.spool_root().join("pending-1"), |_| true)?
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    assert!(segments > 3 && spooled > 0);
    assert_eq!(fx.store.spool_bytes(), spooled);
    let reader = RecordingStore::open_reader(fx.cfg.clone()).await?;
    assert_eq!(reader.spool_bytes(), spooled);

    std::fs::remove_file(&blocker)?;
    assert!(fx.store.flush(Duration::from_secs(30)).await);
    assert_eq!(fx.store.spool_bytes(), 0);
    assert_eq!(reader.spool_bytes(), 0);

    // Leftovers found at start are counted too.
    let dir = fx.spool_root().join("leftover-1");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("seg-00000000.zst"), vec![0u8; 1234])?;
    std::fs::write(fx.store_root().join("leftover-1"), b"blocks the upload")?;
    let restarted = RecordingStore::open(fx.cfg.clone()).await?;
    assert_eq!(restarted.spool_bytes(), 1234);
    Ok(())
}

#[tokio::test]
async fn recordings_are_listed_and_deleted_completely() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 500).await?;
    for id in ["b-2", "a-1", "c-3"] {
        record(&fx.store, id, 10).await?;
    }
    fx.store
        .write_object("b-2", "index.json.zst", b"idx".to_vec())
        .await?;
    // Stray names that are not recording ids are not listed.
    std::fs::create_dir_all(fx.store_root().join(".hidden"))?;
    std::fs::write(fx.store_root().join(".hidden").join("x"), b"x")?;
    assert_eq!(fx.store.list_ids().await?, ["a-1", "b-2", "c-3"]);

    let objects = support::files_named(&fx.store_root().join("b-2"), |_| true)?.len();
    assert!(objects > 3);
    assert_eq!(fx.store.delete("b-2").await?, objects as u64);
    assert!(!fx.store_root().join("b-2").exists());
    assert_eq!(fx.store.list_ids().await?, ["a-1", "c-3"]);
    assert!(matches!(
        fx.store.read_cast("b-2").await,
        Err(ReadError::NotFound { .. })
    ));
    assert_eq!(fx.store.delete("b-2").await?, 0);
    assert!(matches!(
        fx.store.delete("../a-1").await,
        Err(ReadError::InvalidId { .. })
    ));
    // The others are untouched.
    assert_eq!(
        fx.store.verify("a-1", None).await?.status,
        VerifyStatus::Complete
    );
    Ok(())
}

#[tokio::test]
async fn side_objects_are_create_only_and_cannot_pose_as_segments() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    record(&fx.store, "side-1", 3).await?;
    assert_eq!(
        fx.store.read_object("side-1", "index.json.zst").await?,
        None
    );
    fx.store
        .write_object("side-1", "index.json.zst", b"v1".to_vec())
        .await?;
    // Same bytes again: a retry after a lost answer succeeds.
    fx.store
        .write_object("side-1", "index.json.zst", b"v1".to_vec())
        .await?;
    assert!(matches!(
        fx.store
            .write_object("side-1", "index.json.zst", b"v2".to_vec())
            .await,
        Err(StoreError::ObjectExists { .. })
    ));
    assert_eq!(
        fx.store
            .read_object("side-1", "index.json.zst")
            .await?
            .as_deref(),
        Some(b"v1".as_slice())
    );
    for name in ["seg-00000009.zst", "manifest.json", "../x", "a/b"] {
        assert!(
            matches!(
                fx.store.write_object("side-1", name, b"x".to_vec()).await,
                Err(StoreError::InvalidName { .. })
            ),
            "{name}"
        );
        assert!(matches!(
            fx.store.read_object("side-1", name).await,
            Err(ReadError::InvalidName { .. })
        ));
    }
    // A side object does not disturb verification or reading.
    assert_eq!(
        fx.store.verify("side-1", None).await?.status,
        VerifyStatus::Complete
    );
    assert!(!fx.store.read_cast("side-1").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn single_segments_read_back_in_order() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 400).await?;
    let segments = record(&fx.store, "seek-1", 30).await?;
    let mut joined = Vec::new();
    for seq in 0..segments {
        let segment = fx.store.read_segment("seek-1", seq).await?;
        assert_eq!(segment.seq, seq);
        assert!(
            segment
                .object
                .ends_with(&format!("seek-1/{}", recorder::segment_name(seq)))
        );
        let trailer = segment.trailer()?.expect("trailer");
        assert_eq!((trailer.seq, trailer.id.as_str()), (seq, "seek-1"));
        let text = segment.decompress()?;
        assert_eq!(text.len() as u64, trailer.raw);
        joined.extend_from_slice(&text);
    }
    assert_eq!(joined, fx.store.read_cast("seek-1").await?);
    assert!(matches!(
        fx.store.read_segment("seek-1", segments).await,
        Err(ReadError::MissingSegment { seq, .. }) if seq == segments
    ));
    // Segments of a running recording are readable as soon as they are uploaded.
    let writer = fx.store.begin(meta("live-1"))?;
    writer.output(&[b'x'; 600]).await?;
    let seg0 = fx.store_root().join("live-1").join("seg-00000000.zst");
    assert!(eventually(Duration::from_secs(5), || seg0.exists()).await);
    assert!(
        fx.store
            .read_segment("live-1", 0)
            .await?
            .decompress()?
            .len()
            > 600
    );
    writer.finish("done").await?;
    Ok(())
}
