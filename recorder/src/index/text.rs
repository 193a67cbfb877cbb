//! Plain text out of terminal streams, for search: the command lines a user typed, rebuilt from
//! input keystrokes, and the text lines a program printed, with escape sequences removed.
//!
//! Both are best-effort reconstructions from bytes alone. Typed lines follow a readline-like
//! editor: printable characters are inserted at the cursor, Left/Right/Home/End (arrow keys,
//! Ctrl-A/E/B/F) move it, Backspace (0x7f, 0x08) and Delete/Ctrl-D delete, Ctrl-U kills to the
//! start, Ctrl-K to the end, Ctrl-W the previous word, Ctrl-C discards the line, Up/Down (history
//! recall, whose text only the output shows) start over, other escape sequences are skipped, and
//! `\r` or `\n` submit. Tab completion and history text never appear in the input stream; the
//! output lines, which include what the shell echoed, cover those.

/// Longest typed line kept, in characters; the rest of a longer line is ignored.
pub(crate) const MAX_COMMAND_CHARS: usize = 1024;

/// Longest output line kept, in characters: long enough for log lines and SQL, short enough that
/// a program printing megabytes without a newline cannot bloat the index.
pub(crate) const MAX_OUTPUT_CHARS: usize = 240;

/// Rebuilds typed command lines from `i` event data.
#[derive(Debug, Default)]
pub(crate) struct CommandLine {
    chars: Vec<char>,
    cursor: usize,
}

impl CommandLine {
    /// Feeds one input event; calls `submit` for every non-empty line it completes.
    ///
    /// Escape sequences are parsed within one event only: a terminal sends a key's sequence in
    /// one write, so an ESC that ends an event is the Escape key itself (vim users press it
    /// alone all the time) and must not swallow the next key.
    pub(crate) fn feed(&mut self, data: &str, mut submit: impl FnMut(String)) {
        let mut chars = data.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' | '\n' => {
                    let line: String = self.chars.iter().collect();
                    self.clear();
                    let line = line.trim();
                    if !line.is_empty() {
                        submit(line.to_string());
                    }
                }
                '\u{7f}' | '\u{8}' => self.backspace(),
                '\u{3}' => self.clear(),
                '\u{15}' => {
                    self.chars.drain(..self.cursor);
                    self.cursor = 0;
                }
                '\u{b}' => self.chars.truncate(self.cursor),
                '\u{17}' => self.delete_word(),
                '\u{1}' => self.cursor = 0,
                '\u{5}' => self.cursor = self.chars.len(),
                '\u{2}' => self.cursor = self.cursor.saturating_sub(1),
                '\u{6}' => self.cursor = (self.cursor + 1).min(self.chars.len()),
                '\u{4}' => self.delete(),
                '\u{1b}' => match chars.next() {
                    Some('[') => {
                        let mut params = String::new();
                        let mut last = None;
                        for c in chars.by_ref() {
                            if ('\u{40}'..='\u{7e}').contains(&c) {
                                last = Some(c);
                                break;
                            }
                            params.push(c);
                        }
                        if let Some(last) = last {
                            self.key(last, &params);
                        }
                    }
                    Some('O') => {
                        if let Some(last) = chars.next() {
                            self.key(last, "");
                        }
                    }
                    // Alt+key or a lone ESC: nothing we can model.
                    _ => {}
                },
                c if c.is_control() => {}
                c => {
                    if self.chars.len() < MAX_COMMAND_CHARS {
                        self.chars.insert(self.cursor, c);
                        self.cursor += 1;
                    }
                }
            }
        }
    }

    /// A cursor key or editing key from a CSI (`ESC [ params last`) or SS3 (`ESC O last`).
    fn key(&mut self, last: char, params: &str) {
        match (last, params) {
            ('D', _) => self.cursor = self.cursor.saturating_sub(1),
            ('C', _) => self.cursor = (self.cursor + 1).min(self.chars.len()),
            ('H', _) | ('~', "1" | "7") => self.cursor = 0,
            ('F', _) | ('~', "4" | "8") => self.cursor = self.chars.len(),
            ('~', "3") => self.delete(),
            // History recall replaces the line with text we cannot see.
            ('A' | 'B', _) => self.clear(),
            _ => {}
        }
    }

    fn clear(&mut self) {
        self.chars.clear();
        self.cursor = 0;
    }

    fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }

    fn delete_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }
}

/// Where the escape-sequence stripper is inside a sequence; kept across events because programs
/// write sequences split over several reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    Ground,
    /// After ESC.
    Start,
    /// `ESC` + intermediate bytes (charset selection and the like), waiting for the final byte.
    Intermediate,
    /// Control sequence: parameters until a final byte.
    Csi,
    /// OSC, DCS, SOS, PM or APC: a string until BEL or ST (`ESC \`).
    String,
    /// ESC inside a string: the `\` of ST, or anything else that also ends it.
    StringEnd,
}

/// Turns `o` event data into plain text lines.
///
/// Lines end at `\n`, `\r`, vertical tab, form feed, and at cursor-positioning sequences (full-screen
/// programs draw rows by jumping around, so text from two rows must not run together); cursor-forward
/// (`CSI n C`, used by some programs instead of spaces) becomes a space, backspace removes the
/// previous character, tab is a space, every other escape sequence and control character is dropped.
/// Lines are trimmed, empty ones dropped, and cut at [`MAX_OUTPUT_CHARS`].
#[derive(Debug, Default)]
pub(crate) struct OutputText {
    line: String,
    chars: usize,
    escape: Escape,
}

impl OutputText {
    /// Feeds one output event; calls `emit` for every non-empty line it completes.
    pub(crate) fn feed(&mut self, data: &str, mut emit: impl FnMut(&str)) {
        for c in data.chars() {
            match self.escape {
                Escape::Ground => self.ground(c, &mut emit),
                Escape::Start => {
                    self.escape = match c {
                        '[' => Escape::Csi,
                        ']' | 'P' | 'X' | '^' | '_' => Escape::String,
                        '\u{20}'..='\u{2f}' => Escape::Intermediate,
                        _ => Escape::Ground,
                    }
                }
                Escape::Intermediate => {
                    if !('\u{20}'..='\u{2f}').contains(&c) {
                        self.escape = Escape::Ground;
                    }
                }
                Escape::Csi => {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        self.escape = Escape::Ground;
                        match c {
                            'H' | 'f' | 'A' | 'B' | 'E' | 'F' | 'd' => self.end_line(&mut emit),
                            'C' => self.push(' '),
                            _ => {}
                        }
                    } else if c == '\u{1b}' {
                        self.escape = Escape::Start;
                    }
                }
                Escape::String => match c {
                    '\u{7}' | '\u{9c}' => self.escape = Escape::Ground,
                    '\u{1b}' => self.escape = Escape::StringEnd,
                    _ => {}
                },
                Escape::StringEnd => {
                    self.escape = Escape::Ground;
                    if c != '\\' {
                        self.ground(c, &mut emit);
                    }
                }
            }
        }
    }

    /// Emits the line still being collected (at the end of the recording).
    pub(crate) fn flush(&mut self, mut emit: impl FnMut(&str)) {
        self.end_line(&mut emit);
    }

    fn ground(&mut self, c: char, emit: &mut impl FnMut(&str)) {
        match c {
            '\u{1b}' => self.escape = Escape::Start,
            '\u{9b}' => self.escape = Escape::Csi,
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => self.escape = Escape::String,
            '\n' | '\r' | '\u{b}' | '\u{c}' => self.end_line(emit),
            '\u{8}' => {
                if self.line.pop().is_some() {
                    self.chars -= 1;
                }
            }
            '\t' => self.push(' '),
            c if c.is_control() => {}
            c => self.push(c),
        }
    }

    fn push(&mut self, c: char) {
        if self.chars < MAX_OUTPUT_CHARS {
            self.line.push(c);
            self.chars += 1;
        }
    }

    fn end_line(&mut self, emit: &mut impl FnMut(&str)) {
        let text = self.line.trim();
        if !text.is_empty() {
            emit(text);
        }
        self.line.clear();
        self.chars = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(events: &[&str]) -> Vec<String> {
        let mut line = CommandLine::default();
        let mut out = Vec::new();
        for event in events {
            line.feed(event, |l| out.push(l));
        }
        out
    }

    fn output(events: &[&str]) -> Vec<String> {
        let mut text = OutputText::default();
        let mut out = Vec::new();
        for event in events {
            text.feed(event, |l| out.push(l.to_string()));
        }
        text.flush(|l| out.push(l.to_string()));
        out
    }

    #[test]
    fn typed_lines_follow_line_editing() {
        assert_eq!(commands(&["l", "s", " -l", "\r"]), ["ls -l"]);
        assert_eq!(
            commands(&["echo helo", "\u{1b}[D", "l", "\r"]),
            ["echo hello"]
        );
        assert_eq!(
            commands(&["DROP TABEL\u{7f}\u{7f}LE x;\r"]),
            ["DROP TABLE x;"]
        );
        assert_eq!(commands(&["rm -rf /\u{3}", "ls\r"]), ["ls"]);
        assert_eq!(commands(&["secret\u{15}whoami\n"]), ["whoami"]);
        assert_eq!(commands(&["\r", "   \r", "\r\n"]), Vec::<String>::new());
        assert_eq!(commands(&["\u{1b}[A", "\r"]), Vec::<String>::new());
        assert_eq!(commands(&["cat a b\u{17}c\r"]), ["cat a c"]);
        assert_eq!(commands(&["wrld\u{1b}OH", "hi \u{1b}[F!\r"]), ["hi wrld!"]);
        assert_eq!(commands(&["abc\u{1}\u{1b}[3~\r"]), ["bc"]);
        // A lone ESC (vim's Escape key) does not eat the next key.
        assert_eq!(commands(&["ihello", "\u{1b}", ":wq", "\r"]), ["ihello:wq"]);
        // Bracketed paste markers are skipped, the pasted text is kept.
        assert_eq!(
            commands(&["\u{1b}[200~select 1;\u{1b}[201~\r"]),
            ["select 1;"]
        );
        assert_eq!(commands(&["x".repeat(5000).as_str(), "\r"])[0].len(), 1024);
    }

    #[test]
    fn output_lines_lose_escapes_and_split_on_line_ends() {
        assert_eq!(
            output(&["\u{1b}[1;31mERROR\u{1b}[0m disk full\r\n$ "]),
            ["ERROR disk full", "$"]
        );
        // Sequences split across events, OSC titles with BEL and ST, charset selection.
        assert_eq!(
            output(&[
                "a\u{1b}[3",
                "2mb\u{1b}]0;title\u{7}c\u{1b}]2;t\u{1b}\\d\u{1b}(Be\n"
            ]),
            ["abcde"]
        );
        assert_eq!(output(&["Working...\rDone\n"]), ["Working...", "Done"]);
        assert_eq!(output(&["ab\u{8} \u{8}X\n"]), ["aX"]);
        assert_eq!(
            output(&["\u{1b}[1;1Hrow one\u{1b}[2;1Hrow\u{1b}[2Ctwo"]),
            ["row one", "row two"]
        );
        assert_eq!(output(&["\n\n  \t \n"]), Vec::<String>::new());
        assert_eq!(output(&["é€😀 ok\n"]), ["é€😀 ok"]);
        assert_eq!(
            output(&["y".repeat(1000).as_str()])[0].len(),
            MAX_OUTPUT_CHARS
        );
    }
}
