//! The application state machine. It is pure: a key becomes an [`Action`] (see [`keys`]), an
//! action or a message from a background task changes the state and returns [`Effect`]s for
//! `main` to carry out (open a recording, ask the worker for a frame, run a search, end a
//! session). Nothing here touches the terminal, the store or the clock, so every behaviour is
//! tested by feeding keys and messages and looking at the state or the drawn screen.

pub mod browser;
pub mod field;
pub mod keys;
pub mod player;

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::KeyEvent;

use crate::catalog::CatalogEvent;
pub use crate::config::EndSessions;
use crate::search::{SearchQuery, SearchResults};
use crate::worker::{PlayerEvent, PlayerRequest};
use browser::{BrowserFocus, BrowserState, Filters};
use field::{FieldOutcome, TextField};
pub use keys::{Action, Context};
use player::PlayerState;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Default idle cap in seconds (`None`: off).
    pub idle_cap: Option<f64>,
    /// Whether `E` may end a live session (`[replay] allow_end_session`, `--no-end-session`).
    pub end_sessions: EndSessions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Browser,
    Player,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    /// "End session ID?" waiting for y/n.
    ConfirmEnd {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenTarget {
    Store(String),
    File(PathBuf),
}

/// What `main` must do on the state machine's behalf.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a player worker for `target` tagged `generation`.
    Open {
        generation: u64,
        target: OpenTarget,
    },
    /// Stop the current player worker.
    ClosePlayer,
    Player {
        generation: u64,
        request: PlayerRequest,
    },
    Search(SearchQuery),
    ReloadCatalog,
    EndSession {
        id: String,
    },
}

/// What background tasks report.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Player {
        generation: u64,
        event: PlayerEvent,
    },
    Catalog(CatalogEvent),
    Search(SearchResults),
    SessionEnded {
        id: String,
        result: Result<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub view: View,
    pub browser: Option<BrowserState>,
    pub player: Option<PlayerState>,
    pub overlay: Option<Overlay>,
    /// One line of feedback (export done, errors), cleared by the next key.
    pub status: Option<String>,
    pub settings: Settings,
    pub quit: bool,
    next_generation: u64,
    /// Filters as they were when the filter form opened (Esc restores them).
    filters_before: Filters,
}

impl App {
    /// The browser over a store (`--config`).
    pub fn browser(settings: Settings) -> App {
        App {
            view: View::Browser,
            browser: Some(BrowserState::default()),
            player: None,
            overlay: None,
            status: None,
            settings,
            quit: false,
            next_generation: 0,
            filters_before: Filters::default(),
        }
    }

    /// The player on one recording, without a browser (`bastion-replay FILE.cast`, or a
    /// recording id with `--config`).
    pub fn single(settings: Settings, target: OpenTarget) -> (App, Vec<Effect>) {
        let mut app = App::browser(settings);
        app.browser = None;
        let effects = app.open(target, None, "");
        (app, effects)
    }

    fn open(&mut self, target: OpenTarget, at: Option<f64>, query: &str) -> Vec<Effect> {
        self.next_generation += 1;
        let generation = self.next_generation;
        let name = match &target {
            OpenTarget::Store(id) => id.clone(),
            OpenTarget::File(path) => path.display().to_string(),
        };
        let mut player = PlayerState::new(generation, &name, self.settings.idle_cap);
        player.from_browser = self.browser.is_some();
        if let OpenTarget::Store(id) = &target {
            player.store_id = Some(id.clone());
        }
        player.set_query(query);
        player.pending_seek = at;
        let first = player.frame_request();
        self.player = Some(player);
        self.view = View::Player;
        vec![
            Effect::Open { generation, target },
            Effect::Player {
                generation,
                request: first,
            },
        ]
    }

    fn context(&self) -> Context {
        match self.view {
            View::Browser => match self.browser.as_ref().map(|b| b.focus) {
                Some(BrowserFocus::Hits) => Context::Hits,
                _ => Context::Browser,
            },
            View::Player => match &self.player {
                Some(p) if p.panel_focused => Context::Panel,
                _ => Context::Player,
            },
        }
    }

    /// Contexts whose keys the help screen lists.
    pub fn help_contexts(&self) -> Vec<Context> {
        match self.view {
            View::Browser => vec![Context::Browser, Context::Hits],
            View::Player => vec![Context::Player, Context::Panel],
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.status = None;
        if let Some(overlay) = self.overlay.take() {
            return match overlay {
                Overlay::Help => Vec::new(),
                Overlay::ConfirmEnd { id } => {
                    if key.code == crossterm::event::KeyCode::Char('y') {
                        self.status = Some(format!("asking the bastion to end session {id}…"));
                        vec![Effect::EndSession { id }]
                    } else {
                        self.status = Some("session left running".to_string());
                        Vec::new()
                    }
                }
            };
        }
        if let Some(effects) = self.field_key(&key) {
            return effects;
        }
        match keys::action_for(self.context(), &key) {
            Some(action) => self.apply(action),
            None => Vec::new(),
        }
    }

    /// Keys while a text field has the keyboard; `None` when no field is open.
    fn field_key(&mut self, key: &KeyEvent) -> Option<Vec<Effect>> {
        match self.view {
            View::Browser => {
                let browser = self.browser.as_mut()?;
                if let Some(form) = &mut browser.filter_form {
                    match form.key(key) {
                        FieldOutcome::Edited => {
                            browser.filters = Filters::from_form(form);
                            browser.refresh();
                        }
                        FieldOutcome::Submit => browser.filter_form = None,
                        FieldOutcome::Cancel => {
                            browser.filter_form = None;
                            browser.filters = self.filters_before.clone();
                            browser.refresh();
                        }
                        _ => {}
                    }
                    return Some(Vec::new());
                }
                let field = browser.search_field.as_mut()?;
                Some(match field.key(key) {
                    FieldOutcome::Edited => {
                        let text = field.text.clone();
                        vec![Effect::Search(browser.set_query(&text))]
                    }
                    FieldOutcome::Submit => {
                        browser.search_field = None;
                        Vec::new()
                    }
                    FieldOutcome::Cancel => {
                        browser.search_field = None;
                        vec![Effect::Search(browser.set_query(""))]
                    }
                    _ => Vec::new(),
                })
            }
            View::Player => {
                let player = self.player.as_mut()?;
                let generation = player.generation;
                let wrap = |requests: Vec<PlayerRequest>| -> Vec<Effect> {
                    requests
                        .into_iter()
                        .map(|request| Effect::Player {
                            generation,
                            request,
                        })
                        .collect()
                };
                if let Some(field) = &mut player.export {
                    return Some(match field.key(key) {
                        FieldOutcome::Submit => {
                            let path = PathBuf::from(field.text.trim());
                            player.export = None;
                            if path.as_os_str().is_empty() {
                                Vec::new()
                            } else {
                                self.status = Some(format!("exporting to {}…", path.display()));
                                wrap(vec![PlayerRequest::Export {
                                    path,
                                    range: player.export_range(),
                                }])
                            }
                        }
                        FieldOutcome::Cancel => {
                            player.export = None;
                            Vec::new()
                        }
                        _ => Vec::new(),
                    });
                }
                let field = player.search.as_mut()?;
                Some(match field.key(key) {
                    FieldOutcome::Edited => {
                        let text = field.text.clone();
                        player.set_query(&text);
                        Vec::new()
                    }
                    FieldOutcome::Submit => {
                        player.search = None;
                        if player.hits.is_empty() && !player.query.is_empty() {
                            self.status = Some(format!("no hits for {:?}", player.query));
                            Vec::new()
                        } else {
                            wrap(player.next_hit())
                        }
                    }
                    FieldOutcome::Cancel => {
                        player.search = None;
                        player.set_query("");
                        Vec::new()
                    }
                    _ => Vec::new(),
                })
            }
        }
    }

    pub fn apply(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Help => {
                self.overlay = Some(Overlay::Help);
                return Vec::new();
            }
            Action::Quit => {
                self.quit = true;
                return Vec::new();
            }
            _ => {}
        }
        match self.view {
            View::Browser => self.browser_action(action),
            View::Player => self.player_action(action),
        }
    }

    fn browser_action(&mut self, action: Action) -> Vec<Effect> {
        let Some(browser) = self.browser.as_mut() else {
            return Vec::new();
        };
        match action {
            Action::Up => browser.move_selection(-1),
            Action::Down => browser.move_selection(1),
            Action::PageUp => browser.move_selection(-20),
            Action::PageDown => browser.move_selection(20),
            Action::Top => browser.move_selection(isize::MIN / 2),
            Action::Bottom => browser.move_selection(isize::MAX / 2),
            Action::Select => {
                if let Some((id, at)) = browser.open_target() {
                    let query = browser.query.clone();
                    return self.open(OpenTarget::Store(id), at, &query);
                }
            }
            Action::FocusNext => {
                browser.focus = match browser.focus {
                    BrowserFocus::Table if !browser.selected_hits().is_empty() => {
                        BrowserFocus::Hits
                    }
                    _ => BrowserFocus::Table,
                };
                browser.hit_selected = 0;
            }
            Action::Search => {
                browser.search_field = Some(TextField::new("search", &browser.query));
            }
            Action::Filters => {
                self.filters_before = browser.filters.clone();
                browser.filter_form = Some(browser.filters.form());
            }
            Action::ClearFilters => {
                browser.clear();
                return vec![Effect::Search(browser.set_query(""))];
            }
            Action::SortNext => browser.sort_next(),
            Action::SortReverse => browser.sort_reverse(),
            Action::Reload => {
                browser.reset_rows();
                let query = browser.query.clone();
                // The new search task knows no query yet.
                return vec![
                    Effect::ReloadCatalog,
                    Effect::Search(browser.set_query(&query)),
                ];
            }
            Action::Back => {
                if !browser.query.is_empty() || !browser.filters.is_empty() {
                    browser.clear();
                    return vec![Effect::Search(browser.set_query(""))];
                }
                self.quit = true;
            }
            _ => {}
        }
        Vec::new()
    }

    fn player_action(&mut self, action: Action) -> Vec<Effect> {
        let end_sessions = &self.settings.end_sessions;
        let Some(player) = self.player.as_mut() else {
            return Vec::new();
        };
        let generation = player.generation;
        let requests = match action {
            Action::TogglePlay => player.toggle_play(),
            Action::Faster => {
                player.faster();
                Vec::new()
            }
            Action::Slower => {
                player.slower();
                Vec::new()
            }
            Action::Seek(delta) => player.seek_by(delta),
            Action::SeekPercent(p) => player.seek_percent(p),
            Action::SeekStart => player.seek(0.0),
            Action::SeekEnd => player.seek(player.duration),
            Action::NextCommand => player.next_command(),
            Action::PrevCommand => player.previous_command(),
            Action::NextHit => player.next_hit(),
            Action::PrevHit => player.previous_hit(),
            Action::StepForward => player.step(true),
            Action::StepBack => player.step(false),
            Action::ToggleInput => {
                player.show_input = !player.show_input;
                vec![player.frame_request()]
            }
            Action::ToggleIdleCap => {
                player.idle_cap_on = !player.idle_cap_on && player.idle_cap.is_some();
                if player.idle_cap.is_none() {
                    self.status = Some("no idle cap set (use --idle-cap)".to_string());
                }
                Vec::new()
            }
            Action::Search => {
                player.search = Some(TextField::new("search", &player.query));
                Vec::new()
            }
            Action::MarkIn => {
                player.mark_in = Some(player.position);
                Vec::new()
            }
            Action::MarkOut => {
                player.mark_out = Some(player.position);
                Vec::new()
            }
            Action::ClearMarks => {
                player.mark_in = None;
                player.mark_out = None;
                Vec::new()
            }
            Action::Export => {
                player.export = Some(TextField::new("export to", &player.export_name()));
                Vec::new()
            }
            Action::Follow => {
                if player.live {
                    player.following = true;
                    player.playing = true;
                    player.seek(player.duration)
                } else {
                    self.status = Some("this recording is not live".to_string());
                    Vec::new()
                }
            }
            Action::EndSession => {
                match (&player.store_id, player.live, end_sessions) {
                    (_, false, _) => {
                        self.status = Some("only a live session can be ended".to_string())
                    }
                    (_, true, EndSessions::Refused(reason)) => self.status = Some(reason.clone()),
                    (Some(id), true, EndSessions::Allowed) => {
                        self.overlay = Some(Overlay::ConfirmEnd { id: id.clone() })
                    }
                    (None, true, EndSessions::Allowed) => {
                        self.status = Some("only a recording in the store can be ended".to_string())
                    }
                }
                Vec::new()
            }
            Action::FocusNext => {
                player.panel_focused = !player.panel_focused && !player.commands.is_empty();
                Vec::new()
            }
            Action::Up => {
                player.panel_move(-1);
                Vec::new()
            }
            Action::Down => {
                player.panel_move(1);
                Vec::new()
            }
            Action::Top => {
                player.panel_move(isize::MIN / 2);
                Vec::new()
            }
            Action::Bottom => {
                player.panel_move(isize::MAX / 2);
                Vec::new()
            }
            Action::Select => player.panel_seek(),
            Action::Back => {
                if player.from_browser {
                    self.player = None;
                    self.view = View::Browser;
                    return vec![Effect::ClosePlayer];
                }
                self.quit = true;
                Vec::new()
            }
            _ => Vec::new(),
        };
        requests
            .into_iter()
            .map(|request| Effect::Player {
                generation,
                request,
            })
            .collect()
    }

    /// Advances playback by `elapsed` of wall time.
    pub fn tick(&mut self, elapsed: Duration) -> Vec<Effect> {
        match (&mut self.player, self.view) {
            (Some(player), View::Player) => {
                let generation = player.generation;
                player
                    .tick(elapsed)
                    .into_iter()
                    .map(|request| Effect::Player {
                        generation,
                        request,
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether time passing changes anything (the event loop ticks only then).
    pub fn is_playing(&self) -> bool {
        self.view == View::Player && self.player.as_ref().is_some_and(|p| p.playing)
    }

    pub fn handle_message(&mut self, message: Message) -> Vec<Effect> {
        match message {
            Message::Player { generation, event } => {
                let Some(player) = self.player.as_mut().filter(|p| p.generation == generation)
                else {
                    return Vec::new();
                };
                let requests = match event {
                    PlayerEvent::Opened(info) => {
                        player.live = info.live;
                        player.info = Some(info);
                        Vec::new()
                    }
                    PlayerEvent::Index(delta) => player.apply_index(delta),
                    PlayerEvent::Frame(frame) => {
                        player.apply_frame(frame);
                        Vec::new()
                    }
                    PlayerEvent::Exported(Ok(summary)) => {
                        self.status = Some(format!(
                            "exported {} events ({}) to {}",
                            summary.events,
                            crate::units::size(summary.bytes),
                            summary.path.display()
                        ));
                        Vec::new()
                    }
                    PlayerEvent::Exported(Err(e)) => {
                        self.status = Some(format!("export failed: {e}"));
                        Vec::new()
                    }
                    PlayerEvent::Failed(e) => {
                        player.error = Some(e);
                        Vec::new()
                    }
                };
                requests
                    .into_iter()
                    .map(|request| Effect::Player {
                        generation,
                        request,
                    })
                    .collect()
            }
            Message::Catalog(event) => {
                if let Some(browser) = &mut self.browser {
                    browser.apply(event);
                }
                Vec::new()
            }
            Message::Search(results) => {
                if let Some(browser) = &mut self.browser {
                    browser.apply_results(results);
                }
                Vec::new()
            }
            Message::SessionEnded { id, result } => {
                self.status = Some(match result {
                    Ok(out) if out.trim().is_empty() => format!("session {id} ended"),
                    Ok(out) => out.trim().to_string(),
                    Err(e) => format!("cannot end session {id}: {e}"),
                });
                Vec::new()
            }
        }
    }
}
