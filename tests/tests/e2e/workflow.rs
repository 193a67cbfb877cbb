//! Just-in-time access with the real OpenSSH client: request, approval by another user,
//! connect, extension while a session is live, expiry; self-approval, 2 of 3, denial,
//! auto-approval, break glass and its review, a policy's command allow-list, TTL expiry with
//! `--wait`, `max_duration`; and the audit export holding each step in order.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bastion_tests::{Options, TestBed};

use crate::bed;

const DENIED: i32 = 77;
const EXPIRED: i32 = 75;

const POLICIES: &str = r#"
[[policies]]
name = "databases"
targets = ["db-1"]
requesters = ["group:sre"]
approvers = ["group:dba"]
approvals = 1
max_duration = "4h"
logins = ["app"]
request_ttl = "30m"
auto_approve = [{ groups = ["oncall"], logins = ["app"], max_duration = "10m" }]
break_glass = ["group:oncall"]

[[policies]]
name = "critical"
targets = ["db-2"]
requesters = ["group:sre"]
approvers = ["group:dba"]
approvals = 2
max_duration = "1h"
logins = ["root"]

[[policies]]
name = "contractors"
targets = ["db-*"]
requesters = ["group:contractors"]
approvers = ["bob"]
max_duration = "1h"
logins = ["app"]
request_ttl = "6s"
commands = ["echo status *"]
pty = false
"#;

fn options() -> Options {
    let groups = |user: &str, groups: &[&str]| {
        (
            user.to_string(),
            groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        )
    };
    Options {
        warn_before: vec!["10s".into()],
        extra_tables: POLICIES.into(),
        groups: vec![
            groups("alice", &["sre", "oncall"]),
            groups("bob", &["dba"]),
            groups("carol", &["dba"]),
            groups("dave", &["dba"]),
            groups("erin", &["contractors"]),
            // In sre but not on call: nothing of theirs is approved at once.
            groups("frank", &["sre"]),
        ],
        ..Options::default()
    }
}

/// `ssh USER@bastion WORDS...`: exit code, stdout, stderr.
fn ssh(bed: &TestBed, user: &str, words: &[&str]) -> Result<(Option<i32>, String, String)> {
    let out = bed.bastion.user(user).args(words.iter().copied()).run()?;
    Ok((out.code(), out.stdout_str(), out.stderr_str()))
}

/// Like `ssh`, but the command must exit 0; returns stdout.
fn ssh_ok(bed: &TestBed, user: &str, words: &[&str]) -> Result<String> {
    let (code, stdout, stderr) = ssh(bed, user, words)?;
    ensure!(
        code == Some(0),
        "{user}: ssh bastion {words:?} exited {code:?}; stdout {stdout:?}, stderr {stderr:?}"
    );
    Ok(stdout)
}

/// Like `ssh`, but the command must exit `want` with `phrase` on stderr; returns stderr.
fn ssh_refused(
    bed: &TestBed,
    user: &str,
    words: &[&str],
    want: i32,
    phrase: &str,
) -> Result<String> {
    let (code, stdout, stderr) = ssh(bed, user, words)?;
    ensure!(
        code == Some(want) && stderr.contains(phrase),
        "{user}: ssh bastion {words:?}: expected exit {want} and {phrase:?} on stderr; got exit \
         {code:?}, stdout {stdout:?}, stderr {stderr:?}"
    );
    Ok(stderr)
}

/// The `r-xxxx` id in a reply.
fn request_id(text: &str) -> Result<String> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == ',' || c == '(' || c == ')')
        .find(|w| w.starts_with("r-") && w.len() >= 6)
        .map(str::to_string)
        .with_context(|| format!("no request id in {text:?}"))
}

/// The `(grant N)` in a reply.
fn grant_id(text: &str) -> Result<String> {
    let at = text
        .find("(grant ")
        .with_context(|| format!("no grant id in {text:?}"))?;
    Ok(text[at + 7..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect())
}

#[test]
fn request_approve_connect_extend_and_expire_with_every_step_audited() -> Result<()> {
    let bed = bed!(options());
    // Without a grant: the denial says how to ask.
    ssh_refused(
        &bed,
        "frank",
        &["db-1", "--", "true"],
        DENIED,
        "ssh bastion request db-1 --for 1h --reason '...'",
    )?;

    let filed = ssh_ok(
        &bed,
        "frank",
        &[
            "request",
            "db-1",
            "--for",
            "30s",
            "--reason",
            "INC-42 disk full",
        ],
    )?;
    let id = request_id(&filed)?;
    ensure!(
        filed.contains("policy databases") && filed.contains("1 approval of: bob, carol, dave"),
        "the reply names the policy, the approvers and the approvals needed: {filed}"
    );
    ssh_refused(
        &bed,
        "frank",
        &["approve", &id],
        DENIED,
        "self-approval is never counted",
    )?;
    ssh_refused(
        &bed,
        "erin",
        &["approve", &id],
        DENIED,
        "not an approver of policy databases",
    )?;
    let pending = ssh_ok(&bed, "bob", &["requests"])?;
    ensure!(
        pending.contains(&id) && pending.contains("frank") && pending.contains("INC-42 disk full"),
        "bob's pending list shows the request: {pending}"
    );
    let approved = ssh_ok(&bed, "bob", &["approve", &id, "--comment", "go ahead"])?;
    ensure!(
        approved.contains("frank has access to db-1 as app is live until"),
        "{approved}"
    );
    let grant = grant_id(&approved)?;
    let grants = ssh_ok(&bed, "frank", &["grants"])?;
    ensure!(
        grants.contains("db-1") && grants.contains("active"),
        "{grants}"
    );

    // Two live sessions: one outlives the first expiry thanks to the extension, the other
    // is ended at the extended expiry.
    let started = Instant::now();
    let survivor = bed
        .bastion
        .user("frank")
        .args(["db-1", "--", "sleep 36; echo survived"])
        .spawn()?;
    let mut ended = bed
        .bastion
        .user("frank")
        .args(["db-1", "--", "sleep 300"])
        .spawn()?;
    std::thread::sleep(Duration::from_secs(2));
    let extension = ssh_ok(
        &bed,
        "frank",
        &[
            "extend",
            &grant,
            "--for",
            "30s",
            "--reason",
            "still digging",
        ],
    )?;
    let extension_id = request_id(&extension)?;
    let extended = ssh_ok(&bed, "carol", &["approve", &extension_id])?;
    ensure!(extended.contains("now ends at"), "{extended}");

    let out = survivor.wait_with_output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    ensure!(
        out.status.code() == Some(0) && stdout == "survived\n",
        "the session outlived the first expiry: exit {:?}, stdout {stdout:?}, stderr {stderr:?}",
        out.status.code()
    );
    ensure!(
        stderr.contains("your access to db-1 was extended: this session now ends at"),
        "the session was told of its new end: {stderr:?}"
    );
    let status = wait_exit(&mut ended, Duration::from_secs(60))?;
    let took = started.elapsed();
    let mut stderr = String::new();
    ended
        .stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut stderr)?;
    ensure!(
        took >= Duration::from_secs(55) && took < Duration::from_secs(70),
        "the second session ended at the extended expiry (about 60 s), not at {took:?}; \
         stderr {stderr:?}"
    );
    ensure!(
        status != Some(0) && stderr.contains("your grant for db-1 expired"),
        "ended by expiry: exit {status:?}, stderr {stderr:?}"
    );
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    ensure!(
        warnings.len() == 1 && warnings[0].contains("expires in 10s"),
        "one warning, 10 s before the extended end (none for the first end): {warnings:?}"
    );

    // The audit trail, exported from the database: each step in order, linked by the
    // request id.
    bed.bastion
        .wait_audit("grant.expired", Duration::from_secs(10), |e| {
            e["grant"].as_i64() == grant.parse().ok()
        })?;
    let jsonl = bed
        .bastion
        .cli_ok("audit", "export", &["--format", "jsonl"])?;
    let events: Vec<serde_json::Value> = jsonl
        .stdout_str()
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let position = |event: &str, wanted: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .position(|e| e["event"] == event && wanted(e))
            .with_context(|| format!("no {event} in the export:\n{}", jsonl.stdout_str()))
    };
    let ours = |e: &serde_json::Value| e["request"] == id.as_str();
    let steps = [
        position("access.denied", &|e| e["user"] == "frank")?,
        position("request.filed", &ours)?,
        position("request.approval", &|e| ours(e) && e["by"] == "bob")?,
        position("request.approved", &ours)?,
        position("grant.created", &|e| ours(e) && e["origin"] == "request")?,
        position("grant.started", &ours)?,
        position("session.start", &ours)?,
        position("request.filed", &|e| e["request"] == extension_id.as_str())?,
        position("grant.extended", &|e| e["request"] == extension_id.as_str())?,
        position("grant.expired", &|e| {
            e["grant"].as_i64() == grant.parse().ok()
        })?,
    ];
    ensure!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "the steps are exported in order: {steps:?}\n{}",
        jsonl.stdout_str()
    );
    let csv = bed
        .bastion
        .cli_ok("audit", "export", &["--format", "csv"])?;
    let text = csv.stdout_str();
    ensure!(
        text.starts_with("ts,event,user,target,session,grant,request,client,by,reason,details"),
        "CSV header: {text}"
    );
    ensure!(
        text.lines()
            .any(|l| l.contains(",request.approval,frank,db-1,")
                && l.contains(&id)
                && l.contains(",bob,")),
        "the CSV row of bob's approval names the request: {text}"
    );
    Ok(())
}

#[test]
fn two_of_three_distinct_approvers_and_a_denial_ends_a_request() -> Result<()> {
    let bed = bed!(options());
    let filed = ssh_ok(
        &bed,
        "alice",
        &["request", "db-2", "--for", "30m", "--reason", "migration"],
    )?;
    let id = request_id(&filed)?;
    ensure!(filed.contains("2 distinct approvals"), "{filed}");
    let first = ssh_ok(&bed, "bob", &["approve", &id])?;
    ensure!(first.contains("1 of 2 approvals"), "{first}");
    ssh_refused(
        &bed,
        "bob",
        &["approve", &id],
        DENIED,
        "you already approved",
    )?;
    let grants = ssh_ok(&bed, "alice", &["grants"])?;
    ensure!(
        grants.contains("your grants: none active") && grants.contains(&id),
        "one approval of two grants nothing: {grants}"
    );
    let second = ssh_ok(&bed, "carol", &["approve", &id])?;
    ensure!(
        second.contains("alice has access to db-2 as root"),
        "{second}"
    );

    // Any approver's no ends a request, whatever approvals it had.
    let again = ssh_ok(
        &bed,
        "alice",
        &[
            "request", "db-2", "--for", "30m", "--reason", "second", "pass",
        ],
    )?;
    let again = request_id(&again)?;
    ssh_ok(&bed, "bob", &["approve", &again])?;
    let denied = ssh_ok(
        &bed,
        "dave",
        &["deny", &again, "--reason", "not during the freeze"],
    )?;
    ensure!(denied.contains(&format!("denied {again}")), "{denied}");
    ssh_refused(&bed, "carol", &["approve", &again], DENIED, "it is denied")?;
    // Over the policy's max_duration: refused at request time, naming the rule.
    ssh_refused(
        &bed,
        "alice",
        &["request", "db-2", "--for", "2h", "--reason", "long"],
        DENIED,
        "--for 2h is longer than policy critical allows (max_duration = 1h)",
    )?;
    // The admin command runs the same verbs.
    let cli = bed.bastion.admin(&[
        "request",
        "db-2",
        "--as",
        "alice",
        "--for",
        "10m",
        "--reason",
        "from the shell",
    ])?;
    ensure!(
        cli.status.success(),
        "bastion request --as alice: {}",
        cli.stderr_str()
    );
    let cli_id = request_id(&cli.stdout_str())?;
    let approve = bed.bastion.admin(&["approve", &cli_id, "--as", "alice"])?;
    ensure!(
        approve.status.code() == Some(DENIED) && approve.stderr_str().contains("self-approval"),
        "bastion approve --as alice of her own request: {:?} {}",
        approve.status.code(),
        approve.stderr_str()
    );
    let cancel = ssh_ok(&bed, "alice", &["cancel", &cli_id])?;
    ensure!(cancel.contains("cancelled"), "{cancel}");
    Ok(())
}

#[test]
fn auto_approval_break_glass_and_its_review() -> Result<()> {
    let bed = bed!(options());
    let auto = ssh_ok(
        &bed,
        "alice",
        &[
            "request", "db-1", "--for", "5m", "--reason", "quick", "look",
        ],
    )?;
    ensure!(
        auto.contains("approved at once by rule databases.auto_approve[0]"),
        "{auto}"
    );
    let whoami = ssh_ok(&bed, "alice", &["db-1", "--", "id -un"])?;
    ensure!(whoami == "app\n", "{whoami:?}");

    ssh_refused(
        &bed,
        "bob",
        &["break-glass", "db-1", "--reason", "curious"],
        DENIED,
        "you may not break glass for db-1",
    )?;
    let glass = ssh_ok(
        &bed,
        "alice",
        &["break-glass", "db-1", "--reason", "prod down"],
    )?;
    ensure!(
        glass.contains("BREAK GLASS: access to db-1 as app is live"),
        "{glass}"
    );
    let grant = grant_id(&glass)?;
    ensure!(
        bed.bastion.stderr().contains("BREAK GLASS"),
        "the daemon's log announces it"
    );
    bed.bastion
        .wait_audit("break_glass", Duration::from_secs(5), |e| {
            e["grant"].as_i64() == grant.parse().ok() && e["reason"] == "prod down"
        })?;
    let reviews = admin_ok(&bed, &["reviews"])?;
    ensure!(
        reviews.stdout_str().contains("prod down"),
        "{}",
        reviews.stdout_str()
    );
    let own = bed
        .bastion
        .admin(&["review", &grant, "--comment", "fine", "--as", "alice"])?;
    ensure!(
        own.status.code() == Some(DENIED) && own.stderr_str().contains("self-approval"),
        "alice cannot review her own break glass: {}",
        own.stderr_str()
    );
    admin_ok(
        &bed,
        &[
            "review",
            &grant,
            "--comment",
            "checked the timeline",
            "--as",
            "bob",
        ],
    )?;
    let reviews = admin_ok(&bed, &["reviews"])?;
    ensure!(
        reviews
            .stdout_str()
            .contains("no break-glass grants wait for a review"),
        "{}",
        reviews.stdout_str()
    );
    bed.bastion
        .wait_audit("grant.reviewed", Duration::from_secs(5), |e| {
            e["by"] == "bob" && e["comment"] == "checked the timeline"
        })?;
    Ok(())
}

#[test]
fn a_policy_allow_list_holds_and_an_undecided_request_expires() -> Result<()> {
    let bed = bed!(options());
    // --wait blocks until bob decides; the exit status says approved.
    let mut waiting = bed
        .bastion
        .user("erin")
        .args([
            "request", "db-1", "--for", "10m", "--reason", "check", "the", "service", "--wait",
        ])
        .spawn()?;
    let id = wait_for_pending(&bed, "bob")?;
    ssh_ok(&bed, "bob", &["approve", &id])?;
    let status = wait_exit(&mut waiting, Duration::from_secs(10))?;
    let mut stdout = String::new();
    waiting
        .stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut stdout)?;
    ensure!(
        status == Some(0) && stdout.contains(&format!("{id} approved by bob")),
        "--wait ends with the decision: exit {status:?}, stdout {stdout:?}"
    );

    let out = ssh_ok(&bed, "erin", &["db-1", "--", "echo status app"])?;
    ensure!(out == "status app\n", "{out:?}");
    for (words, rule) in [
        (
            vec!["db-1", "--", "id"],
            "command matches none of the grant's allowed commands",
        ),
        (
            vec!["db-1", "--", "echo status app; id"],
            "shell metacharacter ';'",
        ),
        (vec!["db-1"], "allows no terminal"),
    ] {
        let mut ssh = bed.bastion.user("erin");
        if words.len() == 1 {
            ssh = ssh.opt("-tt");
        }
        let out = ssh.args(words.iter().copied()).run()?;
        ensure!(
            out.code() == Some(DENIED) && out.stderr_str().contains(rule),
            "erin {words:?}: expected exit 77 naming {rule:?}; got {:?} {:?}",
            out.code(),
            out.stderr_str()
        );
    }

    // Nobody decides: the request expires at its request_ttl (6 s) and --wait says so.
    let started = Instant::now();
    let (code, stdout, stderr) = ssh(
        &bed,
        "erin",
        &[
            "request", "db-1", "--for", "10m", "--reason", "again", "--wait",
        ],
    )?;
    ensure!(
        code == Some(EXPIRED) && stderr.contains("expired undecided"),
        "an undecided request expires: exit {code:?}, stdout {stdout:?}, stderr {stderr:?}"
    );
    ensure!(
        started.elapsed() >= Duration::from_secs(5),
        "it waited for the TTL"
    );
    let expired = request_id(&stdout)?;
    bed.bastion
        .wait_audit("request.expired", Duration::from_secs(5), |e| {
            e["request"] == expired.as_str()
        })?;
    Ok(())
}

/// `bastion WORDS...`, which must exit 0.
fn admin_ok(bed: &TestBed, words: &[&str]) -> Result<bastion_tests::child::Finished> {
    let out = bed.bastion.admin(words)?;
    ensure!(
        out.status.success(),
        "bastion {words:?} failed ({}): {}{}",
        out.status,
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(out)
}

/// The id of the first request `approver` sees pending.
fn wait_for_pending(bed: &TestBed, approver: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = ssh_ok(bed, approver, &["requests"])?;
        if let Ok(id) = request_id(&list) {
            return Ok(id);
        }
        if Instant::now() >= deadline {
            bail!("no pending request for {approver}: {list}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Result<Option<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            bail!("ssh did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
