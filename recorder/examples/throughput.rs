//! Recording throughput: pushes log-like text through `RecordingWriter::output` in 32 KiB chunks
//! (what the SSH proxy does) into a temporary local store and reports MB/s.
//!
//!     cargo run --release -p recorder --example throughput -- [MEGABYTES] [text|binary]

use std::time::{Duration, Instant};

use recorder::{RecordingMeta, RecordingStore, StoreConfig};

const CHUNK: usize = 32 * 1024;

/// About 1 MiB of log lines (or pseudo-random bytes), repeated with a per-round twist so that
/// zstd cannot just match the previous round.
fn sample(binary: bool) -> Vec<u8> {
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(1 << 20);
    if binary {
        while out.len() < 1 << 20 {
            out.extend_from_slice(&next().to_le_bytes());
        }
        return out;
    }
    let levels = ["INFO", "WARN", "DEBUG", "ERROR"];
    let mut n = 0u64;
    while out.len() < 1 << 20 {
        let s = next();
        n += 1;
        out.extend_from_slice(
            format!(
                "2025-06-01T{:02}:{:02}:{:02}.{:03}Z {} worker-{:<2} req={:016x} GET /api/v1/items/{} status={} bytes={} latency_ms={}\n",
                n / 3_600_000 % 24, n / 60_000 % 60, n / 1000 % 60, n % 1000,
                levels[(s % 4) as usize], s % 32, s, s >> 40 & 0xffff,
                [200, 201, 404, 500][(s >> 20) as usize % 4], s >> 24 & 0xfffff, s >> 50 & 0x3ff
            )
            .as_bytes(),
        );
    }
    out
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
        let dir = tempfile::tempdir()?;
        let store = RecordingStore::open(StoreConfig {
            url: format!("file://{}", dir.path().join("store").display()),
            spool_dir: dir.path().join("spool"),
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
