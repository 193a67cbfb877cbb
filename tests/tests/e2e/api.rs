//! The HTTP API with the real daemon, the real admin CLI and the real curl: the token
//! lifecycle, every endpoint with good and bad tokens, the workflow over HTTP (file, approve,
//! connect with ssh, list and end the session, extend, deny, revoke), bad input never a 500,
//! the audit trail naming the token, Slack's signed buttons (good, tampered, stale, replayed,
//! unmapped, self-approval: in `slack.rs`); bad input, the OpenAPI check, TLS and connection
//! limits are in `api_edges.rs`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::http::{Api, Reply};
use bastion_tests::{Options, TestBed, net};

pub(crate) const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

const POLICIES: &str = r#"
[[policies]]
name = "databases"
targets = ["db-1"]
requesters = ["group:sre"]
approvers = ["group:dba"]
approvals = 1
max_duration = "4h"
logins = ["app"]

[[policies]]
name = "critical"
targets = ["db-2"]
requesters = ["group:sre"]
approvers = ["group:dba"]
approvals = 2
max_duration = "1h"
logins = ["root"]
"#;

/// alice[sre] asks; bob and carol[dba] approve; carol is an API admin; erin is nobody.
pub(crate) fn options(api_port: u16) -> Options {
    let groups = |user: &str, groups: &[&str]| {
        (
            user.to_string(),
            groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        )
    };
    Options {
        extra_tables: format!(
            "{POLICIES}\n[api]\nlisten = \"127.0.0.1:{api_port}\"\nadmins = [\"carol\", \"sam\"]\nmax_body = \"4KiB\"\n\n[slack]\nsigning_secret = \"{SLACK_SECRET}\"\n"
        ),
        groups: vec![
            groups("alice", &["sre"]),
            groups("bob", &["dba"]),
            groups("carol", &["dba"]),
            groups("erin", &[]),
            // Files and oversees: what the schema check acts as.
            groups("sam", &["sre", "dba"]),
        ],
        user_keys: vec![
            ("alice".into(), "slack_id = \"UALICE\"".into()),
            ("bob".into(), "slack_id = \"UBOB\"".into()),
        ],
        ..Options::default()
    }
}

pub(crate) fn start() -> Result<Option<(TestBed, Api)>> {
    if !bastion_tests::prereq::require(&["curl"]) {
        return Ok(None);
    }
    let port = net::free_port()?;
    match TestBed::start(options(port))? {
        Some(bed) => Ok(Some((bed, Api::new(port)))),
        None => Ok(None),
    }
}

#[macro_export]
macro_rules! api_bed {
    () => {
        match $crate::api::start()? {
            Some(pair) => pair,
            None => return Ok(()),
        }
    };
}

/// `bastion token create --user USER --name NAME [ARGS]`: the token it printed.
pub(crate) fn token(bed: &TestBed, user: &str, name: &str, args: &[&str]) -> Result<String> {
    let mut words = vec!["token", "create", "--user", user, "--name", name];
    words.extend_from_slice(args);
    let out = bed.bastion.admin(&words)?;
    ensure!(
        out.status.success(),
        "token create failed: {}",
        out.stderr_str()
    );
    let stdout = out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(
        lines.len() == 1 && lines[0].starts_with("bst_"),
        "token create prints the token alone on stdout: {stdout:?}"
    );
    Ok(lines[0].to_string())
}

pub(crate) fn expect(reply: &Reply, status: u16, code: &str, what: &str) -> Result<()> {
    ensure!(
        reply.status == status && (code.is_empty() || reply.code() == code),
        "{what}: expected {status} {code}, got {} {}",
        reply.status,
        reply.text
    );
    if status >= 400 {
        ensure!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: an error has a message: {}",
            reply.text
        );
    }
    Ok(())
}

#[test]
fn tokens_are_shown_once_stored_hashed_listed_and_revoked() -> Result<()> {
    let (bed, api) = api_bed!();
    let ci = token(&bed, "bob", "ci", &["--for", "90d"])?;
    expect(
        &api.call("GET", "/v1/grants", Some(&ci), None)?,
        200,
        "",
        "a fresh token",
    )?;

    // The database keeps a hash only.
    let db = bed.bastion.data_dir().join("bastion.db");
    let stored = std::fs::read(&db).context("reading the SQLite file")?;
    ensure!(
        !String::from_utf8_lossy(&stored).contains(&ci),
        "the token itself is not in the database"
    );
    let listed = bed
        .bastion
        .admin(&["token", "list", "--json"])?
        .stdout_str();
    ensure!(
        listed.contains("\"name\":\"ci\"")
            && listed.contains("\"user\":\"bob\"")
            && listed.contains("\"state\":\"active\"")
            && !listed.contains(&ci),
        "token list shows the token but never its secret: {listed}"
    );

    // No token, a malformed header, an unknown token: 401 with a JSON body.
    expect(
        &api.call("GET", "/v1/grants", None, None)?,
        401,
        "unauthorized",
        "no token",
    )?;
    let forged = format!("bst_{}", "A".repeat(43));
    expect(
        &api.call("GET", "/v1/grants", Some(&forged), None)?,
        401,
        "unauthorized",
        "an unknown token",
    )?;
    let basic = api.call_with(
        "GET",
        "/v1/grants",
        None,
        None,
        &["Authorization: Basic Ym9iOmJvYg=="],
    )?;
    expect(&basic, 401, "unauthorized", "basic auth")?;
    ensure!(
        basic
            .headers
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "401 says how to authenticate: {}",
        basic.headers
    );

    // Revoked: 401 from then on; revoking again says so.
    let revoked = bed.bastion.admin(&["token", "revoke", "ci"])?;
    ensure!(revoked.status.success(), "{}", revoked.stderr_str());
    let reply = api.call("GET", "/v1/grants", Some(&ci), None)?;
    expect(&reply, 401, "unauthorized", "a revoked token")?;
    ensure!(reply.text.contains("revoked"), "{}", reply.text);

    // Expired: 401.
    let short = token(&bed, "bob", "short", &["--for", "1s"])?;
    std::thread::sleep(Duration::from_millis(1500));
    let reply = api.call("GET", "/v1/grants", Some(&short), None)?;
    expect(&reply, 401, "unauthorized", "an expired token")?;
    ensure!(reply.text.contains("expired"), "{}", reply.text);

    // A token for nobody is refused at creation.
    let nobody = bed
        .bastion
        .admin(&["token", "create", "--user", "mallory"])?;
    ensure!(
        !nobody.status.success() && nobody.stderr_str().contains("unknown user"),
        "{}",
        nobody.stderr_str()
    );
    // Both events are in the audit trail, without the secret.
    let audit = std::fs::read_to_string(bed.bastion.audit_log())?;
    ensure!(
        audit.contains("\"event\":\"token.created\"")
            && audit.contains("\"event\":\"token.revoked\"")
            && !audit.contains(&ci),
        "token events audited, secret never: {audit}"
    );
    Ok(())
}

#[test]
fn the_workflow_over_http_with_rights_checked_and_every_action_audited() -> Result<()> {
    let (bed, api) = api_bed!();
    let alice = token(&bed, "alice", "laptop", &[])?;
    let bob = token(&bed, "bob", "ci", &[])?;
    let carol = token(&bed, "carol", "audit", &[])?;
    let erin = token(&bed, "erin", "x", &[])?;

    let filed = api.call(
        "POST",
        "/v1/requests",
        Some(&alice),
        Some(r#"{"target": "db-1", "duration": "1h", "reason": "INC-7 replica lag"}"#),
    )?;
    expect(&filed, 201, "", "filing")?;
    let id = filed.body["id"]
        .as_str()
        .context("id at the top level")?
        .to_string();
    ensure!(filed.body["state"] == "pending", "{}", filed.text);
    ensure!(
        filed.body["user"] == "alice" && filed.body["target"] == "db-1",
        "{}",
        filed.text
    );

    // Pending lists: bob (an approver) and alice (the requester) see it; erin does not.
    let listed = api.call("GET", "/v1/requests?state=pending", Some(&bob), None)?;
    expect(&listed, 200, "", "bob's pending list")?;
    ensure!(listed.text.contains(&id), "{}", listed.text);
    let listed = api.call("GET", "/v1/requests?state=pending", Some(&erin), None)?;
    ensure!(
        !listed.text.contains(&id),
        "erin sees nothing: {}",
        listed.text
    );

    // Rights: self-approval and a non-approver get 403; nothing changes.
    expect(
        &api.call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            Some(&alice),
            None,
        )?,
        403,
        "forbidden",
        "self-approval",
    )?;
    expect(
        &api.call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            Some(&erin),
            None,
        )?,
        403,
        "forbidden",
        "a non-approver",
    )?;
    let approved = api.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        Some(&bob),
        Some(r#"{"comment": "go"}"#),
    )?;
    expect(&approved, 200, "", "bob approves")?;
    ensure!(
        approved.body["outcome"] == "granted" && approved.body["state"] == "approved",
        "{}",
        approved.text
    );
    let grant = approved.body["grant"].as_i64().context("grant id")?;
    expect(
        &api.call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            Some(&carol),
            None,
        )?,
        409,
        "conflict",
        "approving a decided request",
    )?;

    // The grant works with ssh; the session is listed (for the approver too) and ended.
    let mut session = bed
        .bastion
        .user("alice")
        .args(["app@db-1", "--", "sleep 120"])
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let session_id = loop {
        let live = api.call("GET", "/v1/sessions?live=true", Some(&bob), None)?;
        expect(&live, 200, "", "live sessions")?;
        if let Some(id) = live.body["sessions"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s["id"].as_str())
        {
            break id.to_string();
        }
        ensure!(
            Instant::now() < deadline,
            "the session never showed up: {}",
            live.text
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let erins = api.call("GET", "/v1/sessions?live=true", Some(&erin), None)?;
    ensure!(
        !erins.text.contains(&session_id),
        "erin sees no one's session: {}",
        erins.text
    );
    expect(
        &api.call(
            "POST",
            &format!("/v1/sessions/{session_id}/end"),
            Some(&erin),
            None,
        )?,
        404,
        "not_found",
        "erin ending alice's session",
    )?;
    let ended = api.call(
        "POST",
        &format!("/v1/sessions/{session_id}/end"),
        Some(&bob),
        None,
    )?;
    expect(&ended, 202, "", "bob ends the session")?;
    ensure!(ended.body["state"] == "ending", "{}", ended.text);
    let started = Instant::now();
    let status = session.wait()?;
    ensure!(
        started.elapsed() < Duration::from_secs(10) && !status.success(),
        "the session ended on request ({status}, {:?})",
        started.elapsed()
    );

    // Extension: alice asks, bob denies with a reason; then bob revokes.
    let extension = api.call(
        "POST",
        &format!("/v1/grants/{grant}/extend"),
        Some(&alice),
        Some(r#"{"duration": "30m", "reason": "still digging"}"#),
    )?;
    expect(&extension, 201, "", "extension")?;
    ensure!(extension.body["kind"] == "extend", "{}", extension.text);
    let ext_id = extension.body["id"].as_str().context("extension id")?;
    expect(
        &api.call(
            "POST",
            &format!("/v1/grants/{grant}/extend"),
            Some(&bob),
            Some(r#"{"duration": "30m"}"#),
        )?,
        403,
        "forbidden",
        "extending someone else's grant",
    )?;
    let denied = api.call(
        "POST",
        &format!("/v1/requests/{ext_id}/deny"),
        Some(&bob),
        Some(r#"{"reason": "hand over to the day shift"}"#),
    )?;
    expect(&denied, 200, "", "deny")?;
    ensure!(denied.body["state"] == "denied", "{}", denied.text);

    let grants = api.call("GET", "/v1/grants?active=true", Some(&alice), None)?;
    ensure!(
        grants.text.contains(&format!("\"id\":{grant}")),
        "{}",
        grants.text
    );
    expect(
        &api.call("DELETE", &format!("/v1/grants/{grant}"), Some(&erin), None)?,
        404,
        "not_found",
        "erin revoking",
    )?;
    let revoked = api.call("DELETE", &format!("/v1/grants/{grant}"), Some(&bob), None)?;
    expect(&revoked, 200, "", "bob revokes")?;
    ensure!(
        revoked.body["revoked_now"] == true && revoked.body["status"] == "revoked",
        "{}",
        revoked.text
    );
    let again = api.call("DELETE", &format!("/v1/grants/{grant}"), Some(&bob), None)?;
    ensure!(
        again.status == 200 && again.body["revoked_now"] == false,
        "{}",
        again.text
    );

    // The audit trail: admins only; it names the token of each action.
    expect(
        &api.call("GET", "/v1/audit", Some(&bob), None)?,
        403,
        "forbidden",
        "bob reading the audit",
    )?;
    let since = "2000-01-01T00:00:00Z";
    let audit = api.call(
        "GET",
        &format!("/v1/audit?since={since}&limit=5000"),
        Some(&carol),
        None,
    )?;
    expect(&audit, 200, "", "carol reads the audit")?;
    let events = audit.body["events"].as_array().context("events")?;
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .with_context(|| format!("no {name} in {}", audit.text))
    };
    ensure!(
        find("request.filed")?["client"]
            .as_str()
            .is_some_and(|c| c.contains("api token laptop"))
    );
    ensure!(
        find("request.approval")?["client"]
            .as_str()
            .is_some_and(|c| c.contains("api token ci"))
    );
    ensure!(
        find("request.denied")?["client"]
            .as_str()
            .is_some_and(|c| c.contains("api token ci"))
    );
    let revoke = find("grant.revoked")?;
    ensure!(
        revoke["by"] == "bob"
            && revoke["client"]
                .as_str()
                .is_some_and(|c| c.contains("api token ci"))
    );
    ensure!(
        find("session.end_requested")?["client"]
            .as_str()
            .is_some_and(|c| c.contains("api token ci"))
    );
    // Paging: a page of one gives a cursor that leads on.
    let first = api.call("GET", "/v1/audit?limit=1", Some(&carol), None)?;
    let next = first.body["next"].as_str().context("a next cursor")?;
    let second = api.call(
        "GET",
        &format!("/v1/audit?limit=1&after={next}"),
        Some(&carol),
        None,
    )?;
    ensure!(
        second.status == 200 && second.body["events"][0] != first.body["events"][0],
        "{}",
        second.text
    );
    Ok(())
}
