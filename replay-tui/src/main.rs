//! `bastion-replay`: command line, terminal setup and the event loop. Keys, background
//! messages and playback ticks go into the pure [`App`]; the effects it returns are carried out
//! here (start or stop a player worker, run a search, reload the list, end a session). The
//! terminal is restored on `q`, on Ctrl-C or SIGTERM, and on panic (ratatui's panic hook).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use crossterm::event::{Event, KeyEventKind};
use recorder::RecordingStore;
use replay_tui::app::{App, Effect, Message, OpenTarget, Settings};
use replay_tui::config::ReplayConfig;
use replay_tui::search::SearchQuery;
use replay_tui::worker::{self, PlayerRequest, Recording};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;

/// Frame interval while playing.
const TICK: Duration = Duration::from_millis(33);

#[derive(Parser, Debug)]
#[command(
    name = "bastion-replay",
    version,
    about = "Find and replay bastion session recordings",
    after_help = "Examples:\n  bastion-replay --config /etc/bastion/bastion.toml        browse all recordings\n  bastion-replay --config /etc/bastion/bastion.toml ID     play one recording\n  bastion-replay session.cast.zst                          play an exported file\n\nPress ? in the UI for all keys."
)]
struct Args {
    /// A `.cast` or `.cast.zst` file to play, or with --config a recording id.
    recording: Option<String>,
    /// The bastion configuration (only its storage keys are read).
    #[arg(long, env = "BASTION_CONFIG")]
    config: Option<PathBuf>,
    /// Longest pause played in full, e.g. "2s", "500ms"; "off" plays pauses as recorded.
    #[arg(long, default_value = "2s")]
    idle_cap: String,
    /// The bastion binary used to end live sessions.
    #[arg(long, default_value = "bastion")]
    bastion_bin: PathBuf,
    /// Never offer to end live sessions.
    #[arg(long)]
    no_end_session: bool,
}

fn parse_idle_cap(text: &str) -> anyhow::Result<Option<f64>> {
    match text.trim() {
        "off" | "none" | "0" => Ok(None),
        other => {
            let seconds = replay_tui::units::parse_offset(other).with_context(|| {
                format!("invalid --idle-cap {other:?} (expected e.g. 2s, 500ms or off)")
            })?;
            Ok((seconds > 0.0).then_some(seconds))
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bastion-replay: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bastion-replay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the loop needs to act on effects.
struct Wiring {
    store: Option<RecordingStore>,
    config: Option<ReplayConfig>,
    key: Option<Arc<recorder::VerifyingKey>>,
    bastion_bin: PathBuf,
    messages: UnboundedSender<Message>,
    player: Option<(u64, UnboundedSender<PlayerRequest>)>,
    searches: Option<UnboundedSender<SearchQuery>>,
    catalog: Vec<JoinHandle<()>>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let idle_cap = parse_idle_cap(&args.idle_cap)?;
    // Everything that can fail on bad input fails here, before the terminal is taken over.
    let config = match &args.config {
        Some(path) => Some(ReplayConfig::load(path)?),
        None => None,
    };
    let store = match &config {
        Some(config) => Some(
            RecordingStore::open_reader(config.store_config())
                .await
                .context("cannot open the recording store")?,
        ),
        None => None,
    };
    let key = match &config {
        Some(config) => config
            .verifying_key()
            .map_err(|e| anyhow::anyhow!("signing key: {e}"))?
            .map(Arc::new),
        None => None,
    };
    let settings = Settings {
        idle_cap,
        can_end_sessions: config.is_some() && !args.no_end_session,
    };
    let (mut app, effects) = match (&args.recording, &store) {
        (Some(id), Some(_)) if !std::path::Path::new(id).exists() => {
            App::single(settings, OpenTarget::Store(id.clone()))
        }
        (Some(path), _) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                bail!("{}: no such recording file", path.display());
            }
            App::single(settings, OpenTarget::File(path))
        }
        (None, Some(_)) => (App::browser(settings), vec![Effect::ReloadCatalog]),
        (None, None) => bail!("give a recording file to play, or --config to browse the store"),
    };

    let (messages, mut inbox) = mpsc::unbounded_channel();
    let mut wiring = Wiring {
        store,
        config,
        key,
        bastion_bin: args.bastion_bin,
        messages,
        player: None,
        searches: None,
        catalog: Vec::new(),
    };

    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("replay-input".to_string())
        .spawn(move || {
            while let Ok(event) = crossterm::event::read() {
                if keys_tx.send(event).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the input thread")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;

    for effect in effects {
        carry_out(effect, &mut wiring);
    }
    let mut last_tick = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        if let Err(e) = terminal.draw(|frame| replay_tui::ui::render(&app, frame)) {
            break Err(anyhow::Error::new(e).context("cannot draw"));
        }
        if app.quit {
            break Ok(());
        }
        let playing = app.is_playing();
        let effects = tokio::select! {
            event = keys.recv() => match event {
                Some(Event::Key(key)) if key.kind != KeyEventKind::Release => app.handle_key(key),
                Some(_) => Vec::new(),
                None => break Ok(()),
            },
            message = inbox.recv() => match message {
                Some(message) => {
                    let mut effects = app.handle_message(message);
                    // Take everything already waiting before drawing again.
                    while let Ok(message) = inbox.try_recv() {
                        effects.extend(app.handle_message(message));
                    }
                    effects
                }
                None => Vec::new(),
            },
            _ = ticker.tick(), if playing => {
                let now = Instant::now();
                let elapsed = now - last_tick;
                last_tick = now;
                app.tick(elapsed)
            }
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
        };
        if !playing {
            last_tick = Instant::now();
        }
        for effect in effects {
            carry_out(effect, &mut wiring);
        }
    };
    ratatui::restore();
    result
}

fn carry_out(effect: Effect, wiring: &mut Wiring) {
    match effect {
        Effect::Open { generation, target } => {
            let recording = match (target, &wiring.store, &wiring.config) {
                (OpenTarget::File(path), _, _) => Recording::File(path),
                (OpenTarget::Store(id), Some(store), Some(config)) => Recording::Store {
                    store: store.clone(),
                    id,
                    poll: config
                        .segment_interval
                        .clamp(Duration::from_millis(500), Duration::from_secs(5)),
                },
                (OpenTarget::Store(_), _, _) => return,
            };
            let (requests, requests_rx) = mpsc::unbounded_channel();
            let (events_tx, mut events) = mpsc::unbounded_channel();
            tokio::spawn(worker::run(recording, requests_rx, events_tx));
            let messages = wiring.messages.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if messages
                        .send(Message::Player { generation, event })
                        .is_err()
                    {
                        break;
                    }
                }
            });
            wiring.player = Some((generation, requests));
        }
        Effect::ClosePlayer => wiring.player = None,
        Effect::Player {
            generation,
            request,
        } => {
            if let Some((current, requests)) = &wiring.player
                && *current == generation
            {
                let _ = requests.send(request);
            }
        }
        Effect::Search(query) => {
            if let Some(searches) = &wiring.searches {
                let _ = searches.send(query);
            }
        }
        Effect::ReloadCatalog => reload_catalog(wiring),
        Effect::EndSession { id } => {
            let (Some(config), messages) = (&wiring.config, wiring.messages.clone()) else {
                return;
            };
            let mut command = tokio::process::Command::new(&wiring.bastion_bin);
            let by = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".to_string());
            command
                .arg("sessions")
                .arg("end")
                .arg("--config")
                .arg(&config.path)
                .arg(&id)
                .arg("--by")
                .arg(by)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            let bin = wiring.bastion_bin.display().to_string();
            tokio::spawn(async move {
                let result = match command.output().await {
                    Ok(out) if out.status.success() => {
                        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                    }
                    Ok(out) => Err(format!(
                        "{bin} exited with {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                    Err(e) => Err(format!("cannot run {bin}: {e}")),
                };
                let _ = messages.send(Message::SessionEnded { id, result });
            });
        }
    }
}

fn reload_catalog(wiring: &mut Wiring) {
    for task in wiring.catalog.drain(..) {
        task.abort();
    }
    let Some(store) = wiring.store.clone() else {
        return;
    };
    let (catalog_tx, mut catalog_rx) = mpsc::unbounded_channel();
    let (docs_tx, docs_rx) = mpsc::unbounded_channel();
    let (queries_tx, queries_rx) = mpsc::unbounded_channel();
    let (results_tx, mut results_rx) = mpsc::unbounded_channel();
    let messages = wiring.messages.clone();
    let forward_catalog = tokio::spawn(async move {
        while let Some(event) = catalog_rx.recv().await {
            if messages.send(Message::Catalog(event)).is_err() {
                break;
            }
        }
    });
    let messages = wiring.messages.clone();
    let forward_results = tokio::spawn(async move {
        while let Some(results) = results_rx.recv().await {
            if messages.send(Message::Search(results)).is_err() {
                break;
            }
        }
    });
    wiring.catalog = vec![
        tokio::spawn(replay_tui::catalog::load(
            store,
            wiring.key.clone(),
            catalog_tx,
            docs_tx,
        )),
        tokio::spawn(replay_tui::search::run(docs_rx, queries_rx, results_tx)),
        forward_catalog,
        forward_results,
    ];
    wiring.searches = Some(queries_tx);
}
