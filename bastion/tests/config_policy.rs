//! `users[].groups` and `[[policies]]`: a full policy loads into the expected structs, defaults
//! apply, and every way of getting one wrong gives one `file: key: reason` line.

use std::path::Path;
use std::time::Duration;

use bastion::config::{AutoApprove, Config, Policy, Principal};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";

/// alice (sre, oncall), bob (dba), carol (dba, sre, with a duplicate); db-1 (app, root),
/// db-2 (app), web-1 (www).
fn base() -> String {
    let user = |name: &str, groups: &str| {
        format!("[[users]]\nname = \"{name}\"\nkeys = [\"{KEY}\"]\ngroups = {groups}\n")
    };
    let target = |name: &str, logins: &str| {
        format!(
            "[[targets]]\nname = \"{name}\"\naddress = \"10.0.0.5:22\"\nlogins = {logins}\nidentity = \"k\"\n"
        )
    };
    [
        user("alice", r#"["sre", "oncall"]"#),
        user("bob", r#"["dba"]"#),
        user("carol", r#"["dba", "sre", "dba"]"#),
        target("db-1", r#"["app", "root"]"#),
        target("db-2", r#"["app"]"#),
        target("web-1", r#"["www"]"#),
    ]
    .concat()
}

/// The keys of a small valid policy, in file order; `overrides` replace a key's value, add a
/// key, or (with an empty value) drop it.
fn policy(overrides: &[(&str, &str)]) -> String {
    let mut keys: Vec<(String, String)> = [
        ("name", r#""databases""#),
        ("targets", r#"["db-*"]"#),
        ("requesters", r#"["group:sre"]"#),
        ("approvers", r#"["group:dba"]"#),
        ("max_duration", r#""4h""#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in overrides {
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => keys.push((key.to_string(), value.to_string())),
        }
    }
    let body: String = keys
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!("[[policies]]\n{body}")
}

fn load(text: &str) -> Config {
    Config::parse(text, "bastion.toml").unwrap_or_else(|err| panic!("{err}\n{text}"))
}

fn error(text: &str) -> String {
    match Config::parse(text, "bastion.toml") {
        Err(err) => err.to_string(),
        Ok(_) => panic!("expected an error for:\n{text}"),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_full_policy_loads_into_the_expected_structs() {
    let text = format!(
        "{}{}",
        base(),
        r#"
[[policies]]
name = "databases"
targets = ["db-*", "db-1", "db-*"]
requesters = ["group:sre", "bob"]
approvers = ["group:dba", "bob", "alice"]
approvals = 2
max_duration = "4h"
logins = ["app", "root", "app"]
require_reason = false
request_ttl = "30m"
auto_approve = [
    { groups = ["oncall"], logins = ["app"], max_duration = "1h" },
    { users = ["bob", "bob"], groups = ["dba"] },
]
break_glass = ["group:oncall", "carol"]
commands = ["systemctl status *", "uptime", "uptime"]
pty = false
"#
    );
    let config = load(&text);
    assert_eq!(config.user("alice").unwrap().groups, ["sre", "oncall"]);
    assert_eq!(config.user("carol").unwrap().groups, ["dba", "sre"]);
    let want = Policy {
        name: "databases".into(),
        targets: strings(&["db-*", "db-1"]),
        requesters: vec![
            Principal::Group("sre".into()),
            Principal::User("bob".into()),
        ],
        approvers: vec![
            Principal::Group("dba".into()),
            Principal::User("bob".into()),
            Principal::User("alice".into()),
        ],
        approvals: 2,
        max_duration: 4 * HOUR,
        logins: strings(&["app", "root"]),
        require_reason: false,
        request_ttl: HOUR / 2,
        auto_approve: vec![
            AutoApprove {
                who: vec![Principal::Group("oncall".into())],
                logins: strings(&["app"]),
                max_duration: HOUR,
            },
            AutoApprove {
                who: vec![
                    Principal::User("bob".into()),
                    Principal::Group("dba".into()),
                ],
                logins: Vec::new(),
                max_duration: 4 * HOUR,
            },
        ],
        break_glass: vec![
            Principal::Group("oncall".into()),
            Principal::User("carol".into()),
        ],
        commands: strings(&["systemctl status *", "uptime"]),
        pty: false,
    };
    assert_eq!(config.policies, [want]);

    let policy = config.policy("databases").unwrap();
    assert!(policy.covers_target("db-2") && !policy.covers_target("web-1"));
    assert_eq!(policy.approvers_text(), "group:dba, bob, alice");
    assert_eq!(
        config.members(&policy.requesters),
        ["alice", "bob", "carol"]
    );
    assert_eq!(config.members(&policy.auto_approve[0].who), ["alice"]);
    assert!(config.is_among("carol", &policy.break_glass));
    assert!(!config.is_among("bob", &policy.break_glass));
    assert!(!config.is_among("mallory", &policy.requesters));
    assert!(config.policy("web").is_none());
}

#[test]
fn unset_keys_take_their_defaults() {
    let text = format!(
        "{}{}{}",
        base(),
        policy(&[]),
        policy(&[
            ("name", r#""web""#),
            ("approvers", r#"["alice"]"#),
            (
                "auto_approve",
                r#"[{ users = ["alice"], logins = ["app"] }]"#
            ),
            ("targets", r#"["web-?", "db-1"]"#),
        ])
    );
    let config = load(&text);
    let databases = config.policy("databases").unwrap();
    assert_eq!(
        *databases,
        Policy {
            name: "databases".into(),
            targets: strings(&["db-*"]),
            requesters: vec![Principal::Group("sre".into())],
            approvers: vec![Principal::Group("dba".into())],
            approvals: 1,
            max_duration: 4 * HOUR,
            logins: Vec::new(),
            require_reason: true,
            request_ttl: HOUR,
            auto_approve: Vec::new(),
            break_glass: Vec::new(),
            commands: Vec::new(),
            pty: true,
        }
    );
    // Without policy logins, an auto_approve login must be a matched target's default login:
    // `app` is db-1's.
    let web = config.policy("web").unwrap();
    assert_eq!(
        web.auto_approve,
        [AutoApprove {
            who: vec![Principal::User("alice".into())],
            logins: strings(&["app"]),
            max_duration: 4 * HOUR,
        }]
    );
    assert_eq!(
        config.policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
        ["databases", "web"]
    );

    let none = load(&base());
    assert!(none.policies.is_empty());
    assert!(Config::embedded_defaults().policies.is_empty());
    let no_groups = load(&format!("[[users]]\nname = \"a\"\nkeys = [\"{KEY}\"]\n"));
    assert!(no_groups.users[0].groups.is_empty());
}

#[test]
fn each_mistake_is_one_line_naming_file_key_and_fix() {
    let p = |overrides: &[(&str, &str)]| format!("{}{}", base(), policy(overrides));
    let long = format!(r#"["{}"]"#, "a".repeat(257));
    let many = format!(
        "[{}]",
        (0..65)
            .map(|n| format!("\"cmd{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cases: Vec<(String, String)> = vec![
        // users[].groups
        (
            format!("[[users]]\nname = \"a\"\nkeys = [\"{KEY}\"]\ngroups = [\"sre\", \"s re\"]\n"),
            r#"users[0].groups[1]: invalid name "s re" (allowed: letters, digits, '.', '_', '-')"#.into(),
        ),
        (
            format!("[[users]]\nname = \"a\"\nkeys = [\"{KEY}\"]\ngroups = [\"group:sre\"]\n"),
            r#"users[0].groups[0]: write the group as "sre": this list holds group names, without "group:""#.into(),
        ),
        (
            format!("[[users]]\nname = \"a\"\nkeys = [\"{KEY}\"]\ngroups = \"sre\"\n"),
            r#"users[0].groups: invalid type: string "sre", expected a sequence"#.into(),
        ),
        // reserved target names
        (
            "[[targets]]\nname = \"help\"\naddress = \"h:22\"\nlogins = [\"app\"]\nidentity = \"k\"\n".into(),
            r#"targets[0].name: "help" is a bastion command name; choose another"#.into(),
        ),
        (
            format!("{}[[targets]]\nname = \"break-glass\"\naddress = \"h:22\"\nlogins = [\"app\"]\nidentity = \"k\"\n", base()),
            r#"targets[3].name: "break-glass" is a bastion command name; choose another"#.into(),
        ),
        // name
        (
            p(&[("name", "")]),
            r#"policies[0].name: is required: give the policy a name (letters, digits, '.', '_', '-')"#.into(),
        ),
        (
            p(&[("name", r#""data bases""#)]),
            r#"policies[0].name: invalid name "data bases" (allowed: letters, digits, '.', '_', '-')"#.into(),
        ),
        (
            format!("{}{}", p(&[]), policy(&[])),
            r#"policies[1].name: duplicate policy name "databases""#.into(),
        ),
        (
            p(&[("approver", r#"["bob"]"#)]),
            "policies[0].approver: unknown key `approver`, expected one of `name`, `targets`, `requesters`, `approvers`, `approvals`, `max_duration`, `logins`, `require_reason`, `request_ttl`, `auto_approve`, `break_glass`, `commands`, `pty`".into(),
        ),
        // targets
        (
            p(&[("targets", "")]),
            r#"policies[0].targets: must list at least one target name or pattern, e.g. ["db-*"]"#.into(),
        ),
        (
            p(&[("targets", "[]")]),
            r#"policies[0].targets: must list at least one target name or pattern, e.g. ["db-*"]"#.into(),
        ),
        (
            p(&[("targets", r#"["db-1", ""]"#)]),
            r#"policies[0].targets[1]: invalid target pattern "" (allowed: letters, digits, '.', '_', '-' and the wildcards '*' and '?')"#.into(),
        ),
        (
            p(&[("targets", r#"["db-[12]"]"#)]),
            r#"policies[0].targets[0]: invalid target pattern "db-[12]" (allowed: letters, digits, '.', '_', '-' and the wildcards '*' and '?')"#.into(),
        ),
        (
            p(&[("targets", r#"["db-*", "cache-*"]"#)]),
            r#"policies[0].targets[1]: pattern "cache-*" matches no [[targets]] entry; fix it or add the target"#.into(),
        ),
        (
            p(&[("targets", r#"["db-?"]"#)]).replace("db-2", "db-22").replace("db-1", "db-11"),
            r#"policies[0].targets[0]: pattern "db-?" matches no [[targets]] entry; fix it or add the target"#.into(),
        ),
        // principals
        (
            p(&[("requesters", "[]")]),
            "policies[0].requesters: must list at least one user or group:NAME".into(),
        ),
        (
            p(&[("approvers", "")]),
            "policies[0].approvers: must list at least one user or group:NAME".into(),
        ),
        (
            p(&[("approvers", r#"["group:dba", "dave"]"#)]),
            r#"policies[0].approvers[1]: unknown user "dave": add a [[users]] entry or write group:NAME for a group"#.into(),
        ),
        (
            p(&[("requesters", r#"["group:dbas"]"#)]),
            r#"policies[0].requesters[0]: no user is in group "dbas"; add it to the groups of its members"#.into(),
        ),
        (
            p(&[("requesters", r#"["group:"]"#)]),
            r#"policies[0].requesters[0]: invalid principal "group:" (expected a user name or group:NAME; names use letters, digits, '.', '_', '-')"#.into(),
        ),
        (
            p(&[("approvers", r#"["grp:dba"]"#)]),
            r#"policies[0].approvers[0]: invalid principal "grp:dba" (expected a user name or group:NAME; names use letters, digits, '.', '_', '-')"#.into(),
        ),
        (
            p(&[("break_glass", r#"["group:oncall", "root"]"#)]),
            r#"policies[0].break_glass[1]: unknown user "root": add a [[users]] entry or write group:NAME for a group"#.into(),
        ),
        // approvals
        (
            p(&[("approvals", "0")]),
            "policies[0].approvals: must be at least 1 (got 0)".into(),
        ),
        (
            p(&[("approvals", "-2")]),
            "policies[0].approvals: must be at least 1 (got -2)".into(),
        ),
        (
            p(&[("approvals", "3")]),
            "policies[0].approvals: 3 approvals can never be met: the approvers are 2 users (bob, carol); lower approvals or add approvers".into(),
        ),
        (
            p(&[("approvers", r#"["bob", "group:dba"]"#), ("approvals", "5000000000")]),
            "policies[0].approvals: 5000000000 approvals can never be met: the approvers are 2 users (bob, carol); lower approvals or add approvers".into(),
        ),
        (
            p(&[("approvers", r#"["alice"]"#), ("approvals", "2")]),
            "policies[0].approvals: 2 approvals can never be met: the approvers are 1 user (alice); lower approvals or add approvers".into(),
        ),
        (
            p(&[("approvals", r#""two""#)]),
            r#"policies[0].approvals: invalid type: string "two", expected i64"#.into(),
        ),
        // durations
        (
            p(&[("max_duration", "")]),
            r#"policies[0].max_duration: is required: how long a grant from this policy may last, e.g. "4h""#.into(),
        ),
        (
            p(&[("max_duration", r#""0s""#)]),
            r#"policies[0].max_duration: duration "0s" must be greater than zero"#.into(),
        ),
        (
            p(&[("request_ttl", r#""0m""#)]),
            r#"policies[0].request_ttl: duration "0m" must be greater than zero"#.into(),
        ),
        // logins
        (
            p(&[("logins", r#"["app", "r:oot"]"#)]),
            r#"policies[0].logins[1]: invalid unix user name "r:oot""#.into(),
        ),
        (
            p(&[("logins", r#"["app", "www"]"#)]),
            r#"policies[0].logins[1]: login "www" is offered by none of this policy's targets (db-1, db-2); add it to their logins or remove it here"#.into(),
        ),
        // auto_approve
        (
            p(&[("auto_approve", "[{}]")]),
            "policies[0].auto_approve[0]: must name whose requests are approved at once: users = [...] and/or groups = [...]".into(),
        ),
        (
            p(&[("auto_approve", r#"[{ users = [], groups = [] }]"#)]),
            "policies[0].auto_approve[0]: must name whose requests are approved at once: users = [...] and/or groups = [...]".into(),
        ),
        (
            p(&[("auto_approve", r#"[{ group = ["oncall"] }]"#)]),
            "policies[0].auto_approve[0].group: unknown key `group`, expected one of `users`, `groups`, `logins`, `max_duration`".into(),
        ),
        (
            p(&[("auto_approve", r#"[{ users = ["alice"] }, { users = ["dave"] }]"#)]),
            r#"policies[0].auto_approve[1].users[0]: unknown user "dave": add a [[users]] entry or write group:NAME for a group"#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ users = ["group:oncall"] }]"#)]),
            r#"policies[0].auto_approve[0].users[0]: "group:oncall" is a group: list it in groups = [...], without "group:""#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ groups = ["group:oncall"] }]"#)]),
            r#"policies[0].auto_approve[0].groups[0]: write the group as "oncall": this list holds group names, without "group:""#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ groups = ["oncall", "night"] }]"#)]),
            r#"policies[0].auto_approve[0].groups[1]: no user is in group "night"; add it to the groups of its members"#.into(),
        ),
        (
            p(&[("logins", r#"["app"]"#), ("auto_approve", r#"[{ groups = ["oncall"], logins = ["root"] }]"#)]),
            r#"policies[0].auto_approve[0].logins[0]: login "root" is not among the policy's logins (app); the policy never grants it"#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ groups = ["oncall"], logins = ["root"] }]"#)]),
            r#"policies[0].auto_approve[0].logins[0]: login "root" is the default login of none of this policy's targets (db-1, db-2); without policy logins only default logins are granted"#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ groups = ["oncall"], logins = ["-x"] }]"#)]),
            r#"policies[0].auto_approve[0].logins[0]: invalid unix user name "-x""#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ groups = ["oncall"], max_duration = "8h" }]"#)]),
            r#"policies[0].auto_approve[0].max_duration: "8h" is longer than the policy's max_duration "4h"; shorten it"#.into(),
        ),
        (
            p(&[("auto_approve", r#"[{ groups = ["oncall"], max_duration = "0s" }]"#)]),
            r#"policies[0].auto_approve[0].max_duration: duration "0s" must be greater than zero"#.into(),
        ),
        // commands
        (
            p(&[("commands", r#"["uptime", " "]"#)]),
            "policies[0].commands[1]: command pattern must not be blank".into(),
        ),
        (
            p(&[("commands", r#"["ls\tx"]"#)]),
            r"policies[0].commands[0]: command pattern contains the control character '\t'".into(),
        ),
        (
            p(&[("commands", r#"["tail -f x\n"]"#)]),
            r"policies[0].commands[0]: command pattern contains the control character '\n'".into(),
        ),
        (
            p(&[("commands", &long)]),
            "policies[0].commands[0]: command pattern is 257 characters long (at most 256)".into(),
        ),
        (
            p(&[("commands", r#"["systemctl status *; id"]"#)]),
            r#"policies[0].commands[0]: command pattern "systemctl status *; id" contains the shell metacharacter ";", which no admitted command may contain"#.into(),
        ),
        (
            p(&[("commands", r#"["echo $(id)"]"#)]),
            r#"policies[0].commands[0]: command pattern "echo $(id)" contains the shell metacharacter "$(", which no admitted command may contain"#.into(),
        ),
        (
            p(&[("commands", r#"["cat x > y"]"#)]),
            r#"policies[0].commands[0]: command pattern "cat x > y" contains the shell metacharacter ">", which no admitted command may contain"#.into(),
        ),
        (
            p(&[("commands", &many)]),
            "policies[0].commands: at most 64 command patterns (got 65)".into(),
        ),
        (
            p(&[("pty", r#""yes""#)]),
            r#"policies[0].pty: invalid type: string "yes", expected a boolean"#.into(),
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

#[test]
fn duplicates_within_limits_are_dropped_before_counting() {
    // 64 distinct patterns written 128 times are 64 patterns.
    let commands = format!(
        "[{}]",
        (0..128)
            .map(|n| format!("\"cmd{}\"", n % 64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let config = load(&format!("{}{}", base(), policy(&[("commands", &commands)])));
    assert_eq!(config.policies[0].commands.len(), 64);
    // A plain `$` expands a variable but runs nothing, as for grants.
    let config = load(&format!(
        "{}{}",
        base(),
        policy(&[("commands", r#"["ls $HOME/*"]"#)])
    ));
    assert_eq!(config.policies[0].commands, ["ls $HOME/*"]);
}

#[test]
fn policies_share_the_command_rules_of_grants() {
    assert_eq!(
        bastion::wildcard::MAX_COMMAND_PATTERNS,
        bastion::access::MAX_COMMAND_PATTERNS
    );
    assert_eq!(
        bastion::wildcard::MAX_COMMAND_PATTERN_CHARS,
        bastion::access::MAX_COMMAND_PATTERN_CHARS
    );
    for pattern in ["a ; b", "a && b", "a | b", "`id`", "${x}", "a < b"] {
        assert!(
            bastion::wildcard::METACHARACTERS
                .iter()
                .any(|m| pattern.contains(m)),
            "{pattern}"
        );
        let text = format!(
            "{}{}",
            base(),
            policy(&[("commands", &format!("[{pattern:?}]"))])
        );
        assert!(error(&text).contains("shell metacharacter"), "{pattern}");
    }
}

#[test]
fn the_shipped_example_has_groups_and_valid_commented_sections() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bastion.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let example = load(&text);
    assert_eq!(example.user("alice").unwrap().groups, ["sre", "oncall"]);
    assert!(example.policies.is_empty(), "the policy is commented out");

    // Uncomment the example's settings from `[[policies]]` on (`# key = value` and table
    // headers, not prose: the policy, [api], [slack], [[notify]], [nodes]) and load it all.
    let mut in_policy = false;
    let uncommented: String = text
        .lines()
        .map(|line| {
            in_policy |= line == "# [[policies]]";
            let setting = line.strip_prefix("# ").filter(|rest| {
                rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
            });
            match setting {
                Some(rest) if in_policy => format!("{rest}\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect();
    let config = load(&uncommented);
    let api = config.api.as_ref().expect("the example [api]");
    assert_eq!(api.listen.to_string(), "127.0.0.1:8080");
    assert!(api.tls.is_some());
    assert_eq!(config.notify.len(), 2);
    let policy = config.policy("databases").expect("the example policy");
    assert_eq!(policy.targets, ["db-*"]);
    assert_eq!(policy.requesters, [Principal::Group("sre".into())]);
    assert_eq!(policy.approvals, 1);
    assert_eq!(policy.max_duration, 4 * HOUR);
    assert_eq!(policy.logins, ["app"]);
    assert_eq!(policy.request_ttl, HOUR / 2);
    assert_eq!(
        policy.auto_approve,
        [AutoApprove {
            who: vec![Principal::Group("oncall".into())],
            logins: strings(&["app"]),
            max_duration: HOUR,
        }]
    );
    assert_eq!(policy.break_glass, [Principal::Group("oncall".into())]);
    assert!(policy.commands.is_empty() && policy.pty && policy.require_reason);
}
