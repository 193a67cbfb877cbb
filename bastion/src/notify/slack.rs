//! Slack incoming-webhook messages (Block Kit): the facts of a request, Approve/Deny buttons on
//! a pending one, the outcome of a decision; and [`slack_outcome`], the message that replaces
//! the buttons once somebody decided from Slack.
//!
//! The buttons are a contract with the API's `/v1/slack/interactions` endpoint: `action_id`
//! is `approve` or `deny` and `value` is the request id. Every string a person chose (reasons
//! above all) is escaped for mrkdwn (`&`, `<`, `>`: otherwise `<!channel>` or a disguised link
//! would be Slack markup) and has its control characters made visible.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::notice::{Notice, Step};

/// The button `action_id` that approves the request named by the button's `value`.
pub const APPROVE_ACTION: &str = "approve";
/// The button `action_id` that denies the request named by the button's `value`.
pub const DENY_ACTION: &str = "deny";

/// Characters of a reason kept in a message (a field holds at most 2000).
const MAX_REASON: usize = 1000;
/// Characters of any other name or note kept in a message.
const MAX_NAME: usize = 200;

/// The webhook message for `notice`. `slack_ids` maps bastion user names to Slack member ids
/// (`users[].slack_id`), so approvers are mentioned and notified by Slack itself.
pub fn message(notice: &Notice, slack_ids: &HashMap<String, String>) -> Value {
    let id = &notice.request;
    let mut blocks = vec![section(&headline(notice))];
    let fields = facts(notice, slack_ids);
    if !fields.is_empty() {
        blocks.push(json!({
            "type": "section",
            "fields": fields
                .iter()
                .map(|(title, value)| json!({"type": "mrkdwn", "text": format!("*{title}*\n{value}")}))
                .collect::<Vec<_>>(),
        }));
    }
    if let Some(reason) = notice.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        blocks.push(section(&format!(
            "*Reason*\n>{}",
            escape_clipped(reason, MAX_REASON)
        )));
    }
    let code = escape(id);
    match notice.step {
        Step::Filed if notice.pending => {
            blocks.push(json!({
                "type": "actions",
                "block_id": format!("request:{id}"),
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE_ACTION,
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                        "value": id,
                    },
                    {
                        "type": "button",
                        "action_id": DENY_ACTION,
                        "text": {"type": "plain_text", "text": "Deny"},
                        "style": "danger",
                        "value": id,
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Deny this request?"},
                            "text": {"type": "mrkdwn", "text": format!("`{code}` ends at once; the requester is told.")},
                            "confirm": {"type": "plain_text", "text": "Deny"},
                            "deny": {"type": "plain_text", "text": "Keep it"},
                        },
                    },
                ],
            }));
            blocks.push(context(&format!(
                "From a terminal: `ssh bastion approve {code}` or `ssh bastion deny {code} --reason '...'`"
            )));
        }
        Step::Filed => blocks.push(context(&format!(
            "`{code}` was decided before this message was sent: `ssh bastion requests` shows it."
        ))),
        Step::BreakGlass => {
            let review = match notice.grant {
                Some(grant) => format!("`ssh bastion review {grant} --comment '...'`"),
                None => "`ssh bastion reviews`".to_string(),
            };
            blocks.push(context(&format!(
                "An approver must review this access: {review}"
            )));
        }
        _ => blocks.push(context(&format!("Request `{code}`"))),
    }
    json!({
        "text": escape(&notice.summary()),
        "blocks": blocks,
    })
}

/// The message the Slack interaction endpoint posts to an interaction's `response_url` after
/// a decision: it replaces the original (and its buttons) with `line`, the outcome as the
/// approver should read it, for request `request`.
pub fn slack_outcome(request: &str, line: &str) -> Value {
    let line = escape_clipped(line, MAX_REASON);
    json!({
        "replace_original": true,
        "text": line,
        "blocks": [
            section(&line),
            context(&format!("Request `{}`", escape_clipped(request, MAX_NAME))),
        ],
    })
}

/// The first line, in mrkdwn: what happened, to whom, where.
fn headline(notice: &Notice) -> String {
    let user = format!("*{}*", escape_clipped(&notice.user, MAX_NAME));
    let target = format!("*{}*", escape_clipped(&notice.target, MAX_NAME));
    let id = format!("`{}`", escape_clipped(&notice.request, MAX_NAME));
    let by = notice
        .by
        .as_deref()
        .map(|by| escape_clipped(by, MAX_NAME))
        .unwrap_or_default();
    let what = if notice.is_extension() {
        format!("more time on {target}")
    } else {
        format!("access to {target}")
    };
    match notice.step {
        Step::Filed => format!(":key: {user} asks for {what} ({id})"),
        Step::Approved => format!(":white_check_mark: {id} *approved* by {by}: {user} has {what}"),
        Step::AutoApproved => {
            format!(":white_check_mark: {id} *auto-approved* ({by}): {user} has {what}")
        }
        Step::Denied => {
            let why = notice
                .note
                .as_deref()
                .map(|n| format!(": {}", escape_clipped(n, MAX_REASON)))
                .unwrap_or_default();
            format!(":no_entry: {id} *denied* by {by}{why} ({user}, {what})")
        }
        Step::Cancelled => format!(":heavy_minus_sign: {id} *cancelled* by {user} ({what})"),
        Step::Expired => {
            let why = notice
                .note
                .as_deref()
                .map(|n| format!(": {}", escape_clipped(n, MAX_REASON)))
                .unwrap_or_default();
            format!(":hourglass: {id} *expired*{why} ({user}, {what})")
        }
        Step::BreakGlass => format!(
            ":rotating_light: *BREAK GLASS*: {user} took access to {target} without approval ({id})"
        ),
    }
}

/// The facts as (title, mrkdwn value) pairs, only those the notice has.
fn facts(notice: &Notice, slack_ids: &HashMap<String, String>) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if notice.step == Step::Filed || notice.step == Step::BreakGlass || notice.duration.is_some() {
        facts.push(("Requester", escape_clipped(&notice.user, MAX_NAME)));
        facts.push(("Target", escape_clipped(&notice.target, MAX_NAME)));
    }
    if !notice.logins.is_empty() {
        let title = if notice.logins.len() == 1 {
            "Login"
        } else {
            "Logins"
        };
        facts.push((title, escape_clipped(&notice.logins.join(", "), MAX_NAME)));
    }
    if let Some(duration) = &notice.duration {
        let title = if notice.is_extension() {
            "Extra time"
        } else {
            "Duration"
        };
        facts.push((title, escape_clipped(duration, MAX_NAME)));
    }
    if let Some(expires_at) = &notice.expires_at {
        facts.push(("Until", escape_clipped(expires_at, MAX_NAME)));
    }
    if let Some(policy) = &notice.policy {
        facts.push(("Policy", escape_clipped(policy, MAX_NAME)));
    }
    if let Some(grant) = notice.grant {
        facts.push(("Grant", grant.to_string()));
    }
    facts.push((
        "Request",
        format!("`{}`", escape_clipped(&notice.request, MAX_NAME)),
    ));
    if notice.step == Step::Filed
        && let Some(needed) = notice.approvals_needed
    {
        let approvers = notice
            .approvers
            .iter()
            .map(|name| mention(name, slack_ids))
            .collect::<Vec<_>>()
            .join(", ");
        let of = if approvers.is_empty() {
            String::new()
        } else {
            format!(" of: {approvers}")
        };
        facts.push(("Approvals needed", format!("{needed}{of}")));
    }
    facts
}

/// `<@U123>` for a user with a plausible Slack member id, else the escaped name.
fn mention(name: &str, slack_ids: &HashMap<String, String>) -> String {
    match slack_ids.get(name) {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            format!("<@{id}>")
        }
        _ => escape_clipped(name, MAX_NAME),
    }
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

/// `text` safe inside mrkdwn: control characters made visible, `&`, `<` and `>` as entities
/// (the three characters Slack asks senders to escape).
pub fn escape(text: &str) -> String {
    let text = crate::text::escape_controls(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// [`escape`] of at most `max` characters of `text`, cut ones ending in `…`.
fn escape_clipped(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return escape(text);
    }
    let head: String = text.chars().take(max).collect();
    format!("{}…", escape(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filed(reason: &str) -> Notice {
        Notice::from_audit(
            &json!({
                "event": "request.filed", "request": "r-7f3k", "kind": "access",
                "user": "frank", "target": "db-1", "logins": ["app"], "duration": "30m",
                "reason": reason, "policy": "databases", "approvals_needed": 1,
                "approvers": ["bob", "carol"], "client": "c",
            })
            .to_string(),
        )
        .unwrap()
    }

    fn texts(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
            Value::Object(map) => map.values().for_each(|v| texts(v, out)),
            _ => {}
        }
    }

    #[test]
    fn a_pending_request_has_approve_and_deny_buttons_carrying_its_id() {
        let slack_ids = HashMap::from([("bob".to_string(), "U0BOB".to_string())]);
        let message = message(&filed("INC-42 disk full"), &slack_ids);
        let text = serde_json::to_string(&message).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, message);
        let actions = message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("an actions block");
        let buttons = actions["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["action_id"], "approve");
        assert_eq!(buttons[0]["value"], "r-7f3k");
        assert_eq!(buttons[1]["action_id"], "deny");
        assert_eq!(buttons[1]["value"], "r-7f3k");
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .contains("frank asks for access to db-1")
        );
        let fields = serde_json::to_string(&message["blocks"][1]).unwrap();
        for fact in [
            "frank",
            "db-1",
            "app",
            "30m",
            "r-7f3k",
            "databases",
            "<@U0BOB>, carol",
        ] {
            assert!(fields.contains(fact), "{fact} in {fields}");
        }
        assert!(text.contains("INC-42 disk full"));
        assert!(text.contains("ssh bastion approve r-7f3k"));
    }

    #[test]
    fn markup_and_control_characters_in_a_reason_are_escaped() {
        let message = message(
            &filed("<!channel> & <https://evil|click> \x1b[31mred\nline"),
            &HashMap::new(),
        );
        let mut all = Vec::new();
        texts(&message, &mut all);
        let reason = all
            .iter()
            .find(|t| t.starts_with("*Reason*"))
            .expect("a reason block");
        assert_eq!(
            reason,
            "*Reason*\n>&lt;!channel&gt; &amp; &lt;https://evil|click&gt; \\x1b[31mred\\nline"
        );
        for text in &all {
            assert!(
                !text.contains("<!channel>") && !text.contains('\x1b'),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_decided_request_gets_no_buttons() {
        let mut notice = filed("x");
        notice.pending = false;
        let decided = message(&notice, &HashMap::new());
        let denied = Notice::from_audit(
            r#"{"event":"request.denied","request":"r-7f3k","user":"frank","target":"db-1",
                "by":"bob","reason":"freeze <now>","client":"c"}"#,
        )
        .unwrap();
        let denied = message(&denied, &HashMap::new());
        for message in [&decided, &denied] {
            assert!(
                message["blocks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|b| b["type"] != "actions"),
                "{message}"
            );
        }
        let headline = denied["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            headline.contains("*denied* by bob: freeze &lt;now&gt;"),
            "{headline}"
        );
    }

    #[test]
    fn the_outcome_replaces_the_original() {
        let outcome = slack_outcome("r-7f3k", "approved by <@U1> & bob");
        assert_eq!(outcome["replace_original"], true);
        assert_eq!(outcome["text"], "approved by &lt;@U1&gt; &amp; bob");
        let blocks = outcome["blocks"].as_array().unwrap();
        assert!(blocks.iter().all(|b| b["type"] != "actions"));
        assert!(
            blocks[1]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("`r-7f3k`")
        );
    }
}
