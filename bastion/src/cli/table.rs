//! Plain-text tables for the admin commands: left-aligned columns, two spaces apart. Cells
//! are text from the database (names, reasons typed by other people), so every cell has its
//! control characters escaped before it reaches a terminal.

use time::OffsetDateTime;
use time::macros::format_description;

use crate::text::escape_controls;

pub(super) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; control characters in any cell are escaped (`\x1b`), so a stored value
    /// can neither drive the terminal nor break the columns.
    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.iter().map(|cell| escape_controls(cell)).collect());
    }

    pub(super) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let width = widths.get(i).copied().unwrap_or(0);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(
                        ' ',
                        width.saturating_sub(cell.chars().count()),
                    ));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `2026-11-24 10:00:00` in UTC (the headers say so).
pub(super) fn utc(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// Keeps free text (a grant's reason) on one line, its other control characters escaped.
pub(super) fn one_line(text: &str) -> String {
    escape_controls(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_space() {
        let mut table = Table::new(&["ID", "USER", "REASON"]);
        table.row(vec!["1".into(), "alice".into(), "incident 42".into()]);
        table.row(vec!["10".into(), "bo".into(), String::new()]);
        assert_eq!(
            table.render(),
            "ID  USER   REASON\n1   alice  incident 42\n10  bo\n"
        );
    }

    #[test]
    fn cells_and_one_line_text_never_carry_controls() {
        let mut table = Table::new(&["WHO", "WHY"]);
        table.row(vec![
            "ev\x1b[2Jil".into(),
            one_line("x\x1b]0;pwned\x07\n  next\tline"),
        ]);
        let out = table.render();
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert_eq!(
            out,
            "WHO          WHY\nev\\x1b[2Jil  x\\x1b]0;pwned\\x07 next line\n"
        );
    }
}
