//! A recording held in memory (see `timeline.rs`), with terminal keyframes every few hundred KiB
//! of output so any point replays quickly. The timeline is filled progressively by a
//! [`CastLoader`] (from a file, store segments or a live session) while the player already
//! reads it: the UI shows the first frame as soon as the first lines are in.

use std::sync::{Arc, RwLock};

use recorder::{Event, EventKind, Header};

use super::text::{CommandLines, OutputLines};
use super::timeline::{KEYFRAME_BYTES, Keyframe, Timeline, read, write};
use super::{
    IndexDelta, Mark, MarkKind, Neighbours, Progress, RecordingInfo, RecordingSource, SourceError,
    SourceFuture, new_terminal, parse_size,
};

/// Cursors into the timeline: what was already handed out as index deltas.
#[derive(Debug, Default)]
struct Sent {
    commands: usize,
    output: usize,
    marks: usize,
    activity: usize,
    activity_bytes: u64,
    duration: f64,
    progress: Progress,
    damage: Option<String>,
    live: bool,
    first: bool,
}

/// A recording played from memory; see the module doc.
pub struct CastSource {
    timeline: Arc<RwLock<Timeline>>,
    info: RecordingInfo,
    sent: Sent,
}

/// What the header tells about the session.
pub fn info_from_header(header: &Header, origin: &str) -> RecordingInfo {
    let bastion = header.bastion.as_ref();
    RecordingInfo {
        id: bastion.map(|b| b.session_id.clone()),
        user: bastion.map(|b| b.user.clone()),
        target: bastion.map(|b| b.target.clone()),
        login: bastion.map(|b| b.login.clone()),
        title: header.title.clone(),
        width: header.width.min(u16::MAX as u32) as u16,
        height: header.height.min(u16::MAX as u32) as u16,
        started_at: header
            .timestamp
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()),
        live: false,
        origin: origin.to_string(),
    }
}

impl CastSource {
    /// A source and the loader that fills it.
    pub fn new(header: Header, origin: &str) -> (CastSource, CastLoader) {
        let info = info_from_header(&header, origin);
        let loader = CastLoader::new(header.clone());
        let source = CastSource {
            timeline: loader.timeline.clone(),
            info,
            sent: Sent {
                first: true,
                ..Sent::default()
            },
        };
        (source, loader)
    }

    /// Loads complete asciicast bytes synchronously (tests, small files).
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<CastSource, SourceError> {
        let (header, rest) = split_header(bytes, origin)?;
        let (source, mut loader) = CastSource::new(header, origin);
        loader.push_bytes(rest);
        loader.finish(None);
        Ok(source)
    }

    /// Marks the source as a recording that is still being written.
    pub fn set_live(&mut self, live: bool) {
        self.info.live = live;
        write(&self.timeline).live = live;
    }
}

/// Splits asciicast bytes into the parsed header and the event lines after it.
pub fn split_header<'a>(bytes: &'a [u8], origin: &str) -> Result<(Header, &'a [u8]), SourceError> {
    let header_error = |reason: String| SourceError::Header {
        what: origin.to_string(),
        reason,
    };
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let header: Header = serde_json::from_slice(&bytes[..end])
        .map_err(|e| header_error(format!("invalid header line: {e}")))?;
    if header.version != recorder::ASCIICAST_VERSION {
        return Err(header_error(format!(
            "unsupported asciicast version {}",
            header.version
        )));
    }
    let rest = bytes.get(end + 1..).unwrap_or_default();
    Ok((header, rest))
}

impl RecordingSource for CastSource {
    fn info(&self) -> RecordingInfo {
        let mut info = self.info.clone();
        info.live = read(&self.timeline).live;
        info
    }

    fn poll_index(&mut self) -> Option<IndexDelta> {
        let timeline = read(&self.timeline);
        let sent = &mut self.sent;
        let mut delta = IndexDelta {
            duration: timeline.duration(),
            commands: timeline.commands[sent.commands..].to_vec(),
            output: timeline.output[sent.output..].to_vec(),
            marks: timeline.marks[sent.marks..].to_vec(),
            activity: Vec::new(),
            progress: timeline.progress.clone(),
            damage: timeline.damage.clone(),
            live: timeline.live,
        };
        for (i, &(second, bytes)) in timeline.activity.iter().enumerate().skip(sent.activity) {
            let already = if i == sent.activity {
                sent.activity_bytes
            } else {
                0
            };
            if bytes > already {
                delta.activity.push((second, bytes - already));
            }
        }
        sent.commands = timeline.commands.len();
        sent.output = timeline.output.len();
        sent.marks = timeline.marks.len();
        if let Some(&(_, bytes)) = timeline.activity.last() {
            sent.activity = timeline.activity.len() - 1;
            sent.activity_bytes = bytes;
        }
        let changed = sent.first
            || !delta.is_empty()
            || delta.duration != sent.duration
            || delta.progress != sent.progress
            || delta.damage != sent.damage
            || delta.live != sent.live;
        sent.first = false;
        sent.duration = delta.duration;
        sent.progress = delta.progress.clone();
        sent.damage = delta.damage.clone();
        sent.live = delta.live;
        changed.then_some(delta)
    }

    fn duration(&self) -> f64 {
        read(&self.timeline).duration()
    }

    fn screen_at(&mut self, t: f64) -> SourceFuture<'_, avt::Terminal> {
        let timeline = self.timeline.clone();
        Box::pin(async move {
            let timeline = read(&timeline);
            timeline.replay(timeline.count_upto(t))
        })
    }

    fn events_between(&mut self, from: f64, to: f64) -> SourceFuture<'_, Vec<Event>> {
        let timeline = self.timeline.clone();
        Box::pin(async move {
            let timeline = read(&timeline);
            let start = timeline.count_upto(from);
            let end = timeline.count_upto(to).max(start);
            Ok((start..end).map(|i| timeline.event(i)).collect())
        })
    }

    fn neighbours(&mut self, t: f64) -> SourceFuture<'_, Neighbours> {
        let timeline = self.timeline.clone();
        Box::pin(async move {
            let timeline = read(&timeline);
            let count = timeline.count_upto(t);
            Ok(Neighbours {
                previous: count.checked_sub(1).map(|i| timeline.events[i].time),
                next: timeline.events.get(count).map(|e| e.time),
            })
        })
    }

    fn header(&self) -> Header {
        read(&self.timeline).header.clone()
    }
}

/// Fills a [`CastSource`]'s timeline: parses event lines, builds keyframes and the text index.
pub struct CastLoader {
    timeline: Arc<RwLock<Timeline>>,
    /// The terminal as of the last event loaded, for keyframes and to know whether a
    /// full-screen program (alternate screen) has the keyboard.
    term: Option<avt::Terminal>,
    since_keyframe: usize,
    commands: CommandLines,
    output: OutputLines,
    /// An event line not yet complete (bytes arrive in arbitrary pieces).
    partial: Vec<u8>,
    /// Lines seen, for error messages (the header is line 1).
    line: usize,
    last_time: f64,
    corrupt: usize,
    first_corrupt: Option<(usize, f64)>,
}

/// Event lines parsed per lock acquisition.
const BATCH: usize = 256;

#[derive(serde::Deserialize)]
struct EventLine<'a>(f64, &'a str, #[serde(borrow)] std::borrow::Cow<'a, str>);

impl CastLoader {
    fn new(header: Header) -> CastLoader {
        let term = new_terminal(header.width as usize, header.height as usize).ok();
        CastLoader {
            timeline: Arc::new(RwLock::new(Timeline::new(header))),
            term,
            since_keyframe: 0,
            commands: CommandLines::default(),
            output: OutputLines::default(),
            partial: Vec::new(),
            line: 1,
            last_time: 0.0,
            corrupt: 0,
            first_corrupt: None,
        }
    }

    /// Appends raw asciicast bytes (event lines, any split).
    pub fn push_bytes(&mut self, mut bytes: &[u8]) {
        if !self.partial.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&bytes[..end]);
                    self.push_lines(&line);
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.partial.extend_from_slice(bytes);
                    return;
                }
            }
        }
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.push_lines(&bytes[..complete]);
        self.partial.extend_from_slice(&bytes[complete..]);
    }

    /// Complete lines, parsed in batches with one write lock each.
    fn push_lines(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let mut lines = bytes.split(|&b| b == b'\n').peekable();
        let shared = self.timeline.clone();
        while lines.peek().is_some() {
            let mut timeline = write(&shared);
            for line in lines.by_ref().take(BATCH) {
                self.push_line(&mut timeline, line);
            }
        }
    }

    fn push_line(&mut self, timeline: &mut Timeline, line: &[u8]) {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<EventLine<'_>>(line) {
            Ok(EventLine(time, code, data)) => {
                let code = match code {
                    "o" => b'o',
                    "i" => b'i',
                    "r" => b'r',
                    "m" => b'm',
                    _ => 0,
                };
                self.push_parsed(timeline, time, code, &data);
            }
            Err(_) => {
                self.corrupt += 1;
                if self.first_corrupt.is_none() {
                    self.first_corrupt = Some((self.line, self.last_time));
                }
            }
        }
    }

    /// Appends an event given as values (live follow, store readers).
    pub fn push_event(&mut self, event: &Event) {
        let code = match event.kind {
            EventKind::Output => b'o',
            EventKind::Input => b'i',
            EventKind::Resize => b'r',
            EventKind::Marker => b'm',
            EventKind::Other(_) => 0,
        };
        let timeline = self.timeline.clone();
        let mut timeline = write(&timeline);
        self.push_parsed(&mut timeline, event.time, code, &event.data);
    }

    fn push_parsed(&mut self, timeline: &mut Timeline, time: f64, code: u8, data: &str) {
        // Times must never decrease for seeking by binary search; foreign files may disagree.
        let time = if time.is_finite() {
            time.max(self.last_time)
        } else {
            self.last_time
        };
        self.last_time = time;
        if self.since_keyframe >= KEYFRAME_BYTES
            && let Some(term) = &self.term
        {
            let (cols, rows) = term.size();
            timeline.keyframes.push(Keyframe {
                events: timeline.events.len(),
                cols,
                rows,
                dump: term.dump(),
            });
            self.since_keyframe = 0;
        }
        let alternate = self
            .term
            .as_ref()
            .is_some_and(|t| t.active_screen_kind() == avt::ScreenKind::Alternate);
        match code {
            b'o' => {
                if let Some(term) = &mut self.term {
                    term.feed(data);
                }
                self.since_keyframe += data.len();
                self.output.feed(time, data, &mut timeline.output);
                let second = time as u64;
                match timeline.activity.last_mut() {
                    Some((s, bytes)) if *s == second => *bytes += data.len() as u64,
                    _ => timeline.activity.push((second, data.len() as u64)),
                }
            }
            b'i' => {
                if alternate {
                    self.commands.reset();
                } else {
                    self.commands.feed(time, data, &mut timeline.commands);
                }
            }
            b'r' => {
                if let (Some(term), Some((cols, rows))) = (&mut self.term, parse_size(data)) {
                    term.resize(cols, rows);
                }
                timeline.marks.push(Mark {
                    t: time,
                    kind: MarkKind::Resize,
                    label: format!("resize {data}"),
                });
            }
            b'm' => timeline.marks.push(Mark {
                t: time,
                kind: MarkKind::Marker,
                label: data.to_string(),
            }),
            _ => {}
        }
        timeline.push(time, code, data);
    }

    /// Reports loading progress.
    pub fn progress(&self, fraction: f64, detail: String) {
        write(&self.timeline).progress = Progress {
            fraction: fraction.clamp(0.0, 1.0),
            done: false,
            detail,
        };
    }

    /// Marks the recording as live (still growing) or not.
    pub fn set_live(&self, live: bool) {
        write(&self.timeline).live = live;
    }

    /// Everything present is loaded. `damage` says where and why a broken recording stops;
    /// a cut-off last line and corrupt lines are added to it.
    pub fn finish(&mut self, damage: Option<String>) {
        let mut notes: Vec<String> = damage.into_iter().collect();
        let partial = std::mem::take(&mut self.partial);
        if !partial.iter().all(u8::is_ascii_whitespace) {
            let timeline = self.timeline.clone();
            let mut timeline = write(&timeline);
            let before = self.corrupt;
            self.push_line(&mut timeline, &partial);
            if self.corrupt > before {
                // The last line did not parse: the recording was cut mid-line.
                self.corrupt -= 1;
                if self
                    .first_corrupt
                    .is_some_and(|(line, _)| line == self.line)
                {
                    self.first_corrupt = None;
                }
                notes.push(format!(
                    "recording stops at {}: its last line is cut off",
                    crate::units::offset(self.last_time)
                ));
            }
        }
        if let Some((line, t)) = self.first_corrupt {
            notes.push(format!(
                "{} corrupt line(s) skipped, the first at line {line} (after {})",
                self.corrupt,
                crate::units::offset(t)
            ));
        }
        let mut timeline = write(&self.timeline);
        self.output.flush(self.last_time, &mut timeline.output);
        if !notes.is_empty() {
            timeline.damage = Some(notes.join("; "));
        }
        timeline.progress = Progress {
            fraction: 1.0,
            done: true,
            detail: String::new(),
        };
    }

    /// Everything stored so far is loaded, but the recording may still grow (live).
    pub fn caught_up(&self) {
        write(&self.timeline).progress = Progress {
            fraction: 1.0,
            done: true,
            detail: String::new(),
        };
    }

    /// The source was dropped (the player closed): loading can stop.
    pub fn abandoned(&self) -> bool {
        Arc::strong_count(&self.timeline) == 1
    }

    /// Time of the last event loaded.
    pub fn last_time(&self) -> f64 {
        self.last_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TimedText;

    const CAST: &str = concat!(
        r#"{"version":2,"width":20,"height":3,"timestamp":1714564984,"bastion":{"format":1,"session_id":"s1","user":"alice","target":"db-1","login":"app","grant_id":1,"command":null}}"#,
        "\n",
        r#"[0.5, "o", "$ "]"#,
        "\n",
        r#"[1.0, "i", "ls\r"]"#,
        "\n",
        r#"[1.1, "o", "ls\r\nfile\r\n$ "]"#,
        "\n",
        r#"[2.0, "r", "10x2"]"#,
        "\n",
        r#"[3.0, "m", "grant expires in 1 minute"]"#,
        "\n",
    );

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn screens_events_and_index_come_from_the_loaded_timeline() {
        let mut source = CastSource::from_bytes(CAST.as_bytes(), "test.cast").unwrap();
        let info = source.info();
        assert_eq!(info.user.as_deref(), Some("alice"));
        assert_eq!((info.width, info.height), (20, 3));

        let screen = block(source.screen_at(1.5)).unwrap();
        assert_eq!(screen.screen().line(1).unwrap().text().trim_end(), "file");
        let screen = block(source.screen_at(2.5)).unwrap();
        assert_eq!(screen.size(), (10, 2));
        let events = block(source.events_between(0.5, 2.0)).unwrap();
        assert_eq!(
            events.iter().map(|e| e.time).collect::<Vec<_>>(),
            vec![1.0, 1.1, 2.0]
        );
        let n = block(source.neighbours(1.05)).unwrap();
        assert_eq!((n.previous, n.next), (Some(1.0), Some(1.1)));

        let delta = source.poll_index().unwrap();
        assert_eq!(delta.duration, 3.0);
        assert_eq!(
            delta.commands,
            vec![TimedText {
                t: 1.0,
                text: "ls".into()
            }]
        );
        assert_eq!(delta.marks.len(), 2);
        assert!(delta.progress.done);
        assert_eq!(delta.damage, None);
        assert_eq!(source.poll_index(), None);
    }

    #[test]
    fn keyframes_give_the_same_screen_as_a_full_replay() {
        let mut cast = String::from(r#"{"version":2,"width":40,"height":5}"#);
        cast.push('\n');
        let mut reference = avt::Terminal::new(40, 5).unwrap();
        for i in 0..4000 {
            let data = format!("\x1b[3{}mline {i} {}\x1b[0m\r\n", i % 8, "x".repeat(i % 97));
            reference.feed(data.as_str());
            cast.push_str(&serde_json::to_string(&(i as f64 * 0.01, "o", &data)).unwrap());
            cast.push('\n');
        }
        let mut source = CastSource::from_bytes(cast.as_bytes(), "big").unwrap();
        assert!(read(&source.timeline).keyframes.len() > 1);
        let replayed = block(source.screen_at(1000.0)).unwrap();
        assert_eq!(replayed.dump(), reference.dump());
    }

    #[test]
    fn loading_in_pieces_equals_loading_at_once_and_damage_is_reported() {
        let broken =
            format!("{CAST}[3.5, \"o\", \"oops\n[4.0, \"o\", \"tail\"]\n[5.0, \"o\", \"cut");
        let (header, rest) = split_header(broken.as_bytes(), "x").unwrap();
        let (mut source, mut loader) = CastSource::new(header, "x");
        for piece in rest.chunks(7) {
            loader.push_bytes(piece);
        }
        loader.finish(None);
        let delta = source.poll_index().unwrap();
        assert_eq!(delta.duration, 4.0);
        let damage = delta.damage.unwrap();
        assert!(damage.contains("last line is cut off"), "{damage}");
        assert!(
            damage.contains("1 corrupt line(s) skipped, the first at line 7"),
            "{damage}"
        );
    }
}
