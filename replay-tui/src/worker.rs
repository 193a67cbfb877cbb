//! The player's background worker: opens a recording, answers "what does the screen look like
//! at t" with ready-to-draw [`Frame`]s, streams index updates while the recording loads, and
//! exports. The UI thread never touches a recording; it sends [`PlayerRequest`]s and draws
//! whatever came back last. Frame requests that pile up while one is being computed are
//! collapsed into the newest, so fast seeking or 16x playback never queues work.

use std::path::PathBuf;
use std::time::Duration;

use recorder::{EventKind, RecordingStore};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::export::{ExportSummary, export};
use crate::screen::Screen;
use crate::source::{
    IndexDelta, Neighbours, RecordingInfo, RecordingSource, SourceError, TimedText, apply_event,
};

/// Playing forward by at most this much reuses the current terminal instead of replaying from
/// a keyframe.
const INCREMENTAL_WINDOW: f64 = 2.0;

/// How far back typed keys are shown in the input overlay.
pub const INPUT_OVERLAY_SECS: f64 = 3.0;

/// How often loading progress and new index data are sent to the UI.
const INDEX_POLL: Duration = Duration::from_millis(200);

/// What to open.
#[derive(Clone)]
pub enum Recording {
    File(PathBuf),
    Store {
        store: RecordingStore,
        id: String,
        /// How often a live recording is polled for new segments.
        poll: Duration,
    },
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recording::File(path) => write!(f, "File({})", path.display()),
            Recording::Store { id, .. } => write!(f, "Store({id})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlayerRequest {
    Frame {
        t: f64,
        with_input: bool,
    },
    Export {
        path: PathBuf,
        range: Option<(f64, f64)>,
    },
}

/// One drawable moment of the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub t: f64,
    pub screen: Screen,
    pub neighbours: Neighbours,
    /// Keys typed in the last few seconds before `t` (input overlay), when asked for.
    pub input: Vec<TimedText>,
    /// Whether the input was asked for (so the UI knows the frame answers its last request).
    pub with_input: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlayerEvent {
    Opened(RecordingInfo),
    Index(IndexDelta),
    Frame(Frame),
    Exported(Result<ExportSummary, String>),
    Failed(String),
}

/// Opens the recording in the background (never on the UI thread).
pub async fn open(recording: Recording) -> Result<Box<dyn RecordingSource>, SourceError> {
    match recording {
        Recording::File(path) => {
            let opened = tokio::task::spawn_blocking(move || crate::source::file::open_file(&path))
                .await
                .map_err(|e| SourceError::Read {
                    what: "file".to_string(),
                    reason: e.to_string(),
                })??;
            Ok(Box::new(opened))
        }
        Recording::Store { store, id, poll } => crate::source::store::open(store, id, poll).await,
    }
}

/// Renders frames of one opened recording, keeping the terminal of the last frame so playing
/// forward only applies the new events.
pub struct Player {
    source: Box<dyn RecordingSource>,
    /// Terminal after all events up to `.0` (the time of the last event applied).
    current: Option<(f64, avt::Terminal)>,
}

impl Player {
    pub fn new(source: Box<dyn RecordingSource>) -> Player {
        Player {
            source,
            current: None,
        }
    }

    pub fn source(&mut self) -> &mut dyn RecordingSource {
        self.source.as_mut()
    }

    pub async fn frame(&mut self, t: f64, with_input: bool) -> Result<Frame, SourceError> {
        let t = if t.is_finite() { t.max(0.0) } else { 0.0 };
        let neighbours = self.source.neighbours(t).await?;
        let reuse =
            matches!(&self.current, Some((at, _)) if *at <= t && t - *at <= INCREMENTAL_WINDOW);
        let term = match self.current.take() {
            Some((at, mut term)) if reuse => {
                for event in self.source.events_between(at, t).await? {
                    apply_event(&mut term, &event);
                }
                term
            }
            _ => self.source.screen_at(t).await?,
        };
        let screen = Screen::capture(&term);
        // The terminal holds every event up to the last one at or before t; later arrivals
        // (a live recording, a file still loading) are applied from there.
        self.current = Some((neighbours.previous.unwrap_or(-1.0), term));
        let input = if with_input {
            self.source
                .events_between(t - INPUT_OVERLAY_SECS, t)
                .await?
                .into_iter()
                .filter(|e| e.kind == EventKind::Input)
                .map(|e| TimedText {
                    t: e.time,
                    text: e.data,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Frame {
            t,
            screen,
            neighbours,
            input,
            with_input,
        })
    }
}

/// Runs the worker for one recording until the UI drops its request sender.
pub async fn run(
    recording: Recording,
    mut requests: UnboundedReceiver<PlayerRequest>,
    events: UnboundedSender<PlayerEvent>,
) {
    let source = match open(recording).await {
        Ok(source) => source,
        Err(e) => {
            let _ = events.send(PlayerEvent::Failed(e.to_string()));
            return;
        }
    };
    let _ = events.send(PlayerEvent::Opened(source.info()));
    let mut player = Player::new(source);
    let mut poll = tokio::time::interval(INDEX_POLL);
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                for request in newest_frame_only(request, &mut requests) {
                    let event = match request {
                        PlayerRequest::Frame { t, with_input } => match player.frame(t, with_input).await {
                            Ok(frame) => PlayerEvent::Frame(frame),
                            Err(e) => PlayerEvent::Failed(e.to_string()),
                        },
                        PlayerRequest::Export { path, range } => PlayerEvent::Exported(
                            export(player.source(), &path, range).await.map_err(|e| e.to_string()),
                        ),
                    };
                    if events.send(event).is_err() {
                        return;
                    }
                }
            }
            _ = poll.tick() => {
                if let Some(delta) = player.source().poll_index()
                    && events.send(PlayerEvent::Index(delta)).is_err()
                {
                    return;
                }
            }
        }
    }
}

/// `first` plus everything already queued, with all but the newest frame request dropped.
fn newest_frame_only(
    first: PlayerRequest,
    requests: &mut UnboundedReceiver<PlayerRequest>,
) -> Vec<PlayerRequest> {
    let mut queued = vec![first];
    while let Ok(request) = requests.try_recv() {
        queued.push(request);
    }
    let last_frame = queued
        .iter()
        .rposition(|r| matches!(r, PlayerRequest::Frame { .. }));
    queued
        .into_iter()
        .enumerate()
        .filter(|(i, r)| !matches!(r, PlayerRequest::Frame { .. }) || Some(*i) == last_frame)
        .map(|(_, r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_frame_request_survives() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for t in [2.0, 3.0] {
            tx.send(PlayerRequest::Frame {
                t,
                with_input: false,
            })
            .unwrap();
        }
        let export = PlayerRequest::Export {
            path: "x.cast".into(),
            range: None,
        };
        tx.send(export.clone()).unwrap();
        tx.send(PlayerRequest::Frame {
            t: 4.0,
            with_input: true,
        })
        .unwrap();
        let kept = newest_frame_only(
            PlayerRequest::Frame {
                t: 1.0,
                with_input: false,
            },
            &mut rx,
        );
        assert_eq!(
            kept,
            vec![
                export,
                PlayerRequest::Frame {
                    t: 4.0,
                    with_input: true
                }
            ]
        );
    }
}
