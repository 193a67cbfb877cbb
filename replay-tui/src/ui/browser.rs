//! Drawing the browser: the table of recordings (sorted, filtered), the search line and the
//! hits of the selected recording shown in context, and the filter form.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};

use crate::app::browser::{BrowserFocus, BrowserState};
use crate::catalog::{CatalogRow, Verified};
use crate::search::{HitKind, SearchHit};
use crate::units;

pub fn render(browser: &BrowserState, frame: &mut Frame<'_>, area: Rect) {
    let searching = !browser.query.is_empty() || browser.search_field.is_some();
    let hits_height = if searching {
        (area.height / 3).max(5)
    } else {
        0
    };
    let [header, search, table, hits, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(searching)),
        Constraint::Min(3),
        Constraint::Length(hits_height),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(footer_line(browser)), footer);
    frame.render_widget(Paragraph::new(header_line(browser)), header);
    if searching {
        frame.render_widget(Paragraph::new(search_line(browser)), search);
    }
    render_table(browser, frame, table);
    if searching {
        render_hits(browser, frame, hits);
    }
    if let Some(form) = &browser.filter_form {
        let height = form.fields.len() as u16 + 2;
        let popup = super::centered(area, 50, height);
        frame.render_widget(Clear, popup);
        let block = Block::default()
            .borders(Borders::ALL)
            .title(" filters (Tab next, Enter done, Esc undo) ");
        let inner = block.inner(popup);
        frame.render_widget(block, popup);
        let lines: Vec<Line<'_>> = form
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let focused = i == form.focus;
                let invalid = (crate::app::browser::FILTER_FROM..=crate::app::browser::FILTER_TO)
                    .contains(&i)
                    && !field.text.trim().is_empty()
                    && units::parse_date(&field.text).is_none();
                let style = if invalid {
                    Style::default().fg(Color::Red)
                } else if focused {
                    Style::default().add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                };
                Line::from(vec![
                    Span::styled(
                        format!("{:>18}: ", field.label),
                        Style::default().fg(Color::Gray),
                    ),
                    Span::styled(
                        format!("{}{}", field.text, if focused { "▏" } else { "" }),
                        style,
                    ),
                ])
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn header_line(browser: &BrowserState) -> Line<'static> {
    let shown = browser.visible.len();
    let loaded = browser.rows.len();
    let mut spans = vec![Span::styled(
        " bastion-replay ",
        Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
    )];
    let count = match browser.total {
        Some(total) if loaded < total => {
            format!(" {shown} of {loaded} recordings (loading {loaded}/{total}) ")
        }
        _ => format!(" {shown} of {loaded} recordings "),
    };
    spans.push(Span::raw(count));
    spans.push(Span::styled(
        format!(
            " sorted by {} {} ",
            browser.sort.label(),
            if browser.descending { "↓" } else { "↑" }
        ),
        Style::default().fg(Color::Gray),
    ));
    let f = &browser.filters;
    let mut filters = Vec::new();
    for (name, value) in [
        ("user", &f.user),
        ("target", &f.target),
        ("from", &f.from),
        ("to", &f.to),
        ("reason", &f.reason),
    ] {
        if !value.is_empty() {
            filters.push(format!("{name}={value}"));
        }
    }
    if !filters.is_empty() {
        spans.push(Span::styled(
            format!(" filter: {} ", filters.join(" ")),
            Style::default().fg(Color::Yellow),
        ));
    }
    if let Some(error) = &browser.error {
        spans.push(Span::styled(
            format!(" {error} "),
            Style::default().fg(Color::Red),
        ));
    }
    Line::from(spans)
}

/// The selected recording's id and what its verification found (the table has no room for
/// it, and a reviewer must see which segment is bad).
fn footer_line(browser: &BrowserState) -> Line<'static> {
    let Some(row) = browser.selected_row() else {
        return Line::from(Span::styled(
            " ? keys  / search  f filter  q quit",
            Style::default().fg(Color::DarkGray),
        ));
    };
    let detail = match &row.verified {
        Verified::Pending => "verifying…".to_string(),
        Verified::Intact { signed: true } => "chain and signatures intact".to_string(),
        Verified::Intact { signed: false } => {
            "chain intact (no signing key configured, or unsigned)".to_string()
        }
        Verified::Truncated(detail) | Verified::Tampered(detail) | Verified::Failed(detail) => {
            detail.clone()
        }
    };
    let style = match row.verified {
        Verified::Tampered(_) | Verified::Failed(_) => Style::default().fg(Color::Red),
        _ => Style::default().fg(Color::DarkGray),
    };
    Line::from(vec![
        Span::styled(
            format!(" {} ", row.id),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::styled(detail, style),
    ])
}

fn search_line(browser: &BrowserState) -> Line<'static> {
    let mut spans = match &browser.search_field {
        Some(field) => super::field_line(field).spans,
        None => vec![Span::styled(
            format!(" search: {} ", browser.query),
            Style::default().fg(Color::Magenta),
        )],
    };
    match browser.active_results() {
        Some(results) => {
            let hits: usize = results.counts.values().sum();
            let mut text = format!(
                "  {hits} hits in {} recordings ({} searched",
                results.counts.len(),
                results.searched
            );
            if results.missing > 0 {
                text.push_str(&format!(", {} without index", results.missing));
            }
            text.push(')');
            spans.push(Span::styled(text, Style::default().fg(Color::Gray)));
        }
        None if !browser.query.is_empty() => {
            spans.push(Span::styled(
                "  searching…",
                Style::default().fg(Color::Gray),
            ));
        }
        None => {}
    }
    Line::from(spans)
}

fn verified_cell(row: &CatalogRow) -> Cell<'static> {
    let (text, color) = match &row.verified {
        Verified::Pending => ("…".to_string(), Color::DarkGray),
        Verified::Intact { signed: true } => ("✓ signed".to_string(), Color::Green),
        Verified::Intact { signed: false } => ("✓ chain".to_string(), Color::Green),
        Verified::Truncated(_) if !row.finished => ("incomplete".to_string(), Color::Yellow),
        Verified::Truncated(_) => ("truncated".to_string(), Color::Yellow),
        Verified::Tampered(_) => ("✗ TAMPERED".to_string(), Color::Red),
        Verified::Failed(_) => ("? error".to_string(), Color::Red),
    };
    Cell::from(Span::styled(text, Style::default().fg(color)))
}

fn render_table(browser: &BrowserState, frame: &mut Frame<'_>, area: Rect) {
    let counts = browser.active_results().map(|r| &r.counts);
    let mut header = vec![
        "user",
        "target",
        "login",
        "start (UTC)",
        "duration",
        "end reason",
        "size",
        "verified",
    ];
    if counts.is_some() {
        header.push("hits");
    }
    let rows: Vec<Row<'_>> = browser
        .visible
        .iter()
        .map(|&i| {
            let row = &browser.rows[i];
            let start = row.started_at.map(units::date_time).unwrap_or_default();
            let duration = match (row.duration, row.finished) {
                (Some(d), _) => units::offset(d),
                (None, false) => "live?".to_string(),
                (None, true) => String::new(),
            };
            let reason = match (&row.end_reason, &row.error) {
                (_, Some(error)) => error.clone(),
                (Some(reason), None) => reason.clone(),
                (None, None) => "(running or interrupted)".to_string(),
            };
            let size = row.stored_bytes.map(units::size).unwrap_or_default();
            let mut cells = vec![
                Cell::from(row.user.clone()),
                Cell::from(row.target.clone()),
                Cell::from(row.login.clone()),
                Cell::from(start),
                Cell::from(duration),
                Cell::from(reason),
                Cell::from(size),
                verified_cell(row),
            ];
            if let Some(counts) = counts {
                cells.push(Cell::from(
                    counts.get(&row.id).copied().unwrap_or(0).to_string(),
                ));
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(19),
        Constraint::Length(8),
        Constraint::Min(12),
        Constraint::Length(9),
        Constraint::Length(11),
    ];
    if counts.is_some() {
        widths.push(Constraint::Length(5));
    }
    let focused = browser.focus == BrowserFocus::Table;
    let table = Table::new(rows, widths)
        .header(
            Row::new(header)
                .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .block(Block::default().borders(Borders::TOP))
        .row_highlight_style(if focused {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        });
    let visible = usize::from(area.height.saturating_sub(2)).max(1);
    let mut state = TableState::default()
        .with_selected((!browser.visible.is_empty()).then_some(browser.selected))
        .with_offset(browser.selected.saturating_sub(visible - 1));
    frame.render_stateful_widget(table, area, &mut state);
    if browser.visible.is_empty() {
        let text = if browser.rows.is_empty() && browser.total.is_none() && browser.error.is_none()
        {
            "loading the recording list…"
        } else {
            "no recording matches"
        };
        let inner = Rect::new(area.x + 1, area.y + 2, area.width.saturating_sub(2), 1);
        frame.render_widget(
            Paragraph::new(Span::styled(text, Style::default().fg(Color::DarkGray))),
            inner,
        );
    }
}

/// The hit's line with the query highlighted.
fn highlighted(text: &str, query: &str) -> Vec<Span<'static>> {
    let lower = text.to_lowercase();
    let needle = query.to_lowercase();
    match lower
        .find(&needle)
        .filter(|_| !needle.is_empty() && lower.len() == text.len())
    {
        Some(start) => {
            let end = start + needle.len();
            vec![
                Span::raw(text[..start].to_string()),
                Span::styled(
                    text[start..end].to_string(),
                    Style::default().fg(Color::Black).bg(Color::Magenta),
                ),
                Span::raw(text[end..].to_string()),
            ]
        }
        None => vec![Span::raw(text.to_string())],
    }
}

fn hit_lines(hit: &SearchHit, query: &str, selected: bool) -> Vec<Line<'static>> {
    let dim = Style::default().fg(Color::DarkGray);
    let kind = match hit.kind {
        HitKind::Command => "typed ",
        HitKind::Output => "output",
    };
    let mut main = vec![
        Span::styled(
            if selected { "▶ " } else { "  " },
            Style::default().fg(Color::Cyan),
        ),
        Span::styled(format!("{:>8} {kind} ", units::offset(hit.t)), dim),
    ];
    main.extend(highlighted(&hit.text, query));
    let mut lines = Vec::new();
    if let Some(before) = &hit.before
        && hit.kind == HitKind::Output
    {
        lines.push(Line::from(Span::styled(format!("{:>18}{before}", ""), dim)));
    }
    lines.push(Line::from(main));
    if let Some(after) = &hit.after {
        lines.push(Line::from(Span::styled(format!("{:>18}{after}", ""), dim)));
    }
    lines
}

fn render_hits(browser: &BrowserState, frame: &mut Frame<'_>, area: Rect) {
    let hits = browser.selected_hits();
    let focused = browser.focus == BrowserFocus::Hits;
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(Style::default().fg(if focused {
            Color::Cyan
        } else {
            Color::DarkGray
        }))
        .title(format!(
            " hits in this recording: {} (Tab to pick one, Enter to play there) ",
            hits.len()
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let selected = if focused {
        browser.hit_selected
    } else {
        usize::MAX
    };
    // Start at the selected hit's neighbourhood so it is always on screen.
    let first = if focused {
        browser.hit_selected.saturating_sub(1)
    } else {
        0
    };
    let lines: Vec<Line<'static>> = hits
        .iter()
        .enumerate()
        .skip(first)
        .flat_map(|(i, hit)| hit_lines(hit, &browser.query, i == selected))
        .take(usize::from(inner.height))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
