//! Drawing the player: a frame around the recorded terminal naming user, target and login, the
//! side panel of typed commands, the timeline, and a status line with play state, speed,
//! offset, wall-clock time, loading progress and damage.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};

use crate::app::player::PlayerState;
use crate::units;

/// Narrowest terminal pane for which the command panel is still shown beside it.
const MIN_TERMINAL_WIDTH: u16 = 40;
const PANEL_WIDTH: u16 = 34;

pub fn render(player: &PlayerState, frame: &mut Frame<'_>, area: Rect) {
    let extra = u16::from(player.damage.is_some())
        + u16::from(player.search.is_some() || player.export.is_some());
    let [main, timeline, status, extra_area] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(extra),
    ])
    .areas(area);
    let show_panel = main.width >= MIN_TERMINAL_WIDTH + PANEL_WIDTH;
    let (term_area, panel_area) = if show_panel {
        let [a, b] = Layout::horizontal([
            Constraint::Min(MIN_TERMINAL_WIDTH),
            Constraint::Length(PANEL_WIDTH),
        ])
        .areas(main);
        (a, Some(b))
    } else {
        (main, None)
    };
    render_terminal(player, frame, term_area);
    if let Some(panel) = panel_area {
        render_panel(player, frame, panel);
    }
    super::timeline::render(player, timeline, frame.buffer_mut());
    frame.render_widget(Paragraph::new(status_line(player)), status);
    let mut lines = Vec::new();
    if let Some(damage) = &player.damage {
        lines.push(Line::from(vec![
            Span::styled(
                "damaged: ",
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            Span::raw(damage.clone()),
        ]));
    }
    if let Some(field) = player.search.as_ref().or(player.export.as_ref()) {
        lines.push(super::field_line(field));
    }
    frame.render_widget(Paragraph::new(lines), extra_area);
}

fn title(player: &PlayerState) -> Line<'static> {
    let info = player.info.as_ref();
    let mut spans = vec![Span::raw(" ")];
    match info.and_then(|i| i.user.clone()) {
        Some(user) => {
            let target = info.and_then(|i| i.target.clone()).unwrap_or_default();
            let login = info.and_then(|i| i.login.clone()).unwrap_or_default();
            spans.push(Span::styled(
                user,
                Style::default().add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(" → "));
            spans.push(Span::styled(
                target,
                Style::default().add_modifier(Modifier::BOLD),
            ));
            if !login.is_empty() {
                spans.push(Span::raw(format!(" as {login}")));
            }
        }
        None => spans.push(Span::raw(
            info.and_then(|i| i.title.clone())
                .unwrap_or_else(|| player.name.clone()),
        )),
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

fn render_terminal(player: &PlayerState, frame: &mut Frame<'_>, area: Rect) {
    let mut block = Block::default().borders(Borders::ALL).title(title(player));
    if player.live {
        block = block.title(
            Line::from(Span::styled(
                if player.following {
                    " LIVE ● following "
                } else {
                    " LIVE "
                },
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ))
            .right_aligned(),
        );
    }
    if let Some(screen) = player.frame.as_ref().map(|f| &f.screen) {
        let mut size = format!(" {}x{} ", screen.cols, screen.rows);
        if screen.alternate {
            size.insert_str(1, "full-screen · ");
        }
        block = block.title_bottom(Line::from(size).right_aligned());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if let Some(error) = &player.error {
        let text = Paragraph::new(format!("cannot play this recording: {error}"))
            .style(Style::default().fg(Color::Red))
            .wrap(Wrap { trim: true });
        frame.render_widget(text, inner);
        return;
    }
    match &player.frame {
        Some(shown) => {
            shown.screen.render(inner, frame.buffer_mut());
            if shown.screen.cols > inner.width || shown.screen.rows > inner.height {
                let note = format!(
                    " recorded {}x{}, showing {}x{}: enlarge the window ",
                    shown.screen.cols, shown.screen.rows, inner.width, inner.height
                );
                let y = area.y + area.height.saturating_sub(1);
                frame.buffer_mut().set_stringn(
                    area.x + 1,
                    y,
                    note,
                    usize::from(area.width.saturating_sub(2)),
                    Style::default().fg(Color::Yellow),
                );
            }
            if player.show_input {
                render_input(shown, frame.buffer_mut(), inner);
            }
        }
        None => frame.render_widget(Paragraph::new("opening…"), inner),
    }
}

/// Typed keys of the last seconds, as readable symbols.
pub fn key_symbols(data: &str) -> String {
    let mut out = String::new();
    let mut chars = data.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => out.push('⏎'),
            '\u{7f}' | '\u{8}' => out.push('⌫'),
            '\t' => out.push('⇥'),
            '\u{1b}' => {
                let sequence: String = match chars.peek() {
                    Some('[') | Some('O') => {
                        let mut s = String::new();
                        while let Some(&n) = chars.peek() {
                            chars.next();
                            s.push(n);
                            if s.len() > 1 && ('\u{40}'..='\u{7e}').contains(&n) {
                                break;
                            }
                        }
                        s
                    }
                    _ => String::new(),
                };
                out.push_str(match sequence.chars().last() {
                    Some('A') => "↑",
                    Some('B') => "↓",
                    Some('C') => "→",
                    Some('D') => "←",
                    _ => "Esc",
                });
            }
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c => out.push(c),
        }
    }
    out
}

fn render_input(shown: &crate::worker::Frame, buf: &mut Buffer, inner: Rect) {
    let keys: String = shown.input.iter().map(|k| key_symbols(&k.text)).collect();
    let width = inner.width.saturating_sub(2).min(40);
    if width < 8 || inner.height < 3 {
        return;
    }
    let text: String = {
        let chars: Vec<char> = keys.chars().collect();
        let keep = usize::from(width - 4);
        chars[chars.len().saturating_sub(keep)..].iter().collect()
    };
    let area = Rect::new(
        inner.x + inner.width - width - 1,
        inner.y + inner.height - 3,
        width,
        3,
    );
    ratatui::widgets::Widget::render(Clear, area, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys ")
        .border_style(Style::default().fg(Color::Yellow));
    let inner_area = block.inner(area);
    ratatui::widgets::Widget::render(block, area, buf);
    buf.set_stringn(
        inner_area.x,
        inner_area.y,
        text,
        usize::from(inner_area.width),
        Style::default().add_modifier(Modifier::BOLD),
    );
}

fn render_panel(player: &PlayerState, frame: &mut Frame<'_>, area: Rect) {
    let border = if player.panel_focused {
        Color::Cyan
    } else {
        Color::DarkGray
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(border))
        .title(format!(" commands ({}) ", player.commands.len()));
    if player.commands.is_empty() {
        let empty = Paragraph::new(Span::styled(
            "no typed commands",
            Style::default().fg(Color::DarkGray),
        ))
        .block(block);
        frame.render_widget(empty, area);
        return;
    }
    let items: Vec<ListItem<'_>> = player
        .commands
        .iter()
        .map(|c| {
            let hit = !player.query.is_empty()
                && c.text.to_lowercase().contains(&player.query.to_lowercase());
            let style = if hit {
                Style::default().fg(Color::Magenta)
            } else {
                Style::default()
            };
            ListItem::new(Line::from(vec![
                Span::styled(
                    format!("{:>7} ", units::offset(c.t)),
                    Style::default().fg(Color::DarkGray),
                ),
                Span::styled(c.text.clone(), style),
            ]))
        })
        .collect();
    let highlight = if player.panel_focused {
        Style::default().bg(Color::Cyan).fg(Color::Black)
    } else {
        Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
    };
    let list = List::new(items).block(block).highlight_style(highlight);
    let visible = usize::from(area.height.saturating_sub(2)).max(1);
    let selected = player.panel_selected.min(player.commands.len() - 1);
    let mut state = ListState::default()
        .with_selected(Some(selected))
        .with_offset(selected.saturating_sub(visible - 1));
    frame.render_stateful_widget(list, area, &mut state);
}

fn status_line(player: &PlayerState) -> Line<'static> {
    let state = if player.playing { "▶" } else { "⏸" };
    let speed = player.speed();
    let speed = if speed < 1.0 {
        format!("{speed}x")
    } else {
        format!("{}x", speed as u32)
    };
    let mut spans = vec![
        Span::styled(
            format!(" {state} {speed:>5} "),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            " {} / {} ",
            units::offset_precise(player.position),
            units::offset(player.duration)
        )),
    ];
    if let Some(start) = player.info.as_ref().and_then(|i| i.started_at) {
        spans.push(Span::styled(
            format!(" {} UTC ", units::wall(start, player.position)),
            Style::default().fg(Color::Gray),
        ));
    }
    if player.idle_cap_on
        && let Some(cap) = player.idle_cap
    {
        spans.push(Span::raw(format!(" idle≤{cap}s ")));
    }
    if player.show_input {
        spans.push(Span::raw(" keys "));
    }
    if !player.query.is_empty() {
        spans.push(Span::styled(
            format!(" /{} ({} hits) ", player.query, player.hits.len()),
            Style::default().fg(Color::Magenta),
        ));
    }
    if player.mark_in.is_some() || player.mark_out.is_some() {
        let range = player.export_range().unwrap_or((0.0, player.duration));
        spans.push(Span::styled(
            format!(" [{}–{}] ", units::offset(range.0), units::offset(range.1)),
            Style::default().fg(Color::Green),
        ));
    }
    if !player.progress.done {
        spans.push(Span::styled(
            format!(" loading {:.0}% ", player.progress.fraction * 100.0),
            Style::default().fg(Color::Yellow),
        ));
    }
    spans.push(Span::styled(
        " ? help",
        Style::default().fg(Color::DarkGray),
    ));
    Line::from(spans)
}
