//! Webhook notifications with the real daemon: a request filed and approved over SSH reaches a
//! Slack webhook (Block Kit, Approve/Deny buttons carrying the request id, then the decision)
//! and a Teams webhook (an Adaptive Card with the approve command), as do a denial by the admin
//! command and break glass; webhooks that hang or answer 500 slow down no request and no
//! session, and their failures are logged and counted.
//! The webhooks are tiny HTTP/1.1 receivers in the test.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::webhook::{Answer, Receiver, SECRET};
use bastion_tests::{Options, TestBed};
use serde_json::Value;

use crate::bed;

const POLICY: &str = r#"
[[policies]]
name = "databases"
targets = ["db-1"]
requesters = ["group:sre"]
approvers = ["group:dba"]
approvals = 1
max_duration = "4h"
logins = ["app"]
break_glass = ["hank"]
"#;

fn options(webhooks: &[(&Receiver, &str)]) -> Options {
    options_with_api(webhooks, None)
}

/// `options`, with the HTTP API on `api_port` when given.
fn options_with_api(webhooks: &[(&Receiver, &str)], api_port: Option<u16>) -> Options {
    let mut tables = POLICY.to_string();
    if let Some(port) = api_port {
        tables.push_str(&format!("\n[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    }
    for (receiver, kind) in webhooks {
        tables.push_str(&format!(
            "\n[[notify]]\nurl = {:?}\nkind = {kind:?}\n",
            receiver.url()
        ));
    }
    Options {
        extra_tables: tables,
        groups: vec![
            ("frank".into(), vec!["sre".into()]),
            ("gina".into(), vec!["sre".into()]),
            ("hank".into(), vec!["sre".into()]),
            ("bob".into(), vec!["dba".into()]),
        ],
        ..Options::default()
    }
}

/// `ssh USER@bastion WORDS...`, which must exit 0; stdout and how long it took.
fn ssh_ok(bed: &TestBed, user: &str, words: &[&str]) -> Result<(String, Duration)> {
    let started = Instant::now();
    let out = bed.bastion.user(user).args(words.iter().copied()).run()?;
    let took = started.elapsed();
    ensure!(
        out.code() == Some(0),
        "{user}: ssh bastion {words:?} exited {:?}; stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok((out.stdout_str(), took))
}

fn request_id(text: &str) -> Result<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '(' | ')'))
        .find(|w| w.starts_with("r-") && w.len() >= 6)
        .map(str::to_string)
        .with_context(|| format!("no request id in {text:?}"))
}

/// Every string in `value`, joined: what a person could read in the message.
fn all_text(value: &Value) -> String {
    let mut out = String::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    out
}

fn buttons(message: &Value) -> Vec<Value> {
    message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn a_request_and_its_approval_reach_slack_and_teams() -> Result<()> {
    let slack = Receiver::start(Answer::Ok)?;
    let teams = Receiver::start(Answer::Ok)?;
    let bed = bed!(options(&[(&slack, "slack"), (&teams, "teams")]));

    let (filed, _) = ssh_ok(
        &bed,
        "frank",
        &[
            "request",
            "db-1",
            "--for",
            "30m",
            "--reason",
            "INC-42 <!channel> & [x](https://evil)",
        ],
    )?;
    let id = request_id(&filed)?;
    let wait = Duration::from_secs(15);
    let message = slack.wait_for("the slack message with buttons", wait, |m| {
        !buttons(m).is_empty()
    })?;
    let pair = buttons(&message);
    ensure!(
        pair.len() == 2
            && pair[0]["action_id"] == "approve"
            && pair[1]["action_id"] == "deny"
            && pair.iter().all(|b| b["value"] == id.as_str()),
        "Approve and Deny buttons carrying {id}: {pair:#?}"
    );
    let text = all_text(&message);
    for fact in ["frank", "db-1", "app", "30m", &id, "bob"] {
        ensure!(text.contains(fact), "the message names {fact}: {text}");
    }
    ensure!(
        text.contains("INC-42 &lt;!channel&gt; &amp; [x](https://evil)")
            && !text.contains("<!channel>"),
        "the reason arrives escaped for mrkdwn: {text}"
    );
    ensure!(
        message["text"].as_str().is_some_and(|t| t.contains(&id)),
        "the fallback text names the request: {message}"
    );
    let card = teams.wait_for("the teams card", wait, |m| {
        all_text(m).contains(&format!("ssh bastion approve {id}"))
    })?;
    ensure!(
        card["type"] == "message"
            && card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
            && card["attachments"][0]["content"]["type"] == "AdaptiveCard",
        "an Adaptive Card: {card:#}"
    );
    let facts = card["attachments"][0]["content"]["body"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["type"] == "FactSet")
        .cloned()
        .context("a FactSet")?;
    ensure!(
        all_text(&facts).contains("frank") && all_text(&facts).contains("30m"),
        "{facts:#}"
    );

    ssh_ok(&bed, "bob", &["approve", &id])?;
    let decided = slack.wait_for("the approval message", wait, |m| {
        let text = all_text(m);
        text.contains("approved") && text.contains(&id) && buttons(m).is_empty()
    })?;
    ensure!(
        all_text(&decided).contains("bob"),
        "the decision names the approver: {decided:#}"
    );
    teams.wait_for("the approval card", wait, |m| {
        let text = all_text(m);
        text.contains("approved") && text.contains("bob")
    })?;

    // A step taken by another process (the admin command) is posted too: the notifier reads
    // what every face writes to the database.
    let (other, _) = ssh_ok(
        &bed,
        "gina",
        &["request", "db-1", "--for", "1h", "--reason", "INC-43"],
    )?;
    let other = request_id(&other)?;
    let denied = bed.bastion.admin(&[
        "deny",
        &other,
        "--as",
        "bob",
        "--reason",
        "not during the freeze",
    ])?;
    ensure!(
        denied.code() == Some(0),
        "bastion deny --as bob: {:?} {}",
        denied.code(),
        denied.stderr_str()
    );
    let denial = slack.wait_for("the denial made by the admin command", wait, |m| {
        let text = all_text(m);
        text.contains("denied") && text.contains(&other)
    })?;
    ensure!(
        all_text(&denial).contains("not during the freeze"),
        "the denial says why: {denial:#}"
    );

    // Break glass: one message (not its filing with buttons too), asking for a review.
    ssh_ok(
        &bed,
        "hank",
        &["break-glass", "db-1", "--reason", "prod down"],
    )?;
    let glass = slack.wait_for("the break-glass message", wait, |m| {
        all_text(m).contains("BREAK GLASS")
    })?;
    let text = all_text(&glass);
    ensure!(
        text.contains("hank") && text.contains("prod down") && text.contains("ssh bastion review"),
        "who, why and how to review: {text}"
    );
    ensure!(buttons(&glass).is_empty(), "nothing to approve: {glass:#}");

    // Each event once: two filings, the approval, the denial and the break glass, nothing
    // repeated by later polls.
    std::thread::sleep(Duration::from_secs(3));
    let posts = slack.posts();
    ensure!(posts.len() == 5, "five slack posts: {posts:#?}");
    ensure!(
        posts
            .iter()
            .all(|(path, _)| path == &format!("/services/{SECRET}")),
        "posted to the configured path: {posts:#?}"
    );
    ensure!(
        teams.posts().len() == 5,
        "five teams posts: {:#?}",
        teams.posts()
    );
    let log = bed.bastion.stderr();
    ensure!(
        !log.contains("SECRET"),
        "the webhook's secret path is never logged:\n{log}"
    );
    Ok(())
}

#[test]
fn dead_webhooks_slow_nothing_down_and_their_failures_are_counted() -> Result<()> {
    let hanging = Receiver::start(Answer::Hang)?;
    let failing = Receiver::start(Answer::Fail)?;
    let working = Receiver::start(Answer::Ok)?;
    let api_port = bastion_tests::net::free_port()?;
    let bed = bed!(options_with_api(
        &[
            (&hanging, "slack"),
            (&failing, "teams"),
            (&working, "slack")
        ],
        Some(api_port)
    ));

    let mut ids = Vec::new();
    // One pending request per user and target: three requesters.
    for (i, requester) in ["frank", "gina", "hank"].into_iter().enumerate() {
        let (filed, took) = ssh_ok(
            &bed,
            requester,
            &[
                "request",
                "db-1",
                "--for",
                "1h",
                "--reason",
                &format!("INC-{i}"),
            ],
        )?;
        ensure!(
            took < Duration::from_secs(2),
            "filing answered in {took:?} with dead webhooks"
        );
        ids.push(request_id(&filed)?);
        // Let the notifier pick it up and the dead webhooks start failing.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (_, took) = ssh_ok(&bed, "bob", &["approve", &ids[0]])?;
    ensure!(
        took < Duration::from_secs(2),
        "the approval answered in {took:?} with dead webhooks"
    );
    let (out, took) = ssh_ok(&bed, "frank", &["db-1", "--", "echo reached"])?;
    ensure!(
        out == "reached\n" && took < Duration::from_secs(5),
        "a session runs as usual: {out:?} in {took:?}"
    );

    // The working webhook gets everything, in order, whatever the others do.
    for id in &ids {
        working.wait_for("each filing", Duration::from_secs(15), |m| {
            buttons(m).iter().any(|b| b["value"] == id.as_str())
        })?;
    }
    working.wait_for("the approval", Duration::from_secs(15), |m| {
        all_text(m).contains("approved") && all_text(m).contains(&ids[0])
    })?;

    // The failing webhook was retried (5 tries for the first message) and then given up;
    // the hanging one times out, is retried, and is given up too.
    let deadline = Instant::now() + Duration::from_secs(90);
    let given_up = |port: u16| {
        let log = bed.bastion.stderr();
        log.lines()
            .filter(|l| {
                l.contains("webhook delivery failed; giving up")
                    && l.contains(&format!("127.0.0.1:{port}"))
            })
            .count()
    };
    while given_up(failing.port) == 0 || given_up(hanging.port) == 0 {
        ensure!(
            Instant::now() < deadline,
            "both dead webhooks given up within 90s (failing: {}, hanging: {}); log:\n{}",
            given_up(failing.port),
            given_up(hanging.port),
            bed.bastion.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = bed.bastion.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("giving up") && l.contains(&format!("127.0.0.1:{}", failing.port)))
        .context("a give-up line")?;
    for given_up in log.lines().filter(|l| l.contains("giving up")) {
        eprintln!("{given_up}");
    }
    ensure!(
        line.contains("attempts=5") && line.contains("HTTP 500") && line.contains("failed_total="),
        "the give-up names the tries, the error and the count: {line}"
    );
    ensure!(
        log.contains("retrying in"),
        "failed tries are retried with a delay:\n{log}"
    );
    ensure!(
        failing.posts().len() >= 5,
        "the first message was tried 5 times: {} posts",
        failing.posts().len()
    );
    ensure!(!log.contains("SECRET"), "no secret path in the log:\n{log}");
    // The counts are also readable from outside, on the API's health endpoint.
    let health = bastion_tests::http::Api::new(api_port).call("GET", "/healthz", None, None)?;
    let counts = &health.body["notifications"];
    ensure!(
        counts["failed"].as_u64().is_some_and(|n| n >= 2)
            && counts["delivered"].as_u64().is_some_and(|n| n >= 1)
            && counts["retried"].as_u64().is_some_and(|n| n >= 4),
        "/healthz counts deliveries and failures: {}",
        health.text
    );
    Ok(())
}
