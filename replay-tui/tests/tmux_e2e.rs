//! End to end in a real terminal: `bastion-replay` runs in tmux on recordings made by the
//! recorder; the test presses keys and checks what `tmux capture-pane` shows, and that the
//! terminal is left usable after `q` and after Ctrl-C.

mod support;

use std::time::Duration;

use anyhow::{Result, ensure};
use support::Harness;
use support::recordings::{self, SESSION_EVENTS, TestStore, finished, meta};
use support::tmux::Tmux;

#[test]
fn browse_search_play_and_quit_in_a_real_terminal() -> Result<()> {
    let test = TestStore::new();
    Harness::runtime().block_on(async {
        let store = test.writer(Duration::from_secs(1)).await;
        finished(
            &store,
            meta("rec-a", "alice", "db-1", recordings::START),
            SESSION_EVENTS,
            "client disconnected",
        )
        .await;
        finished(
            &store,
            meta("rec-b", "bob", "web-2", recordings::START + 60),
            &SESSION_EVENTS[..5],
            "grant expired",
        )
        .await;
        let index = store.build_index("rec-a").await?;
        store.write_index("rec-a", &index).await?;
        anyhow::Ok(())
    })?;
    let config = test.config_path.display().to_string();
    let tmux = Tmux::replay(&["--config", &config], 120, 32)?;
    tmux.wait_for(&[
        "2 of 2 recordings",
        "alice",
        "client disconnected",
        "bob",
        "grant expired",
        "✓ chain",
    ])?;

    tmux.type_text("/")?;
    tmux.type_text("drop table")?;
    tmux.keys(&["Enter"])?;
    let screen = tmux.wait_for(&[
        "1 of 2 recordings",
        "hits in this recording: 2",
        "typed  psql -c 'DROP TABLE users'",
    ])?;
    ensure!(
        !screen.contains("bob"),
        "bob's recording has no hit:\n{screen}"
    );

    tmux.keys(&["Enter"])?;
    tmux.wait_for(&[
        "alice → db-1 as app",
        "0:03.0 / 0:21",
        "app@db-1:~$ psql -c 'DROP TABLE users'",
        "/drop table (2 hits)",
    ])?;
    tmux.keys(&["."])?;
    tmux.wait_for(&["ERROR:  permission denied for table users", "0:03.1"])?;
    tmux.keys(&["?"])?;
    tmux.wait_for(&[
        "keys (any key closes)",
        "play / pause",
        "next typed command",
    ])?;
    // Escape and the next key in one write would read as Alt+key: wait for the help to close.
    tmux.keys(&["Escape"])?;
    tmux.wait_gone("keys (any key closes)")?;
    tmux.keys(&["Space"])?;
    // Played past the 17 s pause thanks to the idle cap, to the end.
    tmux.wait_for(&["0:21.1 / 0:21", "exit"])?;

    tmux.keys(&["q"])?;
    tmux.wait_for(&["bastion-replay", "search: drop table"])?;
    tmux.keys(&["q"])?;
    tmux.wait_gone("search: drop table")?;
    tmux.keys(&["q"])?;
    ensure!(tmux.wait_exit()? == 0, "bastion-replay failed");
    let (alternate, cursor) = tmux.terminal_state()?;
    ensure!(
        !alternate && cursor,
        "terminal left in the alternate screen or without a cursor"
    );
    Ok(())
}

#[test]
fn a_cast_file_plays_and_ctrl_c_restores_the_terminal() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = recordings::write(dir.path(), "vim.cast", &recordings::vim());
    let tmux = Tmux::replay(&[&path.display().to_string()], 100, 24)?;
    tmux.wait_for(&["alice → db-1 as app", "0:00.0 / 0:02"])?;
    tmux.keys(&["l"])?;
    tmux.wait_for(&["0:02.2", "app@db-1:~$ vim notes.txt"])?;
    // 60% is inside vim.
    tmux.keys(&["6"])?;
    tmux.wait_for(&["0:01.3", "DROP TABLE users;", "full-screen · 40x8"])?;
    tmux.keys(&["C-c"])?;
    ensure!(tmux.wait_exit()? == 0, "bastion-replay failed after Ctrl-C");
    let (alternate, cursor) = tmux.terminal_state()?;
    ensure!(!alternate && cursor, "terminal left broken after Ctrl-C");
    Ok(())
}
