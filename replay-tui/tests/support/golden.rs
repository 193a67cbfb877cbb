//! Golden screens: a drawn buffer as text (the characters, then every styled run) compared with
//! `tests/golden/NAME.txt`. `UPDATE_GOLDEN=1 cargo test` rewrites the files; review the diff.

use std::fmt::Write as _;
use std::path::PathBuf;

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

/// The characters row by row (trailing blanks trimmed), then one line per run of cells with
/// the same non-default style: `y=ROW x=FROM..TO fg=.. bg=.. +MODIFIERS`.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("--- styles\n");
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let style = describe(buf, x, y);
            let start = x;
            while x < area.right() && describe(buf, x, y) == style {
                x += 1;
            }
            if !style.is_empty() {
                let _ = writeln!(out, "y={y} x={start}..{x} {style}");
            }
        }
    }
    out
}

fn describe(buf: &Buffer, x: u16, y: u16) -> String {
    let cell = &buf[(x, y)];
    let mut parts = Vec::new();
    if cell.fg != Color::Reset {
        parts.push(format!("fg={:?}", cell.fg));
    }
    if cell.bg != Color::Reset {
        parts.push(format!("bg={:?}", cell.bg));
    }
    if cell.modifier != Modifier::empty() {
        parts.push(format!("+{:?}", cell.modifier));
    }
    parts.join(" ")
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"))
}

/// Compares `actual` with the golden file `name` (or writes it with `UPDATE_GOLDEN=1`).
pub fn check(name: &str, actual: &str) {
    let file = path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(file.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&file, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {} ({e}); run with UPDATE_GOLDEN=1 to create it",
            file.display()
        )
    });
    if expected != actual {
        let actual_file = file.with_extension("actual.txt");
        let _ = std::fs::write(&actual_file, actual);
        panic!(
            "screen differs from {} (got {}; diff them, then UPDATE_GOLDEN=1 if intended)",
            file.display(),
            actual_file.display()
        );
    }
}
