//! `bastion-replay`: command line, terminal setup and the event loop. Keys, background
//! messages and playback ticks go into the pure [`App`]; the effects it returns are carried out
//! here (start or stop a player worker, run a search, reload the list, end a session). The
//! terminal is restored on `q`, on Ctrl-C or SIGTERM, and on panic (ratatui's panic hook).
//!
//! Ending a live session (`E`) is allowed only when the configuration says so
//! (`[replay] allow_end_session = true`); `--no-end-session` can take that back, never grant it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use crossterm::event::{Event, KeyEventKind};
use recorder::RecordingStore;
use replay_tui::app::{App, Effect, OpenTarget, Settings};
use replay_tui::config::{EndSessions, ReplayConfig};
use replay_tui::wiring::{Wiring, carry_out};
use tokio::sync::mpsc;

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
    /// The bastion configuration (its storage keys and `[replay]` are read).
    #[arg(long, env = "BASTION_CONFIG")]
    config: Option<PathBuf>,
    /// Longest pause played in full, e.g. "2s", "500ms"; "off" plays pauses as recorded.
    #[arg(long, default_value = "2s")]
    idle_cap: String,
    /// The bastion binary used to end live sessions.
    #[arg(long, default_value = "bastion")]
    bastion_bin: PathBuf,
    /// Never end live sessions, even where the configuration allows it
    /// (`[replay] allow_end_session`).
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
            eprintln!("bastion-replay: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out a cause that its parent's message already includes
/// (several store errors print their source themselves).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
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
        end_sessions: EndSessions::decide(config.as_ref(), args.no_end_session),
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
    let mut wiring = Wiring::new(store, config, key, args.bastion_bin, messages);

    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    // ratatui's panic hook leaves raw mode and the alternate screen but keeps the cursor hidden.
    let restore_on_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
        restore_on_panic(info);
    }));
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
    restore_terminal();
    result
}

/// Leaves raw mode and the alternate screen and shows the cursor again (ratatui's restore does
/// not, and its terminal hides the cursor while drawing).
fn restore_terminal() {
    ratatui::restore();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
}
