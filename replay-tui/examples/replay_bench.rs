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
//! `moto_server` (PyPI `moto[server]`, or `MOTO_SERVER=path`) started here and read through the
//! `[s3]` table of a bastion configuration; otherwise a local directory under `REPLAY_BENCH_DIR`
//! (default: a temporary directory).

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use recorder::{RecordingMeta, RecordingStore, StoreConfig};
use replay_tui::app::{App, EndSessions, Message, OpenTarget, Settings};
use replay_tui::config::ReplayConfig;
use replay_tui::worker::{Player, PlayerEvent, Recording};
use testkit::logtext::{Rng, SEED, SessionOutput};
use testkit::moto::Moto;

const CHUNK: usize = 16 * 1024;
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

/// The store as `bastion-replay --config` opens it: a local directory, or `moto` through the
/// `[s3]` table of a bastion configuration.
fn store_config(moto: Option<&Moto>, dir: &Path) -> anyhow::Result<StoreConfig> {
    let text = match moto {
        Some(moto) => {
            let (recordings, s3_table) = moto.bastion_config("bench");
            format!("{recordings}\n{s3_table}")
        }
        None => format!(
            "recordings = {:?}\n",
            format!("file://{}", dir.join("store").display())
        ),
    };
    let config = ReplayConfig::parse(&text, &dir.join("bench.toml"))?;
    Ok(StoreConfig {
        spool_dir: dir.join("spool"),
        finish_timeout: Duration::from_secs(900),
        ..config.store_config()
    })
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
    let mut rng = Rng::new(SEED);
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = rng.fraction() * duration;
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
    let moto = if opts.s3 {
        Some(Moto::start_required()?)
    } else {
        None
    };
    let cfg = store_config(moto.as_ref(), dir.path())?;
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
    let (mut output, mut chunk) = (SessionOutput::new(SEED, 40), String::new());
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
        chunk.clear();
        output.fill(&mut chunk, CHUNK);
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
