//! One-line text fields (search boxes, the filter form, the export dialog): what a key does to
//! the text while a field has the keyboard.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Longest text a field accepts; a paste of a whole file must not grow the UI state unbounded.
const MAX_FIELD_CHARS: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextField {
    pub label: &'static str,
    pub text: String,
}

/// What a key did to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOutcome {
    /// The text changed.
    Edited,
    Submit,
    Cancel,
    NextField,
    PreviousField,
    /// Nothing a field handles (cursor keys and the like).
    Ignored,
}

impl TextField {
    pub fn new(label: &'static str, text: &str) -> TextField {
        TextField {
            label,
            text: text.to_string(),
        }
    }

    pub fn key(&mut self, key: &KeyEvent) -> FieldOutcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => FieldOutcome::Submit,
            KeyCode::Esc => FieldOutcome::Cancel,
            KeyCode::Tab => FieldOutcome::NextField,
            KeyCode::BackTab => FieldOutcome::PreviousField,
            KeyCode::Backspace => {
                self.text.pop();
                FieldOutcome::Edited
            }
            KeyCode::Char('u') if ctrl => {
                self.text.clear();
                FieldOutcome::Edited
            }
            KeyCode::Char('w') if ctrl => {
                let kept = self.text.trim_end().rfind(' ').map_or(0, |i| i + 1);
                self.text.truncate(kept);
                FieldOutcome::Edited
            }
            KeyCode::Char(_) if ctrl => FieldOutcome::Ignored,
            KeyCode::Char(c) if !c.is_control() => {
                if self.text.chars().count() < MAX_FIELD_CHARS {
                    self.text.push(c);
                }
                FieldOutcome::Edited
            }
            _ => FieldOutcome::Ignored,
        }
    }
}

/// Several fields edited together; Tab moves between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<TextField>,
    pub focus: usize,
}

impl Form {
    pub fn new(fields: Vec<TextField>) -> Form {
        Form { fields, focus: 0 }
    }

    pub fn key(&mut self, key: &KeyEvent) -> FieldOutcome {
        let count = self.fields.len().max(1);
        let Some(field) = self.fields.get_mut(self.focus) else {
            return FieldOutcome::Ignored;
        };
        let outcome = field.key(key);
        match outcome {
            FieldOutcome::NextField => self.focus = (self.focus + 1) % count,
            FieldOutcome::PreviousField => self.focus = (self.focus + count - 1) % count,
            _ => {}
        }
        outcome
    }

    pub fn value(&self, index: usize) -> &str {
        self.fields.get(index).map_or("", |f| f.text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_editing_and_form_navigation() {
        let press = |code| KeyEvent::new(code, KeyModifiers::NONE);
        let mut form = Form::new(vec![TextField::new("a", ""), TextField::new("b", "x y")]);
        for c in "hi".chars() {
            assert_eq!(form.key(&press(KeyCode::Char(c))), FieldOutcome::Edited);
        }
        form.key(&press(KeyCode::Backspace));
        assert_eq!(form.key(&press(KeyCode::Tab)), FieldOutcome::NextField);
        form.key(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!((form.value(0), form.value(1)), ("h", "x "));
        assert_eq!(
            form.key(&press(KeyCode::BackTab)),
            FieldOutcome::PreviousField
        );
        assert_eq!(form.focus, 0);
        assert_eq!(form.key(&press(KeyCode::Enter)), FieldOutcome::Submit);
    }
}
