//! The HTTP API at its edges, with the real daemon and curl: bad input gets a JSON error and
//! never a 500, the server matches its OpenAPI document (schemathesis), TLS with a real
//! certificate, plain HTTP refused off loopback, and one source cannot take every connection.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::http::Api;
use bastion_tests::net;

use crate::api::{expect, options, token};
use crate::{api_bed, bed};

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
