//! Drawing: pure functions from the [`App`] state to a ratatui frame. Nothing here changes
//! state, so the same state always draws the same screen (which the snapshot tests rely on).

pub mod browser;
pub mod player;
pub mod timeline;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::app::field::TextField;
use crate::app::{App, Overlay, View, keys};

pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    let [main, status_area] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(u16::from(app.status.is_some())),
    ])
    .areas(area);
    match (app.view, &app.browser, &app.player) {
        (View::Player, _, Some(player)) => player::render(player, frame, main),
        (View::Browser, Some(browser), _) => browser::render(browser, frame, main),
        _ => {}
    }
    if let Some(status) = &app.status {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(" {status}"),
                Style::default().fg(Color::Black).bg(Color::Yellow),
            )),
            status_area,
        );
    }
    match &app.overlay {
        Some(Overlay::Help) => render_help(app, frame, area),
        Some(Overlay::ConfirmEnd { id }) => {
            let popup = centered(area, 60, 6);
            frame.render_widget(Clear, popup);
            let text = vec![
                Line::from(format!("End session {id} now?")),
                Line::from("The bastion disconnects the user and records that you ended it."),
                Line::from(Span::styled(
                    "y: end it    any other key: keep it running",
                    Style::default().add_modifier(Modifier::BOLD),
                )),
            ];
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(Color::Red))
                .title(" end session ");
            frame.render_widget(
                Paragraph::new(text).block(block).wrap(Wrap { trim: true }),
                popup,
            );
        }
        None => {}
    }
}

fn render_help(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let sections = keys::help_sections(&app.help_contexts());
    let key_width = sections
        .iter()
        .flat_map(|(_, lines)| lines.iter().map(|(k, _)| k.chars().count()))
        .max()
        .unwrap_or(0)
        .min(28);
    let mut body: Vec<Line<'_>> = Vec::new();
    for (title, lines) in &sections {
        body.push(Line::from(Span::styled(
            format!(" {title}"),
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )));
        body.extend(lines.iter().map(|(keys, help)| {
            Line::from(vec![
                Span::styled(
                    format!(" {keys:>key_width$}  "),
                    Style::default().fg(Color::Cyan),
                ),
                Span::raw(*help),
            ])
        }));
    }
    // As many columns as it takes to fit the height (a small terminal still sees every key).
    let rows = usize::from(area.height.saturating_sub(2)).max(1);
    let columns = body.len().div_ceil(rows).clamp(1, 3);
    let per_column = body.len().div_ceil(columns);
    let column_width: u16 = 58;
    let width = (column_width * columns as u16 + 2).min(area.width);
    let height = (per_column as u16 + 2).min(area.height);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys (any key closes) ");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let areas =
        Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(inner);
    for (column, lines) in body.chunks(per_column.max(1)).enumerate() {
        if let Some(area) = areas.get(column) {
            frame.render_widget(Paragraph::new(lines.to_vec()), *area);
        }
    }
}

/// A text field as one line: label, text and a cursor mark.
pub fn field_line(field: &TextField) -> Line<'static> {
    Line::from(vec![
        Span::styled(
            format!(" {}: ", field.label),
            Style::default().fg(Color::Gray),
        ),
        Span::styled(
            format!("{}▏", field.text),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            "  (Enter ok, Esc cancel)",
            Style::default().fg(Color::DarkGray),
        ),
    ])
}

/// A `width` x `height` rectangle centred in `area` (shrunk to fit).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}
