//! Recording throughput: pushes log-like text through `RecordingWriter::output` in 32 KiB chunks
//! (what the SSH proxy does) into a temporary local store and reports MB/s.
//!
//!     [RECORDER_DIR=dir] cargo run --release -p recorder --example throughput -- [MEGABYTES] [text|binary]
//!     cargo run --release -p recorder --example throughput -- SESSIONS idle   # memory per session

use std::time::{Duration, Instant};

use recorder::{RecordingMeta, RecordingStore, StoreConfig};
use testkit::logtext::{LogLines, Rng, SEED};

const CHUNK: usize = 32 * 1024;

/// About 1 MiB of log lines (or pseudo-random bytes), repeated with a per-round twist so that
/// zstd cannot just match the previous round.
fn sample(binary: bool) -> Vec<u8> {
    const SIZE: usize = 1 << 20;
    if binary {
        let mut rng = Rng::new(SEED);
        return (0..SIZE / 8)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect();
    }
    let mut text = String::with_capacity(SIZE + 256);
    LogLines::plain(SEED).fill(&mut text, SIZE);
    text.into_bytes()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Memory of `count` open recordings that each saw a login banner and a prompt.
async fn idle_sessions(store: &RecordingStore, count: usize) -> anyhow::Result<()> {
    let before = rss_kib();
    let mut writers = Vec::new();
    for i in 0..count {
        let writer = store.begin(RecordingMeta {
            id: format!("idle-{i}"),
            user: "bench".to_string(),
            target: "local".to_string(),
            login: "bench".to_string(),
            grant_id: None,
            command: None,
            width: 80,
            height: 24,
            term: None,
            started_at: time::OffsetDateTime::now_utc(),
        })?;
        writer.output(b"Welcome to db-1\r\n$ ").await?;
        writers.push(writer);
    }
    let open = rss_kib();
    // Past the segment interval: every segment 0 is closed and uploaded, the sessions idle.
    tokio::time::sleep(StoreConfig::default().segment_interval + Duration::from_secs(2)).await;
    store.flush(Duration::from_secs(30)).await;
    let idle = rss_kib();
    println!(
        "{count} sessions: +{} KiB with open segments ({} KiB each), +{} KiB idle ({} KiB each)",
        open - before,
        (open - before) / count as u64,
        idle.saturating_sub(before),
        idle.saturating_sub(before) / count as u64
    );
    for writer in writers {
        writer.finish("done").await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let megabytes: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let binary = args.get(2).is_some_and(|s| s == "binary");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // RECORDER_DIR keeps the store for inspection (e.g. `cat seg-* | zstd -dc`).
        let temp = tempfile::tempdir()?;
        let dir = std::env::var_os("RECORDER_DIR").map_or_else(|| temp.path().to_path_buf(), Into::into);
        let store = RecordingStore::open(StoreConfig {
            url: format!("file://{}", dir.join("store").display()),
            spool_dir: dir.join("spool"),
            ..StoreConfig::default()
        })
        .await?;
        let writer = store.begin(RecordingMeta {
            id: "throughput".to_string(),
            user: "bench".to_string(),
            target: "local".to_string(),
            login: "bench".to_string(),
            grant_id: None,
            command: Some("cat big.log".to_string()),
            width: 80,
            height: 24,
            term: None,
            started_at: time::OffsetDateTime::now_utc(),
        })?;
        if args.get(2).is_some_and(|s| s == "idle") {
            return idle_sessions(&store, megabytes).await;
        }
        let data = sample(binary);
        let total = megabytes * 1_000_000;
        let started = Instant::now();
        let mut sent = 0;
        let mut offset = 0;
        while sent < total {
            let len = CHUNK.min(total - sent);
            if offset + len > data.len() {
                offset = (offset + 7) % 4096;
            }
            writer.output(&data[offset..offset + len]).await?;
            offset += len;
            sent += len;
        }
        let pushed = started.elapsed();
        let summary = writer.finish("done").await?;
        let total_time = started.elapsed();
        let mb = sent as f64 / 1e6;
        println!(
            "{mb:.0} MB in {:.2?} ({:.0} MB/s accepting, {:.0} MB/s including finish); {} segments, {:.1} MB stored, ratio {:.1}, uploaded {}",
            total_time,
            mb / pushed.as_secs_f64(),
            mb / total_time.as_secs_f64(),
            summary.segments,
            summary.stored_bytes as f64 / 1e6,
            summary.raw_bytes as f64 / summary.stored_bytes.max(1) as f64,
            summary.uploaded,
        );
        store.flush(Duration::from_secs(30)).await;
        anyhow::Ok(())
    })
}
