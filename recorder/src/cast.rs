//! The asciicast v2 text format as bastion writes and reads it.
//!
//! Writing is split into small pieces (`push_*`) so the recording task can build one event line in a
//! reused buffer without allocating per event or per byte. Reading (`parse_cast`) is tolerant: a
//! corrupt event line is reported and skipped so the rest of a damaged recording stays viewable.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The asciicast version written in every header (`"version": 2`).
pub const ASCIICAST_VERSION: u8 = 2;

/// Version of bastion's own additions (the `"bastion"` header object and the storage layout).
/// Bump it when their meaning changes; readers refuse nothing but can branch on it.
/// 2: every segment object ends with a trailer frame (hash chain and signature).
pub const BASTION_FORMAT: u32 = 2;

/// The first line of an asciicast v2 recording.
///
/// Unknown keys written by other tools are ignored when reading, so foreign recordings parse too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u8,
    pub width: u32,
    pub height: u32,
    /// Unix seconds of the recording start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Captured environment; asciinema writes `null` for unset variables, hence the `Option` values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// bastion's session metadata; absent in recordings made by other tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bastion: Option<BastionHeader>,
}

/// bastion's extra header keys, nested under `"bastion"` so they never clash with asciinema's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BastionHeader {
    pub format: u32,
    pub session_id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant_id: Option<i64>,
    pub command: Option<String>,
}

/// What an event line records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `"o"`: bytes the target sent to the terminal (or a command's stdout and stderr).
    Output,
    /// `"i"`: bytes the user typed (or sent to a command's stdin).
    Input,
    /// `"r"`: terminal resize, data `"COLSxROWS"`.
    Resize,
    /// `"m"`: a marker (warnings, the end reason).
    Marker,
    /// Any other code, kept so newer or foreign recordings still parse.
    Other(String),
}

impl EventKind {
    pub fn code(&self) -> &str {
        match self {
            EventKind::Output => "o",
            EventKind::Input => "i",
            EventKind::Resize => "r",
            EventKind::Marker => "m",
            EventKind::Other(code) => code,
        }
    }

    fn from_code(code: String) -> EventKind {
        match code.as_str() {
            "o" => EventKind::Output,
            "i" => EventKind::Input,
            "r" => EventKind::Resize,
            "m" => EventKind::Marker,
            _ => EventKind::Other(code),
        }
    }
}

/// One event line: `[time, code, data]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the recording start.
    pub time: f64,
    pub kind: EventKind,
    pub data: String,
}

/// A line of a recording that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("asciicast line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// A parsed recording: every readable event, plus one error per unreadable line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCast {
    pub header: Header,
    pub events: Vec<Event>,
    pub errors: Vec<ParseError>,
}

/// Parses asciicast v2 bytes.
///
/// Only a missing or unreadable header is fatal (there is nothing to show without the terminal
/// size); a corrupt event line lands in `errors` and parsing continues with the next line.
pub fn parse_cast(bytes: &[u8]) -> Result<ParsedCast, ParseError> {
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
    let Some((header_line, header_bytes)) = lines.next() else {
        return Err(ParseError {
            line: 1,
            message: "missing header".to_string(),
        });
    };
    let header: Header = serde_json::from_slice(header_bytes).map_err(|e| ParseError {
        line: header_line,
        message: format!("invalid header: {e}"),
    })?;
    if header.version != ASCIICAST_VERSION {
        return Err(ParseError {
            line: header_line,
            message: format!("unsupported asciicast version {}", header.version),
        });
    }
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (line, text) in lines {
        match serde_json::from_slice::<(f64, String, String)>(text) {
            Ok((time, code, data)) => events.push(Event {
                time,
                kind: EventKind::from_code(code),
                data,
            }),
            Err(e) => errors.push(ParseError {
                line,
                message: format!("invalid event: {e}"),
            }),
        }
    }
    Ok(ParsedCast {
        header,
        events,
        errors,
    })
}

/// Appends the header line (JSON object plus newline).
pub(crate) fn push_header(out: &mut Vec<u8>, header: &Header) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, header)?;
    out.push(b'\n');
    Ok(())
}

/// Appends `[SECS.MICROS, "CODE", "` — the start of an event line up to its data.
///
/// Times are written with exactly six decimals from the integer duration, like asciinema does,
/// so they are exact and byte-stable (golden tests) rather than subject to float formatting.
pub(crate) fn push_event_start(out: &mut Vec<u8>, time: Duration, code: &str) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "[{}.{:06}, \"{}\", \"",
        time.as_secs(),
        time.subsec_micros(),
        code
    );
}

/// Closes an event line started by [`push_event_start`].
pub(crate) fn push_event_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"]\n");
}

/// JSON escape class per byte: 0 = copy as is, `u` = `\u00XX`, anything else = `\` + that byte.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// True if any of the 8 bytes needs escaping (`< 0x20`, `"` or `\\`): the classic SWAR
/// "has byte less than n" / "has zero byte" tests, exact for the any-byte question.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * b'"' as u64);
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * b'\\' as u64);
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS != 0
}

/// Appends `s` JSON-escaped (without quotes), copying unescaped runs in one go.
///
/// Terminal output is mostly printable, so runs are long: 8 bytes at a time are checked with
/// one word test, and only words that need escaping are walked byte by byte. Non-ASCII
/// characters are kept as UTF-8, as asciinema itself writes them.
pub(crate) fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (words, _) = bytes[i..].as_chunks::<8>();
        let clean = words
            .iter()
            .take_while(|w| !word_needs_escape(u64::from_le_bytes(**w)))
            .count();
        i += clean * 8;
        let stop = (i + 8).min(bytes.len());
        while i < stop {
            let b = bytes[i];
            let class = ESCAPE[b as usize];
            if class != 0 {
                out.extend_from_slice(&bytes[run_start..i]);
                if class == b'u' {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                } else {
                    out.push(b'\\');
                    out.push(class);
                }
                run_start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Appends a complete event line whose data is already a string.
pub(crate) fn push_event(out: &mut Vec<u8>, time: Duration, code: &str, data: &str) {
    push_event_start(out, time, code);
    push_escaped(out, data);
    push_event_end(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_serde_json_for_every_ascii_byte_and_unicode() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{2028}");
        let mut ours = b"\"".to_vec();
        push_escaped(&mut ours, &all);
        ours.push(b'"');
        let reference = serde_json::to_vec(&all).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(reference).unwrap()
        );
    }

    #[test]
    fn escaping_matches_serde_json_at_every_alignment() {
        for special in ["\"", "\\", "\n", "\u{1b}", "\u{0}", "\u{1f}", "é", "\u{7f}"] {
            for before in 0..20 {
                for after in [0, 3, 9, 17] {
                    let s = format!("{}{special}{}", "a".repeat(before), "~".repeat(after));
                    let mut ours = b"\"".to_vec();
                    push_escaped(&mut ours, &s);
                    ours.push(b'"');
                    assert_eq!(ours, serde_json::to_vec(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn event_line_round_trips_through_parser() {
        let mut cast = Vec::new();
        let header = Header {
            version: 2,
            width: 80,
            height: 24,
            timestamp: None,
            env: None,
            title: None,
            bastion: None,
        };
        push_header(&mut cast, &header).unwrap();
        push_event(
            &mut cast,
            Duration::from_micros(1_500_001),
            "o",
            "a\"b\\c\x1b[0m\r\n",
        );
        let parsed = parse_cast(&cast).unwrap();
        assert_eq!(parsed.header, header);
        assert!(parsed.errors.is_empty());
        assert_eq!(
            parsed.events,
            vec![Event {
                time: 1.500001,
                kind: EventKind::Output,
                data: "a\"b\\c\x1b[0m\r\n".to_string()
            }]
        );
    }

    #[test]
    fn corrupt_lines_are_reported_and_skipped() {
        let cast = b"{\"version\":2,\"width\":80,\"height\":24}\n[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b\n\xff\xfe\n[0.3, \"x\", \"0\"]\n";
        let parsed = parse_cast(cast).unwrap();
        assert_eq!(parsed.events.len(), 2);
        assert_eq!(parsed.events[1].kind, EventKind::Other("x".to_string()));
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn header_without_timestamp_parses_and_bad_header_is_fatal() {
        assert!(parse_cast(b"{\"version\":2,\"width\":1,\"height\":1}\n").is_ok());
        let err = parse_cast(b"{\"version\":1}\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(parse_cast(b"").is_err());
    }
}
