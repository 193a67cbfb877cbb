//! Microsoft Teams webhook messages: an Adaptive Card (1.4) with the request's facts and, for a
//! pending request, the commands that approve or deny it (Teams cards have no buttons that
//! reach the bastion).
//!
//! Card text is a Markdown subset: every string a person chose has its control characters
//! made visible and Markdown's punctuation backslash-escaped, so a reason cannot become a
//! link, a heading or emphasis.

use serde_json::{Value, json};

use super::notice::{Notice, Step};

/// Characters of a reason kept in a card.
const MAX_REASON: usize = 1000;
/// Characters of any other name or note kept in a card.
const MAX_NAME: usize = 200;

/// The webhook message for `notice`.
pub fn message(notice: &Notice) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": escape(&notice.summary(), MAX_REASON),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
    })];
    if let Some(note) = &notice.note {
        body.push(json!({"type": "TextBlock", "text": escape(note, MAX_REASON), "wrap": true}));
    }
    body.push(json!({
        "type": "FactSet",
        "facts": facts(notice)
            .into_iter()
            .map(|(title, value)| json!({"title": title, "value": value}))
            .collect::<Vec<_>>(),
    }));
    let id = request_id(notice);
    let hint = match notice.step {
        Step::Filed if notice.pending => Some(format!(
            "Approve: `ssh bastion approve {id}`  \nDeny: `ssh bastion deny {id} --reason '...'`"
        )),
        Step::BreakGlass => Some(match notice.grant {
            Some(grant) => format!("Review: `ssh bastion review {grant} --comment '...'`"),
            None => "Review: `ssh bastion reviews`".to_string(),
        }),
        _ => None,
    };
    if let Some(hint) = hint {
        body.push(json!({"type": "TextBlock", "text": hint, "wrap": true}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

fn facts(notice: &Notice) -> Vec<(&'static str, String)> {
    let mut facts = vec![
        ("Requester", escape(&notice.user, MAX_NAME)),
        ("Target", escape(&notice.target, MAX_NAME)),
    ];
    if !notice.logins.is_empty() {
        facts.push(("Login", escape(&notice.logins.join(", "), MAX_NAME)));
    }
    if let Some(duration) = &notice.duration {
        facts.push(("Duration", escape(duration, MAX_NAME)));
    }
    if let Some(expires_at) = &notice.expires_at {
        facts.push(("Until", escape(expires_at, MAX_NAME)));
    }
    if let Some(reason) = notice.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        facts.push(("Reason", escape(reason, MAX_REASON)));
    }
    if let Some(policy) = &notice.policy {
        facts.push(("Policy", escape(policy, MAX_NAME)));
    }
    if let Some(by) = &notice.by {
        facts.push(("Decided by", escape(by, MAX_NAME)));
    }
    if let Some(grant) = notice.grant {
        facts.push(("Grant", grant.to_string()));
    }
    facts.push(("Request", escape(&notice.request, MAX_NAME)));
    if notice.step == Step::Filed
        && let Some(needed) = notice.approvals_needed
    {
        let of = if notice.approvers.is_empty() {
            String::new()
        } else {
            format!(" of: {}", escape(&notice.approvers.join(", "), MAX_NAME))
        };
        facts.push(("Approvals needed", format!("{needed}{of}")));
    }
    facts
}

/// At most `max` characters of `text` (cut ones end in `…`), control characters made visible
/// and the punctuation of card Markdown (emphasis, links, code, a list marker at the start)
/// backslash-escaped.
fn escape(text: &str, max: usize) -> String {
    let clipped: String = text.chars().take(max).collect();
    let visible = crate::text::escape_controls(&clipped);
    // A list marker only counts at the start: `- x`, `+ x`, `12. x`.
    let digits = visible.chars().take_while(char::is_ascii_digit).count();
    let marker = match visible.chars().next() {
        Some('-' | '+') => Some(0),
        Some(c) if c.is_ascii_digit() && visible.chars().nth(digits) == Some('.') => Some(digits),
        _ => None,
    };
    let mut out = String::with_capacity(visible.len() + 8);
    for (i, c) in visible.chars().enumerate() {
        if marker == Some(i)
            || matches!(
                c,
                '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '<' | '>' | '|' | '~'
            )
        {
            out.push('\\');
        }
        out.push(c);
    }
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The request id as it goes into a command in a code span, where backslashes would be shown:
/// whole when it is a well-formed id (it then holds no Markdown), escaped otherwise.
fn request_id(notice: &Notice) -> String {
    if crate::db::is_request_id(&notice.request) {
        notice.request.clone()
    } else {
        escape(&notice.request, MAX_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_with_the_facts_and_the_approve_command() {
        let notice = Notice::from_audit(
            r#"{"event":"request.filed","request":"r-7f3k","kind":"access","user":"frank",
                "target":"db-1","logins":["app"],"duration":"30m",
                "reason":"[click](https://evil) **now**\u001b[2J","policy":"databases",
                "approvals_needed":1,"approvers":["bob"],"client":"c"}"#,
        )
        .unwrap();
        let message = message(&notice);
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), message);
        assert_eq!(message["type"], "message");
        let attachment = &message["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        let body = card["body"].as_array().unwrap();
        let facts = body.iter().find(|b| b["type"] == "FactSet").unwrap()["facts"]
            .as_array()
            .unwrap();
        let fact = |title: &str| {
            facts
                .iter()
                .find(|f| f["title"] == title)
                .map(|f| f["value"].as_str().unwrap().to_string())
        };
        assert_eq!(fact("Requester").as_deref(), Some("frank"));
        assert_eq!(fact("Target").as_deref(), Some("db-1"));
        assert_eq!(fact("Duration").as_deref(), Some("30m"));
        assert_eq!(
            fact("Reason").as_deref(),
            Some("\\[click\\]\\(https://evil\\) \\*\\*now\\*\\*\\\\x1b\\[2J")
        );
        let last = body.last().unwrap()["text"].as_str().unwrap();
        assert!(last.contains("`ssh bastion approve r-7f3k`"), "{last}");
    }

    #[test]
    fn list_markers_count_only_at_the_start() {
        assert_eq!(escape("- not a list", 100), "\\- not a list");
        assert_eq!(escape("12. not a list", 100), "12\\. not a list");
        assert_eq!(escape("db-1 at 12.5", 100), "db-1 at 12.5");
        assert_eq!(escape("abcdef", 3), "abc…");
    }

    #[test]
    fn a_decision_has_no_commands() {
        let notice = Notice::from_audit(
            r#"{"event":"request.approved","request":"r-7f3k","user":"frank",
                "target":"db-1","approved_by":"bob","grant":7}"#,
        )
        .unwrap();
        let text = serde_json::to_string(&message(&notice)).unwrap();
        assert!(text.contains("approved"), "{text}");
        assert!(!text.contains("ssh bastion approve"), "{text}");
    }
}
