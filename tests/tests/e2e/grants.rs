//! The approver's CLI: `grant add` validates against the config, `grant list --json [--active]`
//! shows exactly the usable grants, `grant revoke` of an unknown id fails, and a grant that
//! starts later opens access only when it starts.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bastion_tests::GrantSpec;
use bastion_tests::bastion::is_id;

use crate::bed;

#[test]
fn grant_list_active_shows_only_usable_grants() -> Result<()> {
    let bed = bed!();
    let b = &bed.bastion;
    let active = b.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let pending = b.grant(&GrantSpec::new("alice", "db-1", "1h").starts_in("1h"))?;
    let revoked = b.grant(&GrantSpec::new("bob", "db-2", "1h"))?;
    b.revoke(&revoked)?;
    let ids = |rows: &[serde_json::Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["id"].to_string().trim_matches('"').to_string())
            .collect()
    };
    let all = b.grants(false)?;
    for id in [&active, &pending, &revoked] {
        ensure!(
            all.iter().any(|r| is_id(&r["id"], id)),
            "grant list --json should list grant {id}; listed {:?}",
            ids(&all)
        );
    }
    let usable = b.grants(true)?;
    ensure!(
        usable.len() == 1 && is_id(&usable[0]["id"], &active),
        "grant list --active --json should list only the active grant {active} (not pending {pending} \
         or revoked {revoked}); listed {usable:?}"
    );
    Ok(())
}

#[test]
fn grant_add_rejects_unknown_user_target_and_login() -> Result<()> {
    let bed = bed!();
    let b = &bed.bastion;
    for (case, args) in [
        (
            "unknown user",
            ["--user", "mallory", "--target", "db-1", "--login", "root"],
        ),
        (
            "unknown target",
            ["--user", "alice", "--target", "db-9", "--login", "root"],
        ),
        (
            "login not on target",
            ["--user", "alice", "--target", "db-2", "--login", "app"],
        ),
    ] {
        let mut argv = args.to_vec();
        argv.extend(["--for", "1h", "--reason", "e2e"]);
        let out = b.cli("grant", "add", &argv)?;
        ensure!(
            !out.status.success() && out.stdout.is_empty() && !out.stderr.is_empty(),
            "grant add with {case} should fail with a message and print no id; exit {:?}, stdout {:?}, stderr {:?}",
            out.code(),
            out.stdout_str(),
            out.stderr_str()
        );
    }
    ensure!(
        b.grants(false)?.is_empty(),
        "rejected grant add calls must not create grants"
    );
    Ok(())
}

#[test]
fn grant_revoke_of_an_unknown_id_fails() -> Result<()> {
    let bed = bed!();
    let out = bed.bastion.cli("grant", "revoke", &["424242"])?;
    ensure!(
        !out.status.success() && !out.stderr.is_empty(),
        "revoking a grant that does not exist should fail with a message; exit {:?}, stderr {:?}",
        out.code(),
        out.stderr_str()
    );
    Ok(())
}

/// `--starts-in 2s`: denied now, allowed once the grant has started.
#[test]
fn grant_starting_later_opens_access_when_it_starts() -> Result<()> {
    let bed = bed!();
    bed.bastion
        .grant(&GrantSpec::new("alice", "db-1", "1h").starts_in("2s"))?;
    let starts = Instant::now() + Duration::from_secs(2);
    let early = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo early"])
        .run()?;
    ensure!(
        Instant::now() < starts,
        "test too slow: the first attempt was not made before the grant started"
    );
    ensure!(
        !early.status.success() && early.stderr_str().contains("access denied"),
        "before the grant starts: expected access denied, got exit {:?}, stdout {:?}, stderr {:?}",
        early.code(),
        early.stdout_str(),
        early.stderr_str()
    );
    std::thread::sleep(
        starts.saturating_duration_since(Instant::now()) + Duration::from_millis(300),
    );
    let later = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo later"])
        .run()?;
    ensure!(
        later.status.success() && later.stdout_str() == "later\n",
        "after the grant started: expected \"later\", got exit {:?}, stdout {:?}, stderr {:?}",
        later.code(),
        later.stdout_str(),
        later.stderr_str()
    );
    Ok(())
}
