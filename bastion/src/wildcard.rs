//! Whole-string wildcard patterns, as admins write them for commands and target names: `*`
//! matches any run of characters (spaces and `/` included), `?` exactly one; nothing else is
//! special.
//!
//! Our own matcher: the `glob` and `globset` crates match paths (their `*` stops at `/`, and
//! they know `[...]` classes and `**`), which is not what these patterns mean.
//!
//! The rules for command patterns live here too, because both the configuration (a policy's
//! `commands`) and the access layer (a grant's `--command`) apply them, and the configuration
//! comes before the access layer in the import order.

/// What the shell on the target would read as more than one command, a substitution or a
/// redirection. `$(` and `${` are checked as pairs: a lone `$` (`$HOME`) expands a variable but
/// cannot run anything.
pub const METACHARACTERS: [&str; 11] = [";", "&", "|", "`", "$(", "${", "<", ">", "\n", "\r", "\0"];

/// The most command patterns one grant (or policy) may carry.
pub const MAX_COMMAND_PATTERNS: usize = 64;
/// The longest command pattern, in characters.
pub const MAX_COMMAND_PATTERN_CHARS: usize = 256;

/// Whole-string wildcard match. On a mismatch it resumes after the last `*`, letting that star
/// swallow one more character: no recursion, at most `pattern × text` steps.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((star_pi, star_ti)) => {
                    pi = star_pi + 1;
                    ti = star_ti + 1;
                    star = Some((star_pi, star_ti + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_and_question_mark() {
        assert!(matches("*", ""));
        assert!(matches("db-*", "db-1"));
        assert!(matches("db-?", "db-1"));
        assert!(!matches("db-?", "db-10"));
        assert!(!matches("db-*", "web-1"));
        assert!(matches("a*b*c", "a-b-b-c"));
        assert!(!matches("a*b*c", "a-b-b-"));
    }
}
