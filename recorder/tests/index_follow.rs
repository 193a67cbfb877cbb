//! Following a recording while it is being written: every event arrives, in order, and the stream
//! ends once the recording is finished.

#[path = "index_data/fixture.rs"]
mod fixture;

use std::time::Duration;

use futures::StreamExt as _;
use recorder::{EventKind, Reader, RecordingStore};

#[tokio::test]
async fn follow_yields_a_live_recording_and_ends_with_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = fixture::config(dir.path(), 1 << 20);
    cfg.segment_interval = Duration::from_millis(150);
    let store = RecordingStore::open(cfg).await?;
    let session = fixture::session("shell.cast")?;
    let writer = store.begin(fixture::meta("live", 80, 24))?;

    let follower = tokio::spawn(
        recorder::follow(store.clone(), "live".to_string(), Duration::from_millis(40))
            .collect::<Vec<_>>(),
    );
    // Write in real time (sped up 10x) so segments close on the timer while we follow.
    let start = tokio::time::Instant::now();
    for event in &session.events {
        let at = Duration::from_secs_f64(event.time / 10.0);
        tokio::time::sleep_until(start + at).await;
        match event.kind {
            EventKind::Output => writer.output_at(at, event.data.as_bytes()).await?,
            EventKind::Input => writer.input_at(at, event.data.as_bytes()).await?,
            _ => {}
        }
    }
    let summary = writer.finish("test").await?;
    assert!(summary.segments > 3, "{summary:?}");

    let followed = tokio::time::timeout(Duration::from_secs(20), follower).await??;
    let followed: Vec<_> = followed.into_iter().collect::<Result<_, _>>()?;
    let stored = recorder::parse_cast(&store.read_cast("live").await?)?;
    assert_eq!(followed, stored.events);
    assert_eq!(followed.last().map(|e| e.data.as_str()), Some("end: test"));
    Ok(())
}

#[tokio::test]
async fn follow_from_continues_after_a_reader() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = RecordingStore::open(fixture::config(dir.path(), 500)).await?;
    fixture::record(&store, "done", &fixture::session("vim.cast")?).await?;
    let reader = Reader::open(&store, "done").await?;
    let spans = &reader.index().segments;
    let half = spans[spans.len() / 2].seq;
    let rest: Vec<_> = recorder::follow_from(
        store.clone(),
        "done".to_string(),
        half,
        Duration::from_millis(10),
    )
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<_, _>>()?;
    let stored = recorder::parse_cast(&store.read_cast("done").await?)?;
    let before: u64 = spans
        .iter()
        .take_while(|s| s.seq < half)
        .map(|s| s.events)
        .sum();
    assert_eq!(rest, stored.events[before as usize..]);
    Ok(())
}

#[tokio::test]
async fn follow_stops_at_a_corrupt_segment() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = RecordingStore::open(fixture::config(dir.path(), 500)).await?;
    fixture::record(&store, "bad", &fixture::session("shell.cast")?).await?;
    let object = dir.path().join("store/bad").join(recorder::segment_name(3));
    let mut bytes = std::fs::read(&object)?;
    bytes[20] ^= 0x40;
    std::fs::write(&object, bytes)?;
    let items: Vec<_> = recorder::follow(store, "bad".to_string(), Duration::from_millis(10))
        .collect()
        .await;
    let (last, good) = items.split_last().expect("items");
    assert!(good.iter().all(Result::is_ok));
    let error = last.as_ref().expect_err("ends with the damage").to_string();
    assert!(error.contains("seg-00000003.zst is corrupt"), "{error}");
    Ok(())
}
