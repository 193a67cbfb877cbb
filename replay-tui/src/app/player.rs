//! The player's state: position, speed, idle cap, what the worker sent (frames, index), search
//! hits, the command panel and export marks. Every change is a method taking the input (an
//! action, a worker event, the time elapsed) and returning the requests for the worker, so
//! playback is tested without a clock or a terminal.

use std::path::PathBuf;
use std::time::Duration;

use super::field::TextField;
use crate::source::{Mark, Progress, RecordingInfo, TimedText};
use crate::worker::{Frame, PlayerRequest};

/// Playback speeds offered; `+`/`-` step through them.
pub const SPEEDS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
const NORMAL_SPEED: usize = 2;

/// Tolerance when looking for "the next command after here" so repeated presses move on.
const EPSILON: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq)]
pub struct PlayerState {
    /// Which worker this state belongs to: events of an earlier recording are ignored.
    pub generation: u64,
    /// What was asked to be opened (path or recording id), shown until the header arrives.
    pub name: String,
    /// The recording id in the store, for "end this session".
    pub store_id: Option<String>,
    pub info: Option<RecordingInfo>,
    pub position: f64,
    pub playing: bool,
    pub speed: usize,
    /// Longest pause played as is; `None` plays pauses in full.
    pub idle_cap: Option<f64>,
    pub idle_cap_on: bool,
    pub frame: Option<Frame>,
    pub duration: f64,
    pub commands: Vec<TimedText>,
    pub output: Vec<TimedText>,
    pub marks: Vec<Mark>,
    /// Output bytes per second of recording time.
    pub activity: Vec<(u64, u64)>,
    pub progress: Progress,
    pub damage: Option<String>,
    pub live: bool,
    /// Stay at the live end of a running session.
    pub following: bool,
    pub search: Option<TextField>,
    pub query: String,
    /// Times of search hits, ascending.
    pub hits: Vec<f64>,
    pub panel_focused: bool,
    pub panel_selected: usize,
    pub show_input: bool,
    pub mark_in: Option<f64>,
    pub mark_out: Option<f64>,
    pub export: Option<TextField>,
    pub error: Option<String>,
    /// Where to go once that much of the recording is loaded (opened at a search hit).
    pub pending_seek: Option<f64>,
    /// Opened from the browser: `q` goes back there instead of quitting.
    pub from_browser: bool,
}

impl PlayerState {
    pub fn new(generation: u64, name: &str, idle_cap: Option<f64>) -> PlayerState {
        PlayerState {
            generation,
            name: name.to_string(),
            store_id: None,
            info: None,
            position: 0.0,
            playing: false,
            speed: NORMAL_SPEED,
            idle_cap,
            idle_cap_on: idle_cap.is_some(),
            frame: None,
            duration: 0.0,
            commands: Vec::new(),
            output: Vec::new(),
            marks: Vec::new(),
            activity: Vec::new(),
            progress: Progress::default(),
            damage: None,
            live: false,
            following: false,
            search: None,
            query: String::new(),
            hits: Vec::new(),
            panel_focused: false,
            panel_selected: 0,
            show_input: false,
            mark_in: None,
            mark_out: None,
            export: None,
            error: None,
            pending_seek: None,
            from_browser: false,
        }
    }

    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed.min(SPEEDS.len() - 1)]
    }

    pub fn frame_request(&self) -> PlayerRequest {
        PlayerRequest::Frame {
            t: self.position,
            with_input: self.show_input,
        }
    }

    /// Moves to `t` (clamped to what is known) and asks for its frame.
    pub fn seek(&mut self, t: f64) -> Vec<PlayerRequest> {
        let t = if t.is_finite() { t } else { 0.0 };
        self.position = t.clamp(0.0, self.duration.max(0.0));
        self.following = self.live && self.position >= self.duration;
        self.sync_panel();
        vec![self.frame_request()]
    }

    pub fn seek_by(&mut self, delta: f64) -> Vec<PlayerRequest> {
        self.seek(self.position + delta)
    }

    pub fn seek_percent(&mut self, percent: u8) -> Vec<PlayerRequest> {
        self.seek(self.duration * f64::from(percent.min(100)) / 100.0)
    }

    pub fn toggle_play(&mut self) -> Vec<PlayerRequest> {
        self.playing = !self.playing;
        if self.playing && !self.live && self.position >= self.duration && self.duration > 0.0 {
            // Play again from the start once the end was reached.
            return self.seek(0.0);
        }
        Vec::new()
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed + 1).min(SPEEDS.len() - 1);
    }

    pub fn slower(&mut self) {
        self.speed = self.speed.saturating_sub(1);
    }

    fn next_after(times: impl Iterator<Item = f64>, position: f64) -> Option<f64> {
        times
            .filter(|t| *t > position + EPSILON)
            .fold(None, |best: Option<f64>, t| {
                Some(best.map_or(t, |b| b.min(t)))
            })
    }

    fn previous_before(times: impl Iterator<Item = f64>, position: f64) -> Option<f64> {
        times
            .filter(|t| *t < position - EPSILON)
            .fold(None, |best: Option<f64>, t| {
                Some(best.map_or(t, |b| b.max(t)))
            })
    }

    pub fn next_command(&mut self) -> Vec<PlayerRequest> {
        let target = Self::next_after(self.commands.iter().map(|c| c.t), self.position);
        target.map_or_else(Vec::new, |t| self.seek(t))
    }

    pub fn previous_command(&mut self) -> Vec<PlayerRequest> {
        let target = Self::previous_before(self.commands.iter().map(|c| c.t), self.position);
        target.map_or_else(Vec::new, |t| self.seek(t))
    }

    pub fn next_hit(&mut self) -> Vec<PlayerRequest> {
        let target = Self::next_after(self.hits.iter().copied(), self.position);
        target.map_or_else(Vec::new, |t| self.seek(t))
    }

    pub fn previous_hit(&mut self) -> Vec<PlayerRequest> {
        let target = Self::previous_before(self.hits.iter().copied(), self.position);
        target.map_or_else(Vec::new, |t| self.seek(t))
    }

    /// One event forward or back; only while paused (playing moves on by itself).
    pub fn step(&mut self, forward: bool) -> Vec<PlayerRequest> {
        if self.playing {
            return Vec::new();
        }
        let Some(frame) = &self.frame else {
            return Vec::new();
        };
        let target = if forward {
            frame.neighbours.next
        } else {
            // Just before the event that made the current screen shows the screen before it.
            frame
                .neighbours
                .previous
                .filter(|t| *t > 0.0)
                .map(|t| (t - 1e-6).max(0.0))
        };
        target.map_or_else(Vec::new, |t| self.seek(t))
    }

    /// Advances playback by `elapsed` of wall time.
    pub fn tick(&mut self, elapsed: Duration) -> Vec<PlayerRequest> {
        if !self.playing {
            return Vec::new();
        }
        if self.following {
            if self.position < self.duration {
                self.position = self.duration;
                self.sync_panel();
                return vec![self.frame_request()];
            }
            return Vec::new();
        }
        let mut next = self.position + elapsed.as_secs_f64() * self.speed();
        if let (true, Some(cap), Some(frame)) = (self.idle_cap_on, self.idle_cap, &self.frame) {
            let previous = frame.neighbours.previous.unwrap_or(0.0);
            if let Some(upcoming) = frame.neighbours.next
                && previous <= self.position
                && self.position < upcoming
                && upcoming - previous > cap
                && next - previous > cap
            {
                // Past the cap in a long pause: skip to the end of the pause.
                next = next.max(upcoming);
            }
        }
        if next >= self.duration {
            next = self.duration;
            if self.live {
                self.following = true;
            } else {
                self.playing = false;
            }
        }
        if next == self.position {
            return Vec::new();
        }
        self.position = next;
        self.sync_panel();
        vec![self.frame_request()]
    }

    /// Keeps the panel's selection on the command being played, unless the reviewer is
    /// moving through the list.
    fn sync_panel(&mut self) {
        if !self.panel_focused {
            let played = self
                .commands
                .partition_point(|c| c.t <= self.position + EPSILON);
            self.panel_selected = played.saturating_sub(1);
        }
    }

    pub fn panel_move(&mut self, delta: isize) {
        let last = self.commands.len().saturating_sub(1);
        self.panel_selected = self.panel_selected.saturating_add_signed(delta).min(last);
    }

    pub fn panel_seek(&mut self) -> Vec<PlayerRequest> {
        match self.commands.get(self.panel_selected) {
            Some(command) => {
                let t = command.t;
                let requests = self.seek(t);
                self.panel_selected = self
                    .commands
                    .iter()
                    .position(|c| c.t == t)
                    .unwrap_or(self.panel_selected);
                requests
            }
            None => Vec::new(),
        }
    }

    /// Sets the search query and recomputes the hits over everything known.
    pub fn set_query(&mut self, query: &str) {
        self.query = query.trim().to_string();
        self.hits.clear();
        let (commands, output) = (self.commands.clone(), self.output.clone());
        self.add_hits(&commands, &output);
    }

    fn add_hits(&mut self, commands: &[TimedText], output: &[TimedText]) {
        if self.query.is_empty() {
            return;
        }
        let needle = self.query.to_lowercase();
        let found = commands
            .iter()
            .chain(output)
            .filter(|line| line.text.to_lowercase().contains(&needle))
            .map(|line| line.t);
        self.hits.extend(found);
        self.hits.sort_by(f64::total_cmp);
        self.hits.dedup();
    }

    /// Applies index data from the worker; returns a frame request when the screen shown may
    /// have been incomplete (it was at or past the end of what was loaded).
    pub fn apply_index(&mut self, delta: crate::source::IndexDelta) -> Vec<PlayerRequest> {
        let previous_end = self.duration;
        self.add_hits(&delta.commands, &delta.output);
        self.commands.extend(delta.commands);
        self.output.extend(delta.output);
        self.marks.extend(delta.marks);
        for (second, bytes) in delta.activity {
            match self.activity.last_mut() {
                Some((s, b)) if *s == second => *b += bytes,
                _ => self.activity.push((second, bytes)),
            }
        }
        self.duration = delta.duration.max(self.duration);
        self.progress = delta.progress;
        self.damage = delta.damage;
        let was_live = self.live;
        self.live = delta.live;
        if was_live && !self.live {
            self.following = false;
        }
        self.sync_panel();
        if let Some(target) = self.pending_seek
            && (self.duration >= target || self.progress.done)
        {
            self.pending_seek = None;
            return self.seek(target);
        }
        let grew = self.duration > previous_end;
        if self.following && self.playing && grew {
            self.position = self.duration;
            return vec![self.frame_request()];
        }
        if grew && self.position >= previous_end {
            return vec![self.frame_request()];
        }
        Vec::new()
    }

    pub fn apply_frame(&mut self, frame: Frame) {
        // A segment that failed to load earlier (a passing store error) is no reason to keep
        // showing the error once frames arrive again.
        self.error = None;
        self.frame = Some(frame);
    }

    /// The export range: the marks when set (in order), else everything.
    pub fn export_range(&self) -> Option<(f64, f64)> {
        match (self.mark_in, self.mark_out) {
            (None, None) => None,
            (a, b) => {
                let from = a.unwrap_or(0.0);
                let to = b.unwrap_or(self.duration);
                Some((from.min(to), from.max(to)))
            }
        }
    }

    /// Default export file name: the recording id (or file stem) and the range.
    pub fn export_name(&self) -> String {
        let stem = self
            .info
            .as_ref()
            .and_then(|i| i.id.clone())
            .unwrap_or_else(|| {
                PathBuf::from(&self.name)
                    .file_name()
                    .map(|n| {
                        n.to_string_lossy()
                            .trim_end_matches(".zst")
                            .trim_end_matches(".cast")
                            .to_string()
                    })
                    .unwrap_or_else(|| "recording".to_string())
            });
        match self.export_range() {
            Some((from, to)) => format!("{stem}-{}-{}.cast", from as u64, to.ceil() as u64),
            None => format!("{stem}.cast"),
        }
    }
}
