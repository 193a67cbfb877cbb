//! The HTTP API with the real daemon, the real admin CLI and the real curl: the token
//! lifecycle, every endpoint with good and bad tokens, the workflow over HTTP (file, approve,
//! connect with ssh, list and end the session, extend, deny, revoke), bad input never a 500,
//! the audit trail naming the token, Slack's signed buttons (good, tampered, stale, replayed,
//! unmapped, self-approval: in `slack.rs`), and the server checked against its OpenAPI
//! document.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::http::{Api, Reply};
use bastion_tests::{Options, TestBed, net};

use crate::bed;

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
fn options(api_port: u16) -> Options {
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

#[test]
fn bad_input_gets_a_json_error_never_a_500() -> Result<()> {
    let (bed, api) = api_bed!();
    let alice = token(&bed, "alice", "laptop", &[])?;
    let t = Some(alice.as_str());
    let post = |body: &str| api.call("POST", "/v1/requests", t, Some(body));
    expect(
        &post(r#"{"target": "db-1", "duration": "1h", "reason": "x", "sudo": true}"#)?,
        400,
        "invalid_body",
        "an unknown field",
    )?;
    expect(
        &post(r#"{"target": 7, "duration": "1h"}"#)?,
        400,
        "invalid_body",
        "a wrong type",
    )?;
    expect(
        &post(r#"{"target": "db-1", "duration": "#)?,
        400,
        "invalid_json",
        "truncated JSON",
    )?;
    expect(
        &post(r#"{"target": "db-1", "duration": "forever", "reason": "x"}"#)?,
        400,
        "invalid_body",
        "a bad duration",
    )?;
    expect(
        &post(r#"{"target": "db-1", "duration": "9h", "reason": "x"}"#)?,
        403,
        "refused",
        "over max_duration",
    )?;
    expect(
        &post(r#"{"target": "nope", "duration": "1h", "reason": "x"}"#)?,
        404,
        "not_found",
        "an unknown target",
    )?;
    expect(&post("[]")?, 400, "invalid_body", "an array")?;
    let huge = format!(
        r#"{{"target": "db-1", "duration": "1h", "reason": "{}"}}"#,
        "x".repeat(8000)
    );
    expect(
        &post(&huge)?,
        413,
        "payload_too_large",
        "a body over max_body",
    )?;
    expect(
        &api.call_with(
            "POST",
            "/v1/requests",
            t,
            Some("target=db-1"),
            &["Content-Type: text/plain"],
        )?,
        415,
        "unsupported_media_type",
        "not JSON",
    )?;
    for path in [
        "/v1/requests/not-an-id/approve",
        "/v1/requests/r-zzzz/approve",
        "/v1/grants/abc",
        "/v1/grants/-1",
        "/v1/grants/99999999999999999999999",
        "/v1/sessions/nope/end",
        "/v1/nothing",
    ] {
        let method = if path.starts_with("/v1/grants/") {
            "DELETE"
        } else {
            "POST"
        };
        let reply = api.call(method, path, t, None)?;
        expect(&reply, 404, "not_found", path)?;
    }
    expect(
        &api.call("PUT", "/v1/requests", t, None)?,
        405,
        "method_not_allowed",
        "PUT",
    )?;
    expect(
        &api.call("GET", "/v1/requests?state=weird", t, None)?,
        400,
        "invalid_query",
        "a bad state",
    )?;
    expect(
        &api.call("GET", "/v1/sessions?limit=0", t, None)?,
        400,
        "invalid_query",
        "limit 0",
    )?;
    let carol = token(&bed, "carol", "audit", &[])?;
    expect(
        &api.call("GET", "/v1/audit?since=yesterday", Some(&carol), None)?,
        400,
        "invalid_query",
        "a bad time",
    )?;
    let health = api.call("GET", "/healthz", None, None)?;
    ensure!(
        health.status == 200 && health.body["status"] == "ok",
        "{}",
        health.text
    );
    let doc = api.call("GET", "/v1/openapi.json", None, None)?;
    ensure!(
        doc.status == 200
            && doc.body["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with('3')),
        "{}",
        doc.text
    );
    ensure!(bed.bastion.pid().is_some(), "the daemon is still running");
    Ok(())
}

#[test]
fn the_server_matches_its_openapi_document() -> Result<()> {
    let Some(st) = bastion_tests::prereq::find_tool("schemathesis")
        .or_else(|| bastion_tests::prereq::find_tool("st"))
    else {
        bastion_tests::prereq::unavailable(
            "schemathesis is not installed (tests/run installs it with pip)",
        );
        return Ok(());
    };
    let (bed, api) = api_bed!();
    // A grant to revoke and extend, so the id-taking operations meet real data.
    bed.bastion
        .grant(&bastion_tests::GrantSpec::new("sam", "db-1", "1h"))?;
    let sam = token(&bed, "sam", "schema", &[])?;
    let out = std::process::Command::new(st)
        .args(["run", &format!("{}/v1/openapi.json", api.base)])
        .args(["--checks", "all", "--max-examples", "25", "--no-color"])
        .args(["--exclude-checks", "ignored_auth,positive_data_acceptance"])
        .args(["-H", &format!("Authorization: Bearer {sam}")])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache and reports go there, not into the source tree.
        .current_dir(bed.bastion.dir())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    ensure!(
        out.status.success(),
        "schemathesis found the server and its document disagree:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn tls_is_served_with_the_configured_certificate_and_plain_http_only_on_loopback() -> Result<()> {
    if !bastion_tests::prereq::require(&["curl", "openssl"]) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=bastion-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    ensure!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = net::free_port()?;
    let mut options = options(port);
    options.extra_tables = options.extra_tables.replace(
        "max_body = \"4KiB\"",
        &format!(
            "max_body = \"4KiB\"\ntls_cert = {:?}\ntls_key = {:?}",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let bed = bed!(options);
    let https = Api {
        base: format!("https://127.0.0.1:{port}"),
        ca: Some(cert.clone()),
    };
    let health = https.call("GET", "/healthz", None, None)?;
    ensure!(
        health.status == 200 && health.body["status"] == "ok",
        "{}",
        health.text
    );
    let bob = token(&bed, "bob", "ci", &[])?;
    expect(
        &https.call("GET", "/v1/grants", Some(&bob), None)?,
        200,
        "",
        "over TLS",
    )?;
    ensure!(
        Api::new(port).call("GET", "/healthz", None, None).is_err(),
        "plain HTTP to the TLS port gets no answer"
    );

    // Plain HTTP on a non-loopback address: refused at start, naming the key.
    let config = std::fs::read_to_string(bed.bastion.dir().join("bastion.toml"))?;
    let exposed = config
        .replace(
            &format!("listen = \"127.0.0.1:{port}\""),
            "listen = \"0.0.0.0:8080\"",
        )
        .replace(
            &format!("tls_cert = {:?}\n", cert.display().to_string()),
            "",
        )
        .replace(&format!("tls_key = {:?}\n", key.display().to_string()), "");
    let file = dir.path().join("exposed.toml");
    std::fs::write(&file, exposed)?;
    let out = std::process::Command::new(bastion_tests::prereq::bastion_bin())
        .args(["serve", "--config"])
        .arg(&file)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("api.listen")
            && stderr.contains("not a loopback address"),
        "a plain-HTTP API on 0.0.0.0 is refused: {stderr}"
    );
    Ok(())
}

#[test]
fn one_source_cannot_take_every_connection() -> Result<()> {
    use std::io::Read;
    let (bed, api) = api_bed!();
    let port: u16 = api
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("api port")?;
    // 32 idle connections from this address: its share.
    let held: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = std::net::TcpStream::connect(("127.0.0.1", port))?;
    extra.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 16];
    let read = extra.read(&mut buf);
    ensure!(
        matches!(read, Ok(0))
            || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the 33rd connection from one address is closed at once"
    );
    drop(held);
    // Its places come back when it lets go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match api.call("GET", "/healthz", None, None) {
            Ok(reply) if reply.status == 200 => break,
            other => ensure!(
                Instant::now() < deadline,
                "the API serves again once the connections are closed: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = bed.bastion.stderr();
    ensure!(
        log.matches("api: connection limit reached").count() == 1,
        "one log line for the refusals:\n{log}"
    );
    Ok(())
}
