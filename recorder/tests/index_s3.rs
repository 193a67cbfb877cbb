//! The index and the reader against a real S3-compatible server (`moto_server`): the index is
//! stored create-only next to the segments, seeks fetch single segments over HTTP and equal a
//! straight replay, and follow reads a recording growing on S3.

#[path = "index_data/fixture.rs"]
mod fixture;
mod support;

use std::time::Duration;

use futures::StreamExt as _;
use recorder::{Reader, RecordingStore};
use support::moto::Moto;

#[tokio::test]
async fn index_reader_and_follow_on_s3() -> anyhow::Result<()> {
    let Some(moto) = Moto::start("index_reader_and_follow_on_s3") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut cfg = moto.config(dir.path(), "bastion/rec");
    cfg.segment_bytes = 700;
    let store = RecordingStore::open(cfg.clone()).await?;
    let session = fixture::session("vim.cast")?;
    fixture::record(&store, "s3-vim", &session).await?;
    let stored = recorder::parse_cast(&store.read_cast("s3-vim").await?)?;

    let index = store.build_index("s3-vim").await?;
    assert_eq!(index.damage, None);
    assert!(index.segments.len() > 10);
    store.write_index("s3-vim", &index).await?;
    // Create-only: the same bytes again are accepted, a different index is refused.
    store.write_index("s3-vim", &index).await?;
    let mut other = index.clone();
    other.commands.clear();
    assert!(store.write_index("s3-vim", &other).await.is_err());

    let reader_store = RecordingStore::open_reader(cfg).await?;
    let mut reader = Reader::open(&reader_store, "s3-vim").await?;
    assert_eq!(reader.index(), &index);
    let (w, h) = (stored.header.width, stored.header.height);
    for t in fixture::probe_times(&stored.events).into_iter().step_by(7) {
        let seek = reader.screen_at(t).await?;
        let straight = fixture::straight_replay(w, h, &stored.events, t);
        fixture::assert_same_screen(&seek, &straight, &format!("s3 at {t}"));
    }

    let followed: Vec<_> = recorder::follow(
        reader_store,
        "s3-vim".to_string(),
        Duration::from_millis(20),
    )
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<_, _>>()?;
    assert_eq!(followed, stored.events);
    Ok(())
}
