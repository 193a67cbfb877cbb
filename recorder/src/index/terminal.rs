//! The terminal emulator behind replay and keyframes: an `avt` terminal sized from the header or a
//! keyframe, fed with `o` events and resized by `r` events.
//!
//! Sizes come from recorded data, so they are clamped: a hostile `r` event such as
//! `"100000x100000"` must not make the reader allocate ten billion cells.

use avt::Terminal;

use crate::cast::{Event, EventKind};

/// Widest terminal replayed; wider sizes are clamped (real terminals stay well below).
pub const MAX_COLS: usize = 1000;
/// Tallest terminal replayed; taller sizes are clamped.
pub const MAX_ROWS: usize = 500;

/// A blank terminal of `cols` x `rows`, clamped to 1..=[`MAX_COLS`] and 1..=[`MAX_ROWS`].
pub(crate) fn blank(cols: usize, rows: usize) -> Terminal {
    let (cols, rows) = clamp(cols, rows);
    // avt only rejects a zero dimension, which clamping rules out.
    Terminal::new(cols, rows).expect("terminal size clamped to at least 1x1")
}

fn clamp(cols: usize, rows: usize) -> (usize, usize) {
    (cols.clamp(1, MAX_COLS), rows.clamp(1, MAX_ROWS))
}

/// A terminal restored from a keyframe: its size, then its `dump()` fed back in.
pub(crate) fn restore(cols: u16, rows: u16, dump: &str) -> Terminal {
    let mut terminal = blank(cols.into(), rows.into());
    terminal.feed(dump);
    terminal
}

/// Parses resize data `"COLSxROWS"`.
pub(crate) fn parse_size(data: &str) -> Option<(usize, usize)> {
    let (cols, rows) = data.trim().split_once('x')?;
    Some((cols.parse().ok()?, rows.parse().ok()?))
}

/// Applies one event: output is fed, a resize resizes, input and markers change nothing.
/// Returns whether the screen may have changed.
pub(crate) fn apply(terminal: &mut Terminal, event: &Event) -> bool {
    match event.kind {
        EventKind::Output => {
            terminal.feed(event.data.as_str());
            true
        }
        EventKind::Resize => match parse_size(&event.data) {
            Some((cols, rows)) => {
                let (cols, rows) = clamp(cols, rows);
                terminal.resize(cols, rows);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The terminal's size as stored in the index.
pub(crate) fn size_u16(terminal: &Terminal) -> (u16, u16) {
    let (cols, rows) = terminal.size();
    (
        u16::try_from(cols).unwrap_or(u16::MAX),
        u16::try_from(rows).unwrap_or(u16::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, data: &str) -> Event {
        Event {
            time: 0.0,
            kind,
            data: data.to_string(),
        }
    }

    #[test]
    fn resizes_are_parsed_and_clamped() {
        assert_eq!(parse_size("120x40"), Some((120, 40)));
        assert_eq!(parse_size("120"), None);
        assert_eq!(parse_size("ax3"), None);
        let mut terminal = blank(0, 0);
        assert_eq!(terminal.size(), (1, 1));
        assert!(apply(
            &mut terminal,
            &event(EventKind::Resize, "100000x100000")
        ));
        assert_eq!(terminal.size(), (MAX_COLS, MAX_ROWS));
        assert!(!apply(&mut terminal, &event(EventKind::Resize, "junk")));
        assert!(!apply(&mut terminal, &event(EventKind::Input, "ls\r")));
    }

    #[test]
    fn restored_keyframe_continues_like_the_original() {
        let mut original = blank(20, 4);
        // Stop in the middle of an escape sequence: the dump carries the parser state.
        original.feed("one\r\n\u{1b}[31mred\u{1b}[");
        let (cols, rows) = size_u16(&original);
        let mut restored = restore(cols, rows, &original.dump());
        for terminal in [&mut original, &mut restored] {
            terminal.feed("1mbold\u{1b}[0m\r\nthree");
        }
        assert_eq!(original.screen().text(), restored.screen().text());
        assert_eq!(original.cursor(), restored.cursor());
        let cells = |t: &Terminal| -> Vec<avt::Cell> {
            t.screen()
                .visible_lines()
                .flat_map(|l| l.cells().to_vec())
                .collect()
        };
        assert_eq!(cells(&original), cells(&restored));
    }
}
