//! A snapshot of the recorded terminal's screen (characters, colours, attributes, cursor) taken
//! from the `avt` emulator, and how it is drawn into a ratatui buffer. Snapshots are made by
//! the player worker and handed to the UI, which only draws them.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScreenCell {
    pub ch: char,
    /// 1, 2 for the first half of a wide character, 0 for its second half.
    pub width: u8,
    pub style: Style,
}

impl Default for ScreenCell {
    fn default() -> Self {
        ScreenCell {
            ch: ' ',
            width: 1,
            style: Style::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Screen {
    pub cols: u16,
    pub rows: u16,
    /// Row-major, `cols * rows` cells.
    pub cells: Vec<ScreenCell>,
    /// Column and row of the cursor when it is visible.
    pub cursor: Option<(u16, u16)>,
    /// A full-screen program has the alternate screen.
    pub alternate: bool,
}

impl Screen {
    /// Copies the visible screen of `term`.
    pub fn capture(term: &avt::Terminal) -> Screen {
        let (cols, rows) = term.size();
        let (cols, rows) = (cols.min(u16::MAX as usize), rows.min(u16::MAX as usize));
        let mut cells = Vec::with_capacity(cols * rows);
        for line in term.screen().visible_lines().take(rows) {
            let before = cells.len();
            cells.extend(line.cells().iter().take(cols).map(|cell| ScreenCell {
                ch: cell.char(),
                width: cell.width(),
                style: style_of(cell.pen()),
            }));
            cells.resize(before + cols, ScreenCell::default());
        }
        cells.resize(cols * rows, ScreenCell::default());
        let cursor = term
            .cursor()
            .position()
            .filter(|&(col, row)| col < cols && row < rows)
            .map(|(col, row)| (col as u16, row as u16));
        Screen {
            cols: cols as u16,
            rows: rows as u16,
            cells,
            cursor,
            alternate: term.active_screen_kind() == avt::ScreenKind::Alternate,
        }
    }

    pub fn cell(&self, col: u16, row: u16) -> Option<&ScreenCell> {
        if col >= self.cols || row >= self.rows {
            return None;
        }
        self.cells
            .get(usize::from(row) * usize::from(self.cols) + usize::from(col))
    }

    /// The text of row `row`, trailing blanks removed (tests and search context).
    pub fn row_text(&self, row: u16) -> String {
        let text: String = (0..self.cols)
            .filter_map(|col| self.cell(col, row))
            .filter(|c| c.width != 0)
            .map(|c| c.ch)
            .collect();
        text.trim_end().to_string()
    }

    /// Draws the screen at the top left of `area`, clipped to it; the cursor is shown as a
    /// reversed cell (the real terminal's cursor stays hidden).
    pub fn render(&self, area: Rect, buf: &mut Buffer) {
        let area = area.intersection(buf.area);
        let width = self.cols.min(area.width);
        let height = self.rows.min(area.height);
        for row in 0..height {
            for col in 0..width {
                let Some(cell) = self.cell(col, row) else {
                    continue;
                };
                let mut style = cell.style;
                if self.cursor == Some((col, row)) {
                    style = style.add_modifier(Modifier::REVERSED);
                }
                let target = &mut buf[(area.x + col, area.y + row)];
                match cell.width {
                    0 => {
                        target.reset();
                        target.set_style(style);
                    }
                    // A wide character cut by the right edge: half of it cannot be drawn.
                    2 if col + 1 >= width => {
                        target.set_char(' ').set_style(style);
                    }
                    _ => {
                        let ch = if cell.ch.is_control() { ' ' } else { cell.ch };
                        target.set_char(ch).set_style(style);
                    }
                }
            }
        }
    }
}

fn color(color: avt::Color) -> Color {
    match color {
        avt::Color::Indexed(n) => match n {
            0 => Color::Black,
            1 => Color::Red,
            2 => Color::Green,
            3 => Color::Yellow,
            4 => Color::Blue,
            5 => Color::Magenta,
            6 => Color::Cyan,
            7 => Color::Gray,
            8 => Color::DarkGray,
            9 => Color::LightRed,
            10 => Color::LightGreen,
            11 => Color::LightYellow,
            12 => Color::LightBlue,
            13 => Color::LightMagenta,
            14 => Color::LightCyan,
            15 => Color::White,
            n => Color::Indexed(n),
        },
        avt::Color::RGB(rgb) => Color::Rgb(rgb.r, rgb.g, rgb.b),
    }
}

fn style_of(pen: &avt::Pen) -> Style {
    let mut style = Style::default()
        .fg(pen.foreground().map_or(Color::Reset, color))
        .bg(pen.background().map_or(Color::Reset, color));
    let flags = [
        (pen.is_bold(), Modifier::BOLD),
        (pen.is_faint(), Modifier::DIM),
        (pen.is_italic(), Modifier::ITALIC),
        (pen.is_underline(), Modifier::UNDERLINED),
        (pen.is_strikethrough(), Modifier::CROSSED_OUT),
        (pen.is_blink(), Modifier::SLOW_BLINK),
        (pen.is_inverse(), Modifier::REVERSED),
    ];
    for (on, modifier) in flags {
        if on {
            style = style.add_modifier(modifier);
        }
    }
    style
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_attributes_and_wide_characters_are_captured() {
        let mut term = avt::Terminal::new(10, 2).unwrap();
        term.feed("\x1b[1;31mA\x1b[0m\x1b[48;2;1;2;3mB\x1b[0m界\x1b[7mR");
        let screen = Screen::capture(&term);
        let a = screen.cell(0, 0).unwrap();
        assert_eq!(a.ch, 'A');
        assert_eq!(a.style.fg, Some(Color::Red));
        assert!(a.style.add_modifier.contains(Modifier::BOLD));
        assert_eq!(
            screen.cell(1, 0).unwrap().style.bg,
            Some(Color::Rgb(1, 2, 3))
        );
        assert_eq!(screen.cell(2, 0).unwrap().width, 2);
        assert_eq!(screen.cell(3, 0).unwrap().width, 0);
        assert!(
            screen
                .cell(4, 0)
                .unwrap()
                .style
                .add_modifier
                .contains(Modifier::REVERSED)
        );
        assert_eq!(screen.row_text(0), "AB界R");
        assert_eq!(screen.cursor, Some((5, 0)));

        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 1));
        screen.render(Rect::new(0, 0, 4, 1), &mut buf);
        assert_eq!(buf[(0, 0)].symbol(), "A");
        assert_eq!(buf[(2, 0)].symbol(), "界");
    }
}
