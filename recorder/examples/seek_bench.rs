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

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use recorder::{Reader, RecordingMeta, RecordingStore, S3Options, StoreConfig};

const CHUNK: usize = 32 * 1024;
const BUCKET: &str = "bench";
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

/// xorshift64: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Appends about `CHUNK` bytes of terminal output: mostly log lines, with the other kinds of
/// output mixed in the way a busy interactive session produces them.
fn fill(out: &mut String, rng: &mut Rng, line_no: &mut u64) {
    use std::fmt::Write as _;
    const LEVELS: [&str; 4] = [
        "\u{1b}[32mINFO\u{1b}[0m ",
        "\u{1b}[33mWARN\u{1b}[0m ",
        "DEBUG",
        "\u{1b}[1;31mERROR\u{1b}[0m",
    ];
    const PATHS: [&str; 5] = [
        "/api/v1/items",
        "/api/v1/users",
        "/healthz",
        "/api/v2/orders",
        "/static/app.js",
    ];
    out.clear();
    while out.len() < CHUNK {
        let r = rng.next();
        *line_no += 1;
        let n = *line_no;
        match r % 100 {
            // Progress bar redrawn in place.
            0..=3 => {
                let pct = r >> 8 & 0x7f;
                let done = (pct.min(100) / 5) as usize;
                let _ = write!(
                    out,
                    "\r\u{1b}[36m[{}{}]\u{1b}[0m {pct:>3}% \u{1b}[K",
                    "#".repeat(done),
                    " ".repeat(20 - done)
                );
            }
            // Status block: cursor up, erase lines, rewrite.
            4..=5 => {
                let _ = write!(out, "\u{1b}[3A");
                for w in 0..3 {
                    let _ = write!(
                        out,
                        "\u{1b}[2K worker-{w}: {} jobs, {} ms\r\n",
                        r >> (8 + w * 8) & 0xff,
                        r >> 40 & 0x3ff
                    );
                }
            }
            // A full-screen redraw (top-like).
            6 => {
                let _ = write!(
                    out,
                    "\u{1b}[H\u{1b}[2J\u{1b}[7m  PID USER     %CPU %MEM COMMAND \u{1b}[0m"
                );
                for row in 2..24 {
                    let v = rng.next();
                    let _ = write!(
                        out,
                        "\u{1b}[{row};1H{:>5} app      {:>4.1} {:>4.1} worker --id {}",
                        v % 65536,
                        (v >> 16 & 0x3ff) as f64 / 10.0,
                        (v >> 26 & 0xff) as f64 / 10.0,
                        v >> 40 & 0xff
                    );
                }
                let _ = write!(out, "\u{1b}[24;1H");
            }
            // Log lines.
            _ => {
                let _ = write!(
                    out,
                    "\u{1b}[2m2025-06-01T{:02}:{:02}:{:02}.{:03}Z\u{1b}[0m {} worker-{:<2} req={:016x} GET {}/{} status={} bytes={} latency_ms={}\r\n",
                    n / 3_600_000 % 24,
                    n / 60_000 % 60,
                    n / 1000 % 60,
                    n % 1000,
                    LEVELS[(r % 4) as usize],
                    r >> 4 & 31,
                    rng.next(),
                    PATHS[(r >> 12) as usize % 5],
                    r >> 16 & 0xffff,
                    [200, 201, 404, 500][(r >> 20) as usize % 4],
                    r >> 24 & 0xfffff,
                    r >> 50 & 0x3ff
                );
            }
        }
    }
}

/// A `moto_server` on a free port with bucket [`BUCKET`]; killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> anyhow::Result<Moto> {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_string());
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start {program} (pip install 'moto[server]'): {e}")
            })?;
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait()? {
                anyhow::bail!("{program} exited with {status}");
            }
            match moto.create_bucket() {
                Ok(status) if status.contains(" 200 ") => return Ok(moto),
                Ok(status) => anyhow::bail!("bucket creation answered {status}"),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => anyhow::bail!("moto_server not ready after 60 s: {e}"),
            }
        }
    }

    /// Unsigned `PUT /bucket`, which moto accepts; returns the status line.
    fn create_bucket(&self) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.lines().next().unwrap_or_default().to_string())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let moto = if opts.s3 { Some(Moto::start()?) } else { None };
    let cfg = StoreConfig {
        url: match &moto {
            Some(_) => format!("s3://{BUCKET}/recordings"),
            None => format!("file://{}", dir.path().join("store").display()),
        },
        spool_dir: dir.path().join("spool"),
        s3: match &moto {
            Some(m) => S3Options {
                endpoint: Some(format!("http://127.0.0.1:{}", m.port)),
                region: Some("us-east-1".to_string()),
                access_key_id: Some("bench".to_string()),
                secret_access_key: Some("bench".to_string()),
                allow_http: Some(true),
                virtual_hosted_style: Some(false),
            },
            None => S3Options::default(),
        },
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
    let (mut rng, mut line_no, mut chunk, mut raw) =
        (Rng(0x2545_f491_4f6c_dd1d), 0u64, String::new(), 0u64);
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
        fill(&mut chunk, &mut rng, &mut line_no);
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
    let mut times = Vec::with_capacity(opts.seeks);
    for _ in 0..opts.seeks {
        let t = (rng.next() % 1_000_000) as f64 / 1_000_000.0 * duration;
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
