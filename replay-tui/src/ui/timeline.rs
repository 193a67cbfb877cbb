//! The player's timeline: two rows under the terminal. The first shows activity density (output
//! bytes per slice of the recording, as block heights), the part already played in colour and
//! the position as a reversed cell; the second shows markers (warnings, the end, resizes),
//! search hits and the export marks at their time.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use crate::app::player::PlayerState;
use crate::source::MarkKind;

const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Column of time `t` on a timeline `width` cells wide.
pub fn column(t: f64, duration: f64, width: u16) -> u16 {
    if width == 0 || duration <= 0.0 || !t.is_finite() {
        return 0;
    }
    let last = f64::from(width - 1);
    ((t / duration).clamp(0.0, 1.0) * last).round() as u16
}

/// Output bytes per column.
pub fn density(player: &PlayerState, width: u16) -> Vec<u64> {
    let mut bins = vec![0u64; usize::from(width)];
    if width == 0 {
        return bins;
    }
    for &(second, bytes) in &player.activity {
        let col = column(second as f64, player.duration, width);
        if let Some(bin) = bins.get_mut(usize::from(col)) {
            *bin += bytes;
        }
    }
    bins
}

/// Draws the two timeline rows into `area` (uses its first two rows).
pub fn render(player: &PlayerState, area: Rect, buf: &mut Buffer) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let width = area.width;
    let bins = density(player, width);
    let max = bins.iter().copied().max().unwrap_or(0).max(1);
    let position = column(player.position, player.duration, width);
    for (i, &bytes) in bins.iter().enumerate() {
        let col = i as u16;
        // Any activity shows at least the lowest block, so a short burst is never invisible.
        let level = if bytes == 0 {
            0
        } else {
            ((bytes as f64 / max as f64) * 8.0).ceil().clamp(1.0, 8.0) as usize
        };
        let played = col <= position && player.duration > 0.0;
        let mut style = Style::default().fg(if played { Color::Cyan } else { Color::DarkGray });
        let mut symbol = LEVELS[level];
        if col == position {
            style = Style::default()
                .fg(Color::White)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD);
            if symbol == ' ' {
                symbol = '│';
            }
        }
        buf[(area.x + col, area.y)]
            .set_char(symbol)
            .set_style(style);
    }
    if area.height < 2 {
        return;
    }
    let y = area.y + 1;
    let mut put = |t: f64, symbol: char, style: Style| {
        let col = column(t, player.duration, width);
        buf[(area.x + col, y)].set_char(symbol).set_style(style);
    };
    for mark in &player.marks {
        let (symbol, color) = match mark.kind {
            MarkKind::Resize => ('↔', Color::Blue),
            MarkKind::Marker if mark.label.starts_with("end") => ('■', Color::Red),
            MarkKind::Marker => ('◆', Color::Yellow),
        };
        put(mark.t, symbol, Style::default().fg(color));
    }
    for &hit in &player.hits {
        put(hit, '●', Style::default().fg(Color::Magenta));
    }
    let green = Style::default()
        .fg(Color::Green)
        .add_modifier(Modifier::BOLD);
    if let Some(t) = player.mark_in {
        put(t, '[', green);
    }
    if let Some(t) = player.mark_out {
        put(t, ']', green);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_span_the_width() {
        assert_eq!(column(0.0, 100.0, 11), 0);
        assert_eq!(column(50.0, 100.0, 11), 5);
        assert_eq!(column(100.0, 100.0, 11), 10);
        assert_eq!(column(500.0, 100.0, 11), 10);
        assert_eq!(column(5.0, 0.0, 11), 0);
    }
}
