//! `[api]`, `[slack]`, `[[notify]]`, `[nodes]` and `users[].slack_id`: a full setup loads
//! into the expected values, defaults apply, and each mistake is one `file: key: reason` line.

use std::time::Duration;

use bastion::config::{Config, NotifyKind, Principal};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";

fn users() -> String {
    format!(
        "[[users]]\nname = \"alice\"\nkeys = [\"{KEY}\"]\nslack_id = \"UALICE1\"\n\
         [[users]]\nname = \"bob\"\nkeys = [\"{KEY}\"]\ngroups = [\"security\"]\n"
    )
}

fn error(text: &str) -> String {
    match Config::parse(text, "bastion.toml") {
        Err(err) => err.to_string(),
        Ok(_) => panic!("expected an error for:\n{text}"),
    }
}

#[test]
fn a_full_setup_loads() {
    let text = format!(
        "{}[api]\nlisten = \"127.0.0.1:8080\"\nadmins = [\"alice\", \"group:security\"]\nmax_body = \"16KiB\"\n\
         [slack]\nsigning_secret = \"s3cret\"\n\
         [[notify]]\nurl = \"https://hooks.slack.com/services/T/B/X\"\nkind = \"slack\"\n\
         [[notify]]\nurl = \"https://example.webhook.office.com/x\"\nkind = \"teams\"\n\
         [nodes]\nstale_after = \"2m\"\n",
        users()
    );
    let config = Config::parse(&text, "bastion.toml").unwrap();
    let api = config.api.as_ref().unwrap();
    assert_eq!(api.listen.to_string(), "127.0.0.1:8080");
    assert!(api.tls.is_none());
    assert_eq!(api.max_body, 16 * 1024);
    assert_eq!(
        api.admins,
        [
            Principal::User("alice".into()),
            Principal::Group("security".into())
        ]
    );
    if std::env::var_os(bastion::config::SLACK_SECRET_ENV).is_none() {
        assert_eq!(config.slack.signing_secret.as_deref(), Some("s3cret"));
    }
    assert_eq!(config.notify.len(), 2);
    assert_eq!(config.notify[0].kind, NotifyKind::Slack);
    assert_eq!(config.notify[1].kind, NotifyKind::Teams);
    assert_eq!(config.nodes.stale_after, Duration::from_secs(120));
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("T/B/X"),
        "secrets stay out of Debug: {shown}"
    );
    assert_eq!(
        config.user("alice").unwrap().slack_id.as_deref(),
        Some("UALICE1")
    );
}

#[test]
fn the_api_is_off_by_default() {
    let config = Config::parse(&users(), "bastion.toml").unwrap();
    assert!(config.api.is_none());
    assert!(config.notify.is_empty());
    assert_eq!(config.nodes.stale_after, Duration::from_secs(60));
}

#[test]
fn each_mistake_is_one_line_naming_file_key_and_fix() {
    let u = users();
    let cases = [
        (
            "[api]\nlisten = \"0.0.0.0:8080\"\n".to_string(),
            "api.listen: 0.0.0.0:8080 is not a loopback address: plain HTTP would carry bearer tokens in the clear; set api.tls_cert and api.tls_key, or listen on 127.0.0.1 behind a TLS reverse proxy",
        ),
        (
            "[api]\nlisten = \"localhost:80\"\n".into(),
            "api.listen: invalid socket address \"localhost:80\" (expected ip:port, e.g. \"127.0.0.1:8080\")",
        ),
        (
            "[api]\nlisten = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"\n".into(),
            "api.tls_key: must be set together with api.tls_cert",
        ),
        (
            "[api]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n".into(),
            "api.listen: must be set to serve the API (e.g. \"127.0.0.1:8080\")",
        ),
        (
            "[api]\nlisten = \"127.0.0.1:8080\"\nmax_body = 10\n".into(),
            "api.max_body: must be between 1KiB and 16MiB (got 10 bytes)",
        ),
        (
            format!("{u}[api]\nlisten = \"127.0.0.1:8080\"\nadmins = [\"mallory\"]\n"),
            "api.admins[0]: unknown user \"mallory\": add a [[users]] entry or write group:NAME for a group",
        ),
        (
            "[api]\nlisten = \"127.0.0.1:8080\"\ntoken = \"x\"\n".into(),
            "api.token: unknown key `token`, expected one of `listen`, `tls_cert`, `tls_key`, `max_body`, `admins`",
        ),
        (
            "[[notify]]\nurl = \"https://h.example/x\"\nkind = \"discord\"\n".into(),
            "notify[0].kind: unknown kind \"discord\" (expected \"slack\" or \"teams\")",
        ),
        (
            "[[notify]]\nurl = \"https://h.example/x\"\n".into(),
            "notify[0].kind: must be set: \"slack\" or \"teams\"",
        ),
        (
            "[[notify]]\nurl = \"ftp://h.example/x\"\nkind = \"slack\"\n".into(),
            "notify[0].url: invalid webhook url \"ftp://h.example/x\" (expected https://...)",
        ),
        (
            "[[notify]]\nurl = \"http://hooks.example/x\"\nkind = \"slack\"\n".into(),
            "notify[0].url: invalid webhook url \"http://hooks.example/x\" (expected https://...)",
        ),
        (
            "[slack]\nsigning_secret = \" \"\n".into(),
            "slack.signing_secret: must not be empty",
        ),
        (
            format!("[[users]]\nname = \"a\"\nkeys = [\"{KEY}\"]\nslack_id = \"u123\"\n"),
            "users[0].slack_id: invalid Slack member id \"u123\" (expected e.g. \"U0123ABCD\")",
        ),
        (
            format!(
                "[[users]]\nname = \"a\"\nkeys = [\"{KEY}\"]\nslack_id = \"U1\"\n[[users]]\nname = \"b\"\nkeys = [\"{KEY}\"]\nslack_id = \"U1\"\n"
            ),
            "users[1].slack_id: \"U1\" is already another user's",
        ),
        (
            "[nodes]\nstale_after = \"soon\"\n".into(),
            "nodes.stale_after: invalid duration \"soon\": expected number at 0 (expected e.g. \"90s\", \"5m\", \"1h\")",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, want) in &cases {
        let got = error(text);
        let want = format!("bastion.toml: {want}");
        if got != want {
            wrong.push(format!("got  {got}\nwant {want}"));
        }
        assert!(!got.contains('\n'), "one line: {got}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
