//! Seek benchmark: records a large session of realistic terminal output (coloured log lines,
//! progress bars redrawn with `\r` and erase-line, cursor-up status blocks, full-screen redraws,
//! a few typed commands) through `RecordingWriter::output_at`, builds and stores its index, then
//! measures loading the index and opening + seeking to random offsets with a cold segment cache.
//!
//!     cargo run --release -p recorder --example seek_bench -- [--s3] [--mb MEGABYTES] [--seeks N]
//!
//! `--mb` is the raw terminal output to record (default 1024). With `--s3` the store is a
//! `moto_server` (PyPI `moto[server]`, or `MOTO_SERVER=path`) started here on a free port, with
//! its bucket created by an unsigned HTTP `PUT /bucket`; otherwise a local directory under
//! `RECORDER_DIR` (default: a temporary directory).

use std::time::{Duration, Instant};

use recorder::{Reader, RecordingMeta, RecordingStore, StoreConfig};
use testkit::logtext::{Rng, SEED, SessionOutput};

// The tests' moto launcher with the recorder settings for it; the tests' half goes unused here.
#[path = "../tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;

use moto::Moto;

const CHUNK: usize = 32 * 1024;
/// Times the index is loaded, for a median on a busy machine.
const LOADS: usize = 7;

struct Options {
    s3: bool,
    megabytes: u64,
    seeks: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        s3: false,
        megabytes: 1024,
        seeks: 50,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--s3" => opts.s3 = true,
            "--mb" => opts.megabytes = args.next().unwrap_or_default().parse()?,
            "--seeks" => opts.seeks = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?} (--s3, --mb N, --seeks N)"),
        }
    }
    Ok(opts)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let dir = match std::env::var_os("RECORDER_DIR") {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let moto = if opts.s3 {
        Some(Moto::start_required()?)
    } else {
        None
    };
    let cfg = StoreConfig {
        url: match &moto {
            Some(moto) => moto.url("bench"),
            None => format!("file://{}", dir.path().join("store").display()),
        },
        spool_dir: dir.path().join("spool"),
        s3: moto.as_ref().map(Moto::s3_options).unwrap_or_default(),
        finish_timeout: Duration::from_secs(600),
        ..StoreConfig::default()
    };
    let store = RecordingStore::open(cfg.clone()).await?;
    let id = "seek-bench";
    let target = opts.megabytes * 1024 * 1024;
    println!(
        "store: {}, raw terminal output: {} MiB, segments of {} KiB",
        store.location(id),
        opts.megabytes,
        cfg.segment_bytes / 1024
    );

    let writer = store.begin(RecordingMeta {
        id: id.to_string(),
        user: "bench".to_string(),
        target: "logs-1".to_string(),
        login: "app".to_string(),
        grant_id: None,
        command: None,
        width: 120,
        height: 40,
        term: None,
        started_at: time::OffsetDateTime::now_utc(),
    })?;
    let started = Instant::now();
    let (mut output, mut chunk, mut raw) = (SessionOutput::new(SEED, 40), String::new(), 0u64);
    let mut at = Duration::ZERO;
    let mut n = 0u64;
    while raw < target {
        n += 1;
        if n.is_multiple_of(2000) {
            writer
                .input_at(at, b"tail -f /var/log/app.log | grep -v healthz\r")
                .await?;
            writer
                .resize_at(at, if n.is_multiple_of(4000) { 120 } else { 160 }, 40)
                .await?;
        }
        chunk.clear();
        output.fill(&mut chunk, CHUNK);
        writer.output_at(at, chunk.as_bytes()).await?;
        raw += chunk.len() as u64;
        at += Duration::from_millis(2);
    }
    let summary = writer.finish("bench").await?;
    let write_time = started.elapsed();
    anyhow::ensure!(
        summary.complete && summary.uploaded,
        "recording incomplete: {summary:?}"
    );
    println!(
        "recorded {:.0} MiB of output in {:.1} s ({:.0} MiB/s): {} segments, {:.0} MiB asciicast, {:.1} MiB stored",
        raw as f64 / 1048576.0,
        write_time.as_secs_f64(),
        raw as f64 / 1048576.0 / write_time.as_secs_f64(),
        summary.segments,
        summary.raw_bytes as f64 / 1048576.0,
        summary.stored_bytes as f64 / 1048576.0
    );
    println!(
        "compressed bytes per raw byte: {:.4} of terminal output ({:.4} of asciicast text)",
        summary.stored_bytes as f64 / raw as f64,
        summary.stored_bytes as f64 / summary.raw_bytes as f64
    );

    let started = Instant::now();
    let index = store.build_index(id).await?;
    let build_time = started.elapsed();
    let encoded = index.encode()?;
    store.write_index(id, &index).await?;
    println!(
        "index built in {:.1} s ({:.0} MiB/s): {} segments, {} keyframes, {} commands, {} output lines kept ({} dropped), {:.2} MiB stored",
        build_time.as_secs_f64(),
        raw as f64 / 1048576.0 / build_time.as_secs_f64(),
        index.segments.len(),
        index.keyframes.len(),
        index.commands.len(),
        index.output.len(),
        index.output_dropped,
        encoded.len() as f64 / 1048576.0
    );

    let started = Instant::now();
    let size = zstd::zstd_safe::get_frame_content_size(&encoded)
        .ok()
        .flatten()
        .unwrap_or(1 << 30);
    let json = zstd::bulk::decompress(&encoded, usize::try_from(size)?)?;
    let unzstd = started.elapsed();
    let started = Instant::now();
    let parsed: recorder::RecordingIndex = serde_json::from_slice(&json)?;
    let parse = started.elapsed();
    anyhow::ensure!(parsed == index, "index does not round-trip");
    let dumps: usize = index.keyframes.iter().map(|k| k.dump.len()).sum();
    let lines: usize = index.output.iter().map(|l| l.text.len()).sum();
    println!(
        "index: {:.1} MiB of JSON (keyframe dumps {:.1} MiB, output text {:.1} MiB); decoding it: zstd {:.1} ms + JSON {:.1} ms",
        json.len() as f64 / 1048576.0,
        dumps as f64 / 1048576.0,
        lines as f64 / 1048576.0,
        ms(unzstd),
        ms(parse)
    );

    // A fresh store handle, as a reviewer's tool would have. Loads and first frames are timed
    // several times (median and worst): the machine may be shared.
    let reader_store = RecordingStore::open_reader(cfg).await?;
    let (mut loads, mut firsts) = (Vec::new(), Vec::new());
    let mut reader = None;
    for _ in 0..LOADS {
        let started = Instant::now();
        let mut opened = Reader::open(&reader_store, id).await?;
        loads.push(ms(started.elapsed()));
        let started = Instant::now();
        std::hint::black_box(opened.screen_at(0.0).await?);
        firsts.push(ms(started.elapsed()));
        reader = Some(opened);
    }
    let reader = reader.ok_or_else(|| anyhow::anyhow!("no reader"))?;
    loads.sort_by(f64::total_cmp);
    firsts.sort_by(f64::total_cmp);
    println!(
        "index load (Reader::open, {LOADS} times): median {:.1} ms, max {:.1} ms; first frame after it: median {:.1} ms, max {:.1} ms",
        percentile(&loads, 50.0),
        percentile(&loads, 100.0),
        percentile(&firsts, 50.0),
        percentile(&firsts, 100.0)
    );

    let duration = reader.duration();
    let loaded = reader.index().clone();
    let mut rng = Rng::new(SEED);
    let mut times = Vec::with_capacity(opts.seeks);
    for _ in 0..opts.seeks {
        let t = rng.fraction() * duration;
        let index = loaded.clone();
        // Open (from the loaded index) and seek with a cold cache: one segment fetched,
        // decompressed, parsed and replayed from its keyframe.
        let started = Instant::now();
        let mut reader = Reader::from_index(&reader_store, id, index);
        let screen = reader.screen_at(t).await?;
        times.push(ms(started.elapsed()));
        std::hint::black_box(screen);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "open+seek to {} random offsets (cold cache, index loaded): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        opts.seeks,
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or_default()
    );
    drop(moto);
    Ok(())
}
