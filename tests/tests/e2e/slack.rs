//! Slack's interactive buttons against the real daemon: a request filed over the API is
//! approved by a signed interaction delivered to `/v1/slack/interactions`, through the same
//! policy as every other face; tampered bodies, stale timestamps, replays, unmapped Slack
//! users and self-approval change nothing.

use anyhow::{Context, Result, ensure};
use bastion_tests::http::{Api, Reply};
use bastion_tests::webhook::{Answer, Receiver};
use std::time::Duration;

use crate::api::{SLACK_SECRET, expect, token};
use crate::api_bed;

/// A signed Slack delivery of a button click by `slack_user` on request `id`.
fn slack(
    api: &Api,
    slack_user: &str,
    action: &str,
    id: &str,
    response_url: &str,
    at: i64,
    forgery: Forgery,
) -> Result<Reply> {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": { "id": slack_user, "username": "someone" },
        "actions": [{ "action_id": action, "value": id, "type": "button" }],
        "response_url": response_url,
    });
    let body: String = url_encode_form(&payload.to_string());
    let timestamp = at.to_string();
    let mut signature = bastion::api::slack_signature(SLACK_SECRET, &timestamp, body.as_bytes());
    let mut sent = body;
    match forgery {
        Forgery::None => {}
        Forgery::TamperedBody => sent = sent.replace(action, "approve") + "&x=1",
        // The same tag, spelled in capitals: hex does not care, a replay guard must not either.
        Forgery::UpperCaseTag => signature = format!("v0={}", signature[3..].to_uppercase()),
    }
    api.call_with(
        "POST",
        "/v1/slack/interactions",
        None,
        Some(&sent),
        &[
            "Content-Type: application/x-www-form-urlencoded",
            &format!("X-Slack-Request-Timestamp: {timestamp}"),
            &format!("X-Slack-Signature: {signature}"),
        ],
    )
}

/// What a delivery does wrong, if anything.
#[derive(Clone, Copy)]
enum Forgery {
    None,
    TamperedBody,
    UpperCaseTag,
}

fn url_encode_form(payload: &str) -> String {
    let mut out = String::from("payload=");
    for byte in payload.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[test]
fn slack_buttons_approve_through_the_same_policy_and_refuse_forgeries() -> Result<()> {
    let (bed, api) = api_bed!();
    let alice = token(&bed, "alice", "laptop", &[])?;
    let filed = api.call(
        "POST",
        "/v1/requests",
        Some(&alice),
        Some(r#"{"target": "db-1", "duration": "1h", "reason": "INC-9"}"#),
    )?;
    expect(&filed, 201, "", "filing")?;
    let id = filed.body["id"].as_str().context("id")?.to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Slack's response_url: the daemon posts each reply there too.
    let slack_side = Receiver::start(Answer::Ok)?;
    let url = format!("http://127.0.0.1:{}/actions/T1/B2/secret", slack_side.port);
    let pending = || -> Result<bool> {
        let r = api.call("GET", &format!("/v1/requests/{id}"), Some(&alice), None)?;
        Ok(r.body["state"] == "pending")
    };

    expect(
        &slack(
            &api,
            "UBOB",
            "approve",
            &id,
            &url,
            now,
            Forgery::TamperedBody,
        )?,
        401,
        "bad_signature",
        "a tampered body",
    )?;
    expect(
        &slack(&api, "UBOB", "approve", &id, &url, now - 600, Forgery::None)?,
        401,
        "stale_timestamp",
        "a stale timestamp",
    )?;
    let unmapped = slack(&api, "UNOBODY", "approve", &id, &url, now, Forgery::None)?;
    ensure!(
        unmapped.status == 200
            && unmapped.body["response_type"] == "ephemeral"
            && unmapped.text.contains("not linked"),
        "an unmapped Slack user gets an ephemeral explanation: {}",
        unmapped.text
    );
    let own = slack(&api, "UALICE", "approve", &id, &url, now + 1, Forgery::None)?;
    ensure!(
        own.status == 200
            && own.body["response_type"] == "ephemeral"
            && own.text.contains("self-approval"),
        "self-approval from Slack is refused the same way: {}",
        own.text
    );
    ensure!(pending()?, "nothing changed so far");

    let approved = slack(&api, "UBOB", "approve", &id, &url, now + 2, Forgery::None)?;
    ensure!(
        approved.status == 200
            && approved.body["replace_original"] == true
            && approved.text.contains("Approved by bob"),
        "the message is replaced with the outcome: {}",
        approved.text
    );
    ensure!(!pending()?, "the request is approved");
    // The message in the channel is replaced through the response_url.
    slack_side.wait_for("the replaced message", Duration::from_secs(5), |body| {
        body["replace_original"] == true && body.to_string().contains("Approved by bob")
    })?;
    ensure!(
        slack_side
            .posts()
            .iter()
            .any(|(_, body)| body["response_type"] == "ephemeral"
                && body.to_string().contains("not linked")),
        "the unmapped user's explanation went to the response_url too"
    );
    let replay = slack(&api, "UBOB", "approve", &id, &url, now + 2, Forgery::None)?;
    expect(&replay, 401, "replayed", "a replay")?;
    let respelled = slack(
        &api,
        "UBOB",
        "approve",
        &id,
        &url,
        now + 2,
        Forgery::UpperCaseTag,
    )?;
    expect(
        &respelled,
        401,
        "replayed",
        "a replay with the tag in capitals",
    )?;
    let audit = std::fs::read_to_string(bed.bastion.audit_log())?;
    ensure!(
        audit.contains("slack user UBOB"),
        "the approval names Slack: {audit}"
    );
    Ok(())
}
