//! Text extracted from a recording while it loads, for the side panel and for search: typed
//! command lines rebuilt from input keystrokes, and output lines with terminal control
//! sequences removed. Used for recordings that come without a stored index (local files, live
//! sessions); stored recordings bring their own from the recording pipeline.

use super::TimedText;

/// Longest command or output line kept; longer ones are cut (search context, not evidence:
/// the recording itself stays complete).
pub const MAX_LINE_CHARS: usize = 400;

/// Output lines kept per recording; the rest of a huge recording is still playable, just not
/// searchable by output text.
pub const MAX_OUTPUT_LINES: usize = 500_000;

/// Rebuilds typed command lines from `i` events, like a line editor would see them. A line is
/// timed at the keystroke that submitted it (as the recording pipeline's index does).
///
/// Keys that recall or complete text we cannot see (arrows, Tab) are dropped, so a command made
/// of history recall shows what was typed, not what ran. Input while a full-screen program has
/// the alternate screen is not a command line and is skipped by the caller.
#[derive(Debug, Default)]
pub struct CommandLines {
    line: String,
    /// Inside an escape sequence (arrow keys and the like).
    escape: EscapeState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum EscapeState {
    #[default]
    None,
    Esc,
    Csi,
    Ss3,
}

impl CommandLines {
    /// Feeds typed keys at time `t`; completed lines are pushed to `out`.
    ///
    /// A terminal sends a key's escape sequence in one write, so an ESC ending an event is the
    /// Escape key itself and must not swallow the next key: escape state ends with the event.
    pub fn feed(&mut self, t: f64, data: &str, out: &mut Vec<TimedText>) {
        self.escape = EscapeState::None;
        for ch in data.chars() {
            match self.escape {
                EscapeState::Esc => {
                    self.escape = match ch {
                        '[' => EscapeState::Csi,
                        'O' => EscapeState::Ss3,
                        _ => EscapeState::None,
                    };
                    continue;
                }
                EscapeState::Csi => {
                    if ('\u{40}'..='\u{7e}').contains(&ch) {
                        self.escape = EscapeState::None;
                    }
                    continue;
                }
                EscapeState::Ss3 => {
                    self.escape = EscapeState::None;
                    continue;
                }
                EscapeState::None => {}
            }
            match ch {
                '\u{1b}' => self.escape = EscapeState::Esc,
                '\r' | '\n' => self.submit(t, out),
                // Backspace / DEL.
                '\u{7f}' | '\u{8}' => {
                    self.line.pop();
                }
                // Ctrl-U: kill the line.
                '\u{15}' => self.line.clear(),
                // Ctrl-W: kill the previous word.
                '\u{17}' => {
                    let trimmed = self.line.trim_end().len();
                    self.line.truncate(trimmed);
                    let cut = self.line.rfind(' ').map_or(0, |i| i + 1);
                    self.line.truncate(cut);
                }
                // Ctrl-C abandons the line.
                '\u{3}' => self.line.clear(),
                c if c.is_control() => {}
                c => {
                    if self.line.chars().count() < MAX_LINE_CHARS {
                        self.line.push(c);
                    }
                }
            }
        }
    }

    /// Forgets a half-typed line (a full-screen program took over the keyboard).
    pub fn reset(&mut self) {
        self.line.clear();
        self.escape = EscapeState::None;
    }

    fn submit(&mut self, t: f64, out: &mut Vec<TimedText>) {
        let text = self.line.trim();
        if !text.is_empty() {
            out.push(TimedText {
                t,
                text: text.to_string(),
            });
        }
        self.line.clear();
    }
}

/// Splits terminal output into plain text lines, each timed at the event that completed it (so a
/// hit lands where its text is on screen): escape sequences removed, a carriage return
/// followed by new text overwrites the line (progress bars keep their final state), cursor
/// positioning ends a line (full-screen programs paint text in pieces).
#[derive(Debug, Default)]
pub struct OutputLines {
    line: String,
    /// A `\r` was seen: the next printable character starts the line over.
    overwrite: bool,
    state: OutputState,
    kept: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum OutputState {
    #[default]
    Text,
    Esc,
    Csi,
    /// OSC/DCS/APC strings, ended by BEL or ST.
    Str,
    StrEsc,
}

impl OutputLines {
    pub fn feed(&mut self, t: f64, data: &str, out: &mut Vec<TimedText>) {
        for ch in data.chars() {
            match self.state {
                OutputState::Esc => {
                    self.state = match ch {
                        '[' => OutputState::Csi,
                        ']' | 'P' | '_' | '^' | 'X' => OutputState::Str,
                        _ => OutputState::Text,
                    };
                    continue;
                }
                OutputState::Csi => {
                    if ('\u{40}'..='\u{7e}').contains(&ch) {
                        self.state = OutputState::Text;
                        // Cursor addressing: what follows is elsewhere on the screen.
                        if matches!(ch, 'H' | 'f' | 'd' | 'G' | 'A' | 'B') {
                            self.emit(t, out);
                        }
                    }
                    continue;
                }
                OutputState::Str => {
                    match ch {
                        '\u{7}' => self.state = OutputState::Text,
                        '\u{1b}' => self.state = OutputState::StrEsc,
                        _ => {}
                    }
                    continue;
                }
                OutputState::StrEsc => {
                    self.state = if ch == '\\' {
                        OutputState::Text
                    } else {
                        OutputState::Str
                    };
                    continue;
                }
                OutputState::Text => {}
            }
            match ch {
                '\u{1b}' => self.state = OutputState::Esc,
                '\n' => {
                    self.overwrite = false;
                    self.emit(t, out);
                }
                '\r' => self.overwrite = true,
                '\t' => self.push(' '),
                c if c.is_control() => {}
                c => {
                    if self.overwrite {
                        self.overwrite = false;
                        self.line.clear();
                    }
                    self.push(c);
                }
            }
        }
    }

    fn push(&mut self, c: char) {
        if self.line.len() < MAX_LINE_CHARS * 4 {
            self.line.push(c);
        }
    }

    fn emit(&mut self, t: f64, out: &mut Vec<TimedText>) {
        let text = self.line.trim();
        if !text.is_empty() && self.kept < MAX_OUTPUT_LINES {
            out.push(TimedText {
                t,
                text: text.chars().take(MAX_LINE_CHARS).collect(),
            });
            self.kept += 1;
        }
        self.line.clear();
    }

    /// Emits the unfinished last line (end of the recording, at `t`).
    pub fn flush(&mut self, t: f64, out: &mut Vec<TimedText>) {
        self.emit(t, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(keys: &[(f64, &str)]) -> Vec<(f64, String)> {
        let mut lines = CommandLines::default();
        let mut out = Vec::new();
        for (t, data) in keys {
            lines.feed(*t, data, &mut out);
        }
        out.into_iter().map(|l| (l.t, l.text)).collect()
    }

    #[test]
    fn typed_lines_are_rebuilt_with_editing_keys() {
        let got = commands(&[
            (1.0, "l"),
            (1.1, "s -la"),
            (1.2, "\r"),
            (2.0, "rm -rf /tmpx\u{7f}"),
            (2.5, "\r"),
            (3.0, "oops\u{3}"),
            (4.0, "cat \u{1b}[A\u{1b}OAfile\u{17}notes\r"),
            (5.0, "\u{15}   \r"),
        ]);
        assert_eq!(
            got,
            vec![
                (1.2, "ls -la".to_string()),
                (2.5, "rm -rf /tmp".to_string()),
                (4.0, "cat notes".to_string()),
            ]
        );
    }

    #[test]
    fn output_lines_lose_escapes_and_keep_progress_final_state() {
        let mut lines = OutputLines::default();
        let mut out = Vec::new();
        lines.feed(
            0.5,
            "\u{1b}[1;31mred\u{1b}[0m text\r\n\u{1b}]0;title\u{7}10%\r50%\r100%\r\n",
            &mut out,
        );
        lines.feed(0.7, "\u{1b}[2;1Hscreen\u{1b}[3;1Hpaint", &mut out);
        lines.flush(0.9, &mut out);
        let text: Vec<&str> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text, vec!["red text", "100%", "screen", "paint"]);
        assert_eq!(out[0].t, 0.5);
        assert_eq!(out[2].t, 0.7);
        assert_eq!(out[3].t, 0.9);
    }
}
