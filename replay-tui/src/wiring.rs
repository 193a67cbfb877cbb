//! Carrying out the state machine's [`Effect`]s: starting and stopping player workers, the
//! catalog and search tasks, running `bastion sessions end`. Every background task reports
//! back as a [`Message`] on one channel. `main` and the tests share this, so tests drive the
//! real background machinery.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use recorder::RecordingStore;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;

use crate::app::{Effect, Message, OpenTarget};
use crate::config::ReplayConfig;
use crate::search::SearchQuery;
use crate::worker::{self, PlayerRequest, Recording};

/// What the loop needs to act on effects.
pub struct Wiring {
    pub store: Option<RecordingStore>,
    pub config: Option<ReplayConfig>,
    pub key: Option<Arc<recorder::VerifyingKey>>,
    pub bastion_bin: PathBuf,
    pub messages: UnboundedSender<Message>,
    player: Option<(u64, UnboundedSender<PlayerRequest>)>,
    searches: Option<UnboundedSender<SearchQuery>>,
    catalog: Vec<JoinHandle<()>>,
}

impl Wiring {
    pub fn new(
        store: Option<RecordingStore>,
        config: Option<ReplayConfig>,
        key: Option<Arc<recorder::VerifyingKey>>,
        bastion_bin: PathBuf,
        messages: UnboundedSender<Message>,
    ) -> Wiring {
        Wiring {
            store,
            config,
            key,
            bastion_bin,
            messages,
            player: None,
            searches: None,
            catalog: Vec::new(),
        }
    }
}

impl Drop for Wiring {
    fn drop(&mut self) {
        for task in self.catalog.drain(..) {
            task.abort();
        }
    }
}

/// Does what `effect` asks; must be called inside a tokio runtime.
pub fn carry_out(effect: Effect, wiring: &mut Wiring) {
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
        tokio::spawn(crate::catalog::load(
            store,
            wiring.key.clone(),
            catalog_tx,
            docs_tx,
        )),
        tokio::spawn(crate::search::run(docs_rx, queries_rx, results_tx)),
        forward_catalog,
        forward_results,
    ];
    wiring.searches = Some(queries_tx);
}
