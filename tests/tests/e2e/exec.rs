//! One-shot commands through the bastion (`ssh alice@bastion db-1 -- CMD`): stdout, stderr,
//! exit status and binary stdin pass through unchanged, as the grant's login.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bastion_tests::GrantSpec;

use crate::{bed, hour_grant};

#[test]
fn exec_passes_stdout_stderr_and_exit_status_unchanged() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let out = bed
        .bastion
        .alice()
        .args([
            "db-1",
            "--",
            "printf 'out 1\\nout 2\\n'; printf 'err 1\\n' >&2; exit 7",
        ])
        .run()?;
    ensure!(
        (
            out.stdout_str().as_str(),
            out.stderr_str().as_str(),
            out.code()
        ) == ("out 1\nout 2\n", "err 1\n", Some(7)),
        "expected stdout \"out 1\\nout 2\\n\", stderr \"err 1\\n\", exit 7; got stdout {:?}, stderr {:?}, exit {:?}",
        out.stdout_str(),
        out.stderr_str(),
        out.code()
    );
    Ok(())
}

/// `db-1 -- CMD` and `db-1 CMD` both run CMD, with the same result as ssh straight to the target.
#[test]
fn exec_output_matches_direct_ssh_with_and_without_double_dash() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let direct = bed
        .direct("root")?
        .args(["uname", "-a;", "id", "-un"])
        .run()?;
    ensure!(
        direct.status.success(),
        "direct ssh failed: {}",
        direct.stderr_str()
    );
    for words in [
        vec!["db-1", "--", "uname", "-a;", "id", "-un"],
        vec!["db-1", "uname", "-a;", "id", "-un"],
    ] {
        let out = bed.bastion.alice().args(words.clone()).run()?;
        ensure!(
            out.status.success() && out.stdout == direct.stdout && out.stderr.is_empty(),
            "ssh alice@bastion {}: expected exit 0, stdout {:?} (as direct ssh), empty stderr; got exit {:?}, \
             stdout {:?}, stderr {:?}",
            words.join(" "),
            direct.stdout_str(),
            out.code(),
            out.stdout_str(),
            out.stderr_str()
        );
    }
    Ok(())
}

/// Every byte value goes up through stdin (until EOF) and comes back down through stdout.
#[test]
fn exec_binary_stdin_and_stdout_round_trip_byte_exact() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let dir = tempfile::tempdir()?;
    let uploaded = dir.path().join("uploaded");
    let mut payload: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    payload.extend(
        std::fs::read("/proc/self/exe")
            .context("reading some binary data")?
            .iter()
            .take(3 << 20),
    );
    let up = bed
        .bastion
        .alice()
        .args(["db-1", "--", &format!("cat > {}", uploaded.display())])
        .stdin_bytes(payload.clone())
        .timeout(Duration::from_secs(60))
        .run()?;
    ensure!(
        up.status.success(),
        "upload via stdin failed: exit {:?}, stderr {}",
        up.code(),
        up.stderr_str()
    );
    let stored = std::fs::read(&uploaded)?;
    ensure!(
        stored == payload,
        "the target received {} bytes, expected the {} bytes sent (first difference at {:?})",
        stored.len(),
        payload.len(),
        stored.iter().zip(&payload).position(|(a, b)| a != b)
    );
    let down = bed
        .bastion
        .alice()
        .args(["db-1", "--", &format!("cat {}", uploaded.display())])
        .timeout(Duration::from_secs(60))
        .run()?;
    ensure!(
        down.status.success() && down.stdout == payload,
        "download via stdout: exit {:?}, got {} bytes, expected {} (stderr {})",
        down.code(),
        down.stdout.len(),
        payload.len(),
        down.stderr_str()
    );
    Ok(())
}

/// `tar c dir | ssh ... db-1 -- tar x -C dest` copies a directory tree.
#[test]
fn exec_tar_pipe_copies_a_directory() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source");
    let dest = dir.path().join("dest");
    std::fs::create_dir_all(source.join("nested/deeper"))?;
    std::fs::create_dir_all(&dest)?;
    std::fs::write(source.join("hello.txt"), "hello through the bastion\n")?;
    std::fs::write(
        source.join("nested/binary.bin"),
        (0..200_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )?;
    std::fs::write(source.join("nested/deeper/empty"), "")?;
    let tar = Command::new("tar")
        .arg("c")
        .arg("-C")
        .arg(&source)
        .arg(".")
        .output()?;
    ensure!(tar.status.success(), "local tar c failed");
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "tar", "x", "-C", &dest.display().to_string()])
        .stdin_bytes(tar.stdout)
        .run()?;
    ensure!(
        out.status.success(),
        "remote tar x failed: exit {:?}, stderr {}",
        out.code(),
        out.stderr_str()
    );
    for file in ["hello.txt", "nested/binary.bin", "nested/deeper/empty"] {
        let (want, got) = (
            std::fs::read(source.join(file))?,
            std::fs::read(dest.join(file)),
        );
        ensure!(
            got.as_ref().ok() == Some(&want),
            "{file} was not copied intact: {got:?}"
        );
    }
    Ok(())
}

/// With a grant for `app` only, `db-1` runs as app.
#[test]
fn exec_runs_as_the_grants_login() -> Result<()> {
    let bed = bed!();
    bed.bastion
        .grant(&GrantSpec::new("alice", "db-1", "1h").login("app"))?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "id", "-un"])
        .run()?;
    ensure!(
        out.status.success() && out.stdout_str() == "app\n",
        "grant for login app: expected `id -un` to print \"app\\n\", got exit {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(())
}

/// With a grant for root and app, `LOGIN@db-1` picks the login.
#[test]
fn login_at_target_picks_the_login() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(
        &GrantSpec::new("alice", "db-1", "1h")
            .login("root")
            .login("app"),
    )?;
    for login in ["app", "root"] {
        let out = bed
            .bastion
            .alice()
            .args([format!("{login}@db-1"), "--".into(), "id -un".into()])
            .run()?;
        ensure!(
            out.status.success() && out.stdout_str() == format!("{login}\n"),
            "ssh alice@bastion {login}@db-1 -- id -un: expected {login:?}, got exit {:?}, stdout {:?}, stderr {:?}",
            out.code(),
            out.stdout_str(),
            out.stderr_str()
        );
    }
    Ok(())
}
