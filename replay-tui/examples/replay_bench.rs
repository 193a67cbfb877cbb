//! Replay benchmark: what a reviewer waits for in bastion-replay on a large recording.
//!
//! Records a session of realistic terminal output (coloured log lines, progress bars, cursor
//! addressed status blocks, full-screen redraws, typed commands, resizes) through
//! `recorder::RecordingWriter::output_at`, stores its index as the recording pipeline does, then
//! measures, through the same code the UI runs (player worker, screen capture, ratatui drawing
//! into a `TestBackend`):
//! - store recording: time to first frame (open + first screen drawn) and seek latency (a random
//!   offset drawn, cold), and
//! - the same recording as a local `.cast.zst` file (the segments concatenated): time to first
//!   frame, time until fully loaded, then seek latency.
//!
//!     cargo run --release -p replay-tui --example replay_bench -- [--mb MEGABYTES] [--seeks N] [--s3] [--no-file]
//!
//! `--mb` is the raw terminal output recorded (default 1024). `--s3` stores it in a
//! `moto_server` (PyPI `moto[server]`, or `MOTO_SERVER=path`) started here; otherwise a local
//! directory under `REPLAY_BENCH_DIR` (default: a temporary directory).

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use recorder::{RecordingMeta, RecordingStore, S3Options, StoreConfig};
use replay_tui::app::{App, EndSessions, Message, OpenTarget, Settings};
use replay_tui::worker::{Player, PlayerEvent, Recording};

const CHUNK: usize = 16 * 1024;
const BUCKET: &str = "bench";
const ID: &str = "replay-bench";

struct Options {
    megabytes: u64,
    seeks: usize,
    s3: bool,
    file: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        megabytes: 1024,
        seeks: 50,
        s3: false,
        file: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mb" => opts.megabytes = args.next().unwrap_or_default().parse()?,
            "--seeks" => opts.seeks = args.next().unwrap_or_default().parse()?,
            "--s3" => opts.s3 = true,
            "--no-file" => opts.file = false,
            other => {
                anyhow::bail!("unknown argument {other:?} (--mb N, --seeks N, --s3, --no-file)")
            }
        }
    }
    Ok(opts)
}

/// xorshift64: reproducible pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// About `CHUNK` bytes of terminal output of a busy interactive session.
fn fill(out: &mut String, rng: &mut Rng, line: &mut u64) {
    const LEVELS: [&str; 4] = [
        "\u{1b}[32mINFO\u{1b}[0m ",
        "\u{1b}[33mWARN\u{1b}[0m ",
        "DEBUG",
        "\u{1b}[1;31mERROR\u{1b}[0m",
    ];
    out.clear();
    while out.len() < CHUNK {
        let r = rng.next();
        *line += 1;
        match r % 50 {
            // A full-screen redraw (top-like), cursor addressed.
            0 => {
                out.push_str(
                    "\u{1b}[H\u{1b}[2J\u{1b}[7m PID USER      %CPU %MEM COMMAND \u{1b}[0m",
                );
                for row in 2..38 {
                    let _ = write!(
                        out,
                        "\u{1b}[{row};1H{:>5} app {:>5.1} {:>4.1} worker-{}",
                        r % 9000 + row,
                        (r >> 8) % 100,
                        (r >> 16) % 50,
                        row
                    );
                }
            }
            // A progress bar redrawn in place.
            1..=3 => {
                for pct in (0..=100).step_by(20) {
                    let _ = write!(
                        out,
                        "\r\u{1b}[Kdownloading layer {}: [{:<20}] {pct}%",
                        r % 97,
                        "#".repeat(pct / 5)
                    );
                }
                out.push_str("\r\n");
            }
            // A status block updated with cursor up.
            4 => {
                let _ = write!(
                    out,
                    "\u{1b}[3A\u{1b}[Kqueue: {}\r\n\u{1b}[Kworkers: {}\r\n\u{1b}[Klag: {} ms\r\n",
                    r % 1000,
                    (r >> 10) % 64,
                    (r >> 20) % 500
                );
            }
            _ => {
                let _ = write!(
                    out,
                    "2024-05-01T12:{:02}:{:02}Z {} {} request {} {} {} in {} ms\r\n",
                    (*line / 60) % 60,
                    *line % 60,
                    LEVELS[(r >> 4) as usize % 4],
                    ["GET", "POST", "PUT"][(r >> 6) as usize % 3],
                    [
                        "/api/v1/items",
                        "/api/v1/users",
                        "/healthz",
                        "/api/v2/orders"
                    ][(r >> 8) as usize % 4],
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<f64>) -> String {
    times.sort_by(f64::total_cmp);
    let at = |p: f64| {
        times[((p / 100.0 * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]
    };
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} seeks)",
        at(50.0),
        at(95.0),
        at(100.0),
        times.len()
    )
}

/// Draws one frame the way the UI does: the frame goes into the app state, the app is drawn.
struct Screen {
    app: App,
    terminal: Terminal<TestBackend>,
}

impl Screen {
    fn new(target: OpenTarget) -> anyhow::Result<Screen> {
        let settings = Settings {
            idle_cap: Some(2.0),
            end_sessions: EndSessions::decide(None, true),
        };
        let (app, _) = App::single(settings, target);
        Ok(Screen {
            app,
            terminal: Terminal::new(TestBackend::new(200, 50))?,
        })
    }

    fn show(&mut self, event: PlayerEvent) -> anyhow::Result<()> {
        self.app.handle_message(Message::Player {
            generation: 1,
            event,
        });
        self.terminal
            .draw(|frame| replay_tui::ui::render(&self.app, frame))?;
        Ok(())
    }
}

/// Opens `recording`, draws its first frame; returns the player and the time taken.
async fn first_frame(
    recording: Recording,
    screen: &mut Screen,
) -> anyhow::Result<(Player, Duration)> {
    let started = Instant::now();
    let source = replay_tui::worker::open(recording).await?;
    let mut player = Player::new(source);
    if let Some(delta) = player.source().poll_index() {
        screen.show(PlayerEvent::Index(delta))?;
    }
    let frame = player.frame(0.0, false).await?;
    screen.show(PlayerEvent::Frame(frame))?;
    Ok((player, started.elapsed()))
}

async fn seeks(
    player: &mut Player,
    screen: &mut Screen,
    duration: f64,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = (rng.next() % 1_000_000) as f64 / 1_000_000.0 * duration;
        let started = Instant::now();
        let frame = player.frame(t, false).await?;
        screen.show(PlayerEvent::Frame(frame))?;
        times.push(ms(started.elapsed()));
    }
    Ok(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let dir = match std::env::var_os("REPLAY_BENCH_DIR") {
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
        finish_timeout: Duration::from_secs(900),
        ..StoreConfig::default()
    };
    let store = RecordingStore::open(cfg.clone()).await?;
    println!(
        "store: {}, raw terminal output: {} MiB",
        store.location(ID),
        opts.megabytes
    );

    let writer = store.begin(RecordingMeta {
        id: ID.to_string(),
        user: "bench".to_string(),
        target: "logs-1".to_string(),
        login: "app".to_string(),
        grant_id: None,
        command: None,
        width: 160,
        height: 40,
        term: None,
        started_at: time::OffsetDateTime::now_utc(),
    })?;
    let started = Instant::now();
    let (mut rng, mut line, mut chunk) = (Rng(0x2545_f491_4f6c_dd1d), 0u64, String::new());
    let (mut raw, mut n, mut at) = (0u64, 0u64, Duration::ZERO);
    let target = opts.megabytes * 1024 * 1024;
    while raw < target {
        n += 1;
        if n.is_multiple_of(4000) {
            writer
                .input_at(at, b"journalctl -fu app | grep -v healthz\r")
                .await?;
            writer
                .resize_at(at, if n.is_multiple_of(8000) { 160 } else { 200 }, 40)
                .await?;
        }
        fill(&mut chunk, &mut rng, &mut line);
        writer.output_at(at, chunk.as_bytes()).await?;
        raw += chunk.len() as u64;
        at += Duration::from_millis(20);
    }
    let summary_w = writer.finish("bench").await?;
    anyhow::ensure!(
        summary_w.complete && summary_w.uploaded,
        "recording incomplete: {summary_w:?}"
    );
    println!(
        "recorded {:.0} MiB ({:.0} s of session) in {:.1} s: {} segments, {:.0} MiB stored",
        raw as f64 / 1048576.0,
        at.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        summary_w.segments,
        summary_w.stored_bytes as f64 / 1048576.0
    );
    let started = Instant::now();
    let index = store.build_index(ID).await?;
    store.write_index(ID, &index).await?;
    println!(
        "index (the recording pipeline's job): {} keyframes, built in {:.1} s",
        index.keyframes.len(),
        started.elapsed().as_secs_f64()
    );
    let duration = index.duration;

    // The store recording, as `bastion-replay --config FILE ID` opens it.
    let reader_store = RecordingStore::open_reader(cfg.clone()).await?;
    let recording = Recording::Store {
        store: reader_store,
        id: ID.to_string(),
        poll: Duration::from_secs(1),
    };
    let mut screen = Screen::new(OpenTarget::Store(ID.to_string()))?;
    let (mut player, first) = first_frame(recording, &mut screen).await?;
    println!("store: time to first frame {:.1} ms", ms(first));
    let times = seeks(&mut player, &mut screen, duration, opts.seeks).await?;
    println!("store: seek and redraw {}", summary(times));

    if opts.file {
        // The same recording as a local file: the segments concatenated (`cat seg-* > x.zst`).
        let path = dir.path().join("bench.cast.zst");
        let mut file = std::fs::File::create(&path)?;
        for seq in 0..summary_w.segments {
            file.write_all(&store.read_segment(ID, seq).await?.stored)?;
        }
        drop(file);
        let mut screen = Screen::new(OpenTarget::File(path.clone()))?;
        let (mut player, first) = first_frame(Recording::File(path), &mut screen).await?;
        println!(
            "file: time to first frame {:.1} ms (the rest loads in the background)",
            ms(first)
        );
        let started = Instant::now();
        loop {
            if let Some(delta) = player.source().poll_index() {
                let done = delta.progress.done;
                screen.show(PlayerEvent::Index(delta))?;
                if done {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "file: fully loaded (keyframes, commands, output text) after {:.1} s more",
            started.elapsed().as_secs_f64()
        );
        let times = seeks(&mut player, &mut screen, duration, opts.seeks).await?;
        println!("file: seek and redraw {}", summary(times));
    }
    Ok(())
}
