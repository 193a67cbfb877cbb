//! Text that came from outside (a client, the database, a config file) on its way to a
//! terminal or a log line: control characters escaped, length capped.
//!
//! A terminal obeys escape sequences wherever they come from, so a reason, a user name or an
//! approver typed by somebody else must never reach one raw. Everything the bastion prints to
//! a person goes through [`escape_controls`]; everything a network peer chose that goes into
//! the audit log or a log line goes through [`capped`].

use std::fmt::Write;

use sha2::{Digest, Sha256};

/// The longest client-chosen string kept whole in audit and log lines; longer ones are cut
/// and carry a hash of the full value, so two different long names still tell apart.
pub const MAX_CLIENT_TEXT: usize = 128;

/// `text` with every control character (C0, DEL, C1) replaced by a visible escape (`\x1b`,
/// `\n`, `\u{9b}`); everything else, including non-ASCII letters, unchanged.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A client-chosen string as it may appear in an audit or log line: controls escaped, at most
/// [`MAX_CLIENT_TEXT`] characters, and when cut, the length and a SHA-256 prefix of the whole.
pub fn capped(text: &str) -> String {
    let escaped = escape_controls(text);
    if escaped.chars().count() <= MAX_CLIENT_TEXT {
        return escaped;
    }
    let head: String = escaped.chars().take(MAX_CLIENT_TEXT).collect();
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "{head}...[{} bytes, sha256:{}]",
        text.len(),
        hex_prefix(&digest, 16)
    )
}

fn hex_prefix(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    for b in bytes {
        if out.len() >= chars {
            break;
        }
        let _ = write!(out, "{b:02x}");
    }
    out.truncate(chars);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_control_and_keeps_letters() {
        assert_eq!(escape_controls("plain ünïcode"), "plain ünïcode");
        assert_eq!(
            escape_controls("a\x1b[31mred\x07\n\u{9b}2J\x7f"),
            "a\\x1b[31mred\\x07\\n\\u{9b}2J\\x7f"
        );
    }

    #[test]
    fn caps_long_text_with_a_hash_of_the_whole() {
        let short = "alice";
        assert_eq!(capped(short), "alice");
        let long = "x".repeat(30_000);
        let cut = capped(&long);
        assert!(cut.len() < 200, "{cut}");
        assert!(cut.starts_with(&"x".repeat(MAX_CLIENT_TEXT)));
        assert!(cut.contains("[30000 bytes, sha256:"));
        let other = format!("{}y", "x".repeat(29_999));
        assert_ne!(
            capped(&other),
            cut,
            "different values keep different hashes"
        );
    }
}
