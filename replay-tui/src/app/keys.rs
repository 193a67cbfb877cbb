//! Every key binding, in one table: the state machine looks keys up here and the `?` screen is
//! drawn from it, so the help can never disagree with what the keys do. Arrows and vim keys
//! both work everywhere.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a key is pressed; bindings are looked up for the innermost context first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Browser,
    /// The browser's search hit list has the focus.
    Hits,
    Player,
    /// The player's command panel has the focus.
    Panel,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    // Anywhere.
    Help,
    Back,
    Quit,
    // Lists (browser table, hit list, command panel).
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Select,
    FocusNext,
    // Browser.
    Search,
    Filters,
    SortNext,
    SortReverse,
    Reload,
    ClearFilters,
    // Player.
    TogglePlay,
    Faster,
    Slower,
    Seek(f64),
    SeekPercent(u8),
    SeekStart,
    SeekEnd,
    NextCommand,
    PrevCommand,
    NextHit,
    PrevHit,
    StepForward,
    StepBack,
    ToggleInput,
    ToggleIdleCap,
    MarkIn,
    MarkOut,
    ClearMarks,
    Export,
    Follow,
    EndSession,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Code(KeyCode),
    Shift(KeyCode),
}

impl Key {
    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let alt = event.modifiers.contains(KeyModifiers::ALT);
        let shift = event.modifiers.contains(KeyModifiers::SHIFT);
        match self {
            // Shift is how upper case letters and symbols arrive; it is part of the char.
            Key::Char(c) => event.code == KeyCode::Char(c) && !ctrl && !alt,
            Key::Ctrl(c) => event.code == KeyCode::Char(c) && ctrl && !alt,
            Key::Code(code) => event.code == code && !ctrl && !alt && !shift,
            Key::Shift(code) => event.code == code && shift && !ctrl && !alt,
        }
    }

    /// How the help screen writes the key.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "space".to_string(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("C-{c}"),
            Key::Code(code) => code_label(code),
            Key::Shift(code) => format!("S-{}", code_label(code)),
        }
    }
}

fn code_label(code: KeyCode) -> String {
    match code {
        KeyCode::Left => "←".to_string(),
        KeyCode::Right => "→".to_string(),
        KeyCode::Up => "↑".to_string(),
        KeyCode::Down => "↓".to_string(),
        KeyCode::Home => "Home".to_string(),
        KeyCode::End => "End".to_string(),
        KeyCode::PageUp => "PgUp".to_string(),
        KeyCode::PageDown => "PgDn".to_string(),
        KeyCode::Enter => "Enter".to_string(),
        KeyCode::Esc => "Esc".to_string(),
        KeyCode::Tab => "Tab".to_string(),
        other => format!("{other:?}"),
    }
}

pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
}

use Context::{Browser, Hits, Panel, Player};
use Key::{Char, Code, Ctrl, Shift};

const fn bind(
    context: Context,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        context,
        keys,
        action,
        help,
    }
}

/// The table. Order matters only for the help screen.
pub static BINDINGS: &[Binding] = &[
    bind(
        Browser,
        &[Code(KeyCode::Up), Char('k')],
        Action::Up,
        "previous recording",
    ),
    bind(
        Browser,
        &[Code(KeyCode::Down), Char('j')],
        Action::Down,
        "next recording",
    ),
    bind(
        Browser,
        &[Code(KeyCode::PageUp), Ctrl('b')],
        Action::PageUp,
        "page up",
    ),
    bind(
        Browser,
        &[Code(KeyCode::PageDown), Ctrl('f')],
        Action::PageDown,
        "page down",
    ),
    bind(
        Browser,
        &[Code(KeyCode::Home), Char('g')],
        Action::Top,
        "first recording",
    ),
    bind(
        Browser,
        &[Code(KeyCode::End), Char('G')],
        Action::Bottom,
        "last recording",
    ),
    bind(
        Browser,
        &[Code(KeyCode::Enter), Code(KeyCode::Right), Char('l')],
        Action::Select,
        "play (at the first search hit)",
    ),
    bind(
        Browser,
        &[Char('/')],
        Action::Search,
        "search the recordings' text",
    ),
    bind(
        Browser,
        &[Char('f')],
        Action::Filters,
        "filter by user, target, dates, end reason",
    ),
    bind(
        Browser,
        &[Char('c')],
        Action::ClearFilters,
        "clear filters and search",
    ),
    bind(
        Browser,
        &[Char('s')],
        Action::SortNext,
        "sort by the next column",
    ),
    bind(
        Browser,
        &[Char('S')],
        Action::SortReverse,
        "reverse the sort order",
    ),
    bind(
        Browser,
        &[Char('r')],
        Action::Reload,
        "reload the recording list",
    ),
    bind(
        Browser,
        &[Code(KeyCode::Tab)],
        Action::FocusNext,
        "switch between table and search hits",
    ),
    bind(
        Hits,
        &[Code(KeyCode::Up), Char('k')],
        Action::Up,
        "previous hit",
    ),
    bind(
        Hits,
        &[Code(KeyCode::Down), Char('j')],
        Action::Down,
        "next hit",
    ),
    bind(
        Hits,
        &[Code(KeyCode::Enter), Code(KeyCode::Right), Char('l')],
        Action::Select,
        "play at this hit",
    ),
    bind(
        Hits,
        &[Code(KeyCode::Tab), Code(KeyCode::Esc)],
        Action::FocusNext,
        "back to the table",
    ),
    bind(
        Player,
        &[Char(' '), Char('p')],
        Action::TogglePlay,
        "play / pause",
    ),
    bind(
        Player,
        &[Char('+'), Char('=')],
        Action::Faster,
        "faster (up to 16x)",
    ),
    bind(
        Player,
        &[Char('-'), Char('_')],
        Action::Slower,
        "slower (down to 0.25x)",
    ),
    bind(
        Player,
        &[Code(KeyCode::Left), Char('h')],
        Action::Seek(-5.0),
        "back 5 s",
    ),
    bind(
        Player,
        &[Code(KeyCode::Right), Char('l')],
        Action::Seek(5.0),
        "forward 5 s",
    ),
    bind(
        Player,
        &[
            Shift(KeyCode::Left),
            Char('H'),
            Code(KeyCode::Up),
            Char('k'),
            Code(KeyCode::PageUp),
        ],
        Action::Seek(-60.0),
        "back 1 min",
    ),
    bind(
        Player,
        &[
            Shift(KeyCode::Right),
            Char('L'),
            Code(KeyCode::Down),
            Char('j'),
            Code(KeyCode::PageDown),
        ],
        Action::Seek(60.0),
        "forward 1 min",
    ),
    bind(Player, &[Char('0')], Action::SeekPercent(0), "jump to 0%"),
    bind(
        Player,
        &[Char('1')],
        Action::SeekPercent(10),
        "jump to 10% (2-9: 20%-90%)",
    ),
    bind(Player, &[Char('2')], Action::SeekPercent(20), ""),
    bind(Player, &[Char('3')], Action::SeekPercent(30), ""),
    bind(Player, &[Char('4')], Action::SeekPercent(40), ""),
    bind(Player, &[Char('5')], Action::SeekPercent(50), ""),
    bind(Player, &[Char('6')], Action::SeekPercent(60), ""),
    bind(Player, &[Char('7')], Action::SeekPercent(70), ""),
    bind(Player, &[Char('8')], Action::SeekPercent(80), ""),
    bind(Player, &[Char('9')], Action::SeekPercent(90), ""),
    bind(
        Player,
        &[Code(KeyCode::Home), Char('g')],
        Action::SeekStart,
        "start",
    ),
    bind(
        Player,
        &[Code(KeyCode::End), Char('G')],
        Action::SeekEnd,
        "end",
    ),
    bind(
        Player,
        &[Char('c')],
        Action::NextCommand,
        "next typed command",
    ),
    bind(
        Player,
        &[Char('C')],
        Action::PrevCommand,
        "previous typed command",
    ),
    bind(Player, &[Char('n')], Action::NextHit, "next search hit"),
    bind(Player, &[Char('N')], Action::PrevHit, "previous search hit"),
    bind(
        Player,
        &[Char('.')],
        Action::StepForward,
        "next frame (paused)",
    ),
    bind(
        Player,
        &[Char(',')],
        Action::StepBack,
        "previous frame (paused)",
    ),
    bind(
        Player,
        &[Char('/')],
        Action::Search,
        "search this recording",
    ),
    bind(Player, &[Char('i')], Action::ToggleInput, "show typed keys"),
    bind(
        Player,
        &[Char('I')],
        Action::ToggleIdleCap,
        "idle time cap on/off",
    ),
    bind(
        Player,
        &[Char('[')],
        Action::MarkIn,
        "mark export start here",
    ),
    bind(
        Player,
        &[Char(']')],
        Action::MarkOut,
        "mark export end here",
    ),
    bind(
        Player,
        &[Char('x')],
        Action::ClearMarks,
        "clear export marks",
    ),
    bind(
        Player,
        &[Char('e')],
        Action::Export,
        "export to .cast (marked range or all)",
    ),
    bind(
        Player,
        &[Char('F')],
        Action::Follow,
        "follow a live session",
    ),
    bind(
        Player,
        &[Char('E')],
        Action::EndSession,
        "end this live session",
    ),
    bind(
        Player,
        &[Code(KeyCode::Tab)],
        Action::FocusNext,
        "focus the command list",
    ),
    bind(
        Panel,
        &[Code(KeyCode::Up), Char('k')],
        Action::Up,
        "previous command",
    ),
    bind(
        Panel,
        &[Code(KeyCode::Down), Char('j')],
        Action::Down,
        "next command",
    ),
    bind(
        Panel,
        &[Code(KeyCode::Home), Char('g')],
        Action::Top,
        "first command",
    ),
    bind(
        Panel,
        &[Code(KeyCode::End), Char('G')],
        Action::Bottom,
        "last command",
    ),
    bind(
        Panel,
        &[Code(KeyCode::Enter), Code(KeyCode::Right), Char('l')],
        Action::Select,
        "seek to the command",
    ),
    bind(
        Panel,
        &[Code(KeyCode::Tab), Code(KeyCode::Esc)],
        Action::FocusNext,
        "back to the player",
    ),
];

/// Keys that work everywhere (outside text fields).
pub static GLOBAL: &[(Key, Action, &str)] = &[
    (Char('?'), Action::Help, "this help"),
    (Char('q'), Action::Back, "back to the list / quit"),
    (Code(KeyCode::Esc), Action::Back, "back / close"),
    (Char('Q'), Action::Quit, "quit"),
    (Ctrl('c'), Action::Quit, "quit"),
];

/// The action for `event` in `context` (falling back to the enclosing context), if any.
pub fn action_for(context: Context, event: &KeyEvent) -> Option<Action> {
    let chain: &[Context] = match context {
        Context::Browser => &[Browser],
        Context::Hits => &[Hits, Browser],
        Context::Player => &[Player],
        Context::Panel => &[Panel, Player],
    };
    for context in chain {
        if let Some(binding) = BINDINGS
            .iter()
            .find(|b| b.context == *context && b.keys.iter().any(|k| k.matches(event)))
        {
            return Some(binding.action);
        }
    }
    GLOBAL
        .iter()
        .find(|(key, _, _)| key.matches(event))
        .map(|(_, action, _)| *action)
}

/// What the help screen shows: per context a title and its (keys, description) lines, then the
/// keys that work anywhere. Bindings without a description are left out.
pub fn help_sections(contexts: &[Context]) -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let mut sections: Vec<(&'static str, Vec<(String, &'static str)>)> = contexts
        .iter()
        .map(|context| {
            let lines = BINDINGS
                .iter()
                .filter(|b| b.context == *context && !b.help.is_empty())
                .map(|b| {
                    let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
                    (keys.join(" "), b.help)
                })
                .collect();
            let title = match context {
                Context::Browser => "recordings",
                Context::Hits => "search hits",
                Context::Player => "player",
                Context::Panel => "command list",
            };
            (title, lines)
        })
        .collect();
    sections.push((
        "anywhere",
        GLOBAL
            .iter()
            .map(|(key, _, help)| (key.label(), *help))
            .collect(),
    ));
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn arrows_and_vim_keys_do_the_same() {
        let none = KeyModifiers::NONE;
        for (a, b) in [
            (KeyCode::Left, KeyCode::Char('h')),
            (KeyCode::Right, KeyCode::Char('l')),
            (KeyCode::Up, KeyCode::Char('k')),
            (KeyCode::Down, KeyCode::Char('j')),
        ] {
            for context in [Context::Browser, Context::Player, Context::Panel] {
                assert_eq!(
                    action_for(context, &key(a, none)),
                    action_for(context, &key(b, none)),
                    "{a:?} {b:?} {context:?}"
                );
            }
        }
    }

    #[test]
    fn shifted_letters_ctrl_and_fallback_resolve() {
        let shift = KeyModifiers::SHIFT;
        assert_eq!(
            action_for(Context::Player, &key(KeyCode::Char('N'), shift)),
            Some(Action::PrevHit)
        );
        assert_eq!(
            action_for(Context::Player, &key(KeyCode::Left, shift)),
            Some(Action::Seek(-60.0))
        );
        assert_eq!(
            action_for(Context::Panel, &key(KeyCode::Char(' '), KeyModifiers::NONE)),
            Some(Action::TogglePlay)
        );
        assert_eq!(
            action_for(
                Context::Browser,
                &key(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(Context::Player, &key(KeyCode::F(5), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.context == b.context {
                    for k in a.keys {
                        assert!(!b.keys.contains(k), "{k:?} bound twice in {:?}", a.context);
                    }
                }
            }
        }
    }
}
