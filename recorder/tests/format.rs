//! The recording format as the outside world sees it: a golden cast file, UTF-8 handling across
//! chunks, and compatibility with the real asciinema player.

mod support;

use std::time::Duration;

use recorder::{EventKind, parse_cast};
use support::{Fixture, meta};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/session.cast");

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A fixed session with fixed times, recorded through the public writer API.
async fn record_golden_session() -> anyhow::Result<Vec<u8>> {
    let fx = Fixture::new(|_| {}).await?;
    let writer = fx.store.begin(meta("golden-1"))?;
    writer.output_at(ms(500), b"$ ").await?;
    writer.input_at(ms(750), b"l").await?;
    writer.input_at(ms(850), b"s\r").await?;
    writer
        .output_at(
            ms(850),
            b"ls\r\n\x1b[1;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\r\n",
        )
        .await?;
    writer.resize_at(ms(1850), 120, 40).await?;
    writer
        .marker_at(ms(1850), "grant expires in 5 minutes")
        .await?;
    // "é" and an emoji split across calls, then an invalid byte; one time goes backwards.
    writer.output_at(ms(1851), b"caf\xc3").await?;
    writer.output_at(ms(1849), b"\xa9 \xf0\x9f").await?;
    writer
        .output_at(ms(1853), b"\x98\x80 \xff\x00end\r\n")
        .await?;
    let summary = writer.finish_at(ms(2000), "expired").await?;
    assert!(summary.complete);
    assert!(summary.uploaded);
    assert_eq!(summary.duration, ms(2000));
    Ok(fx.store.read_cast("golden-1").await?)
}

#[tokio::test]
async fn golden_cast_is_byte_stable_and_parses_back() -> anyhow::Result<()> {
    let cast = record_golden_session().await?;
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &cast)?;
    }
    let golden = std::fs::read(GOLDEN)?;
    assert_eq!(
        String::from_utf8_lossy(&cast),
        String::from_utf8_lossy(&golden),
        "recording differs from {GOLDEN}; rerun with UPDATE_GOLDEN=1 if the change is intended"
    );

    let parsed = parse_cast(&golden)?;
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let header = parsed.header;
    assert_eq!((header.version, header.width, header.height), (2, 80, 24));
    assert_eq!(header.timestamp, Some(1_735_787_045));
    let bastion = header.bastion.expect("bastion header");
    assert_eq!(bastion.format, recorder::BASTION_FORMAT);
    assert_eq!(
        (
            bastion.user.as_str(),
            bastion.target.as_str(),
            bastion.login.as_str()
        ),
        ("alice", "db-1", "postgres")
    );
    assert_eq!(bastion.grant_id, Some(42));

    let kinds: Vec<&str> = parsed.events.iter().map(|e| e.kind.code()).collect();
    assert_eq!(kinds, ["o", "i", "i", "o", "r", "m", "o", "o", "o", "m"]);
    let times: Vec<f64> = parsed.events.iter().map(|e| e.time).collect();
    assert_eq!(
        times,
        [0.5, 0.75, 0.85, 0.85, 1.85, 1.85, 1.851, 1.851, 1.853, 2.0]
    );
    assert_eq!(parsed.events[4].data, "120x40");
    assert_eq!(
        parsed.events[3].data,
        "ls\r\n\x1b[1;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\r\n"
    );
    assert_eq!(parsed.events[6].data, "caf");
    assert_eq!(parsed.events[7].data, "é ");
    assert_eq!(parsed.events[8].data, "😀 \u{FFFD}\0end\r\n");
    assert_eq!(parsed.events[9].kind, EventKind::Marker);
    assert_eq!(parsed.events[9].data, "end: expired");
    Ok(())
}

#[tokio::test]
async fn characters_split_at_every_position_come_out_whole() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let mut expected = String::new();
    let mut writers = Vec::new();
    for (n, text) in ["é", "€", "😀"].into_iter().enumerate() {
        for cut in 1..text.len() {
            let id = format!("split-{n}-{cut}");
            let writer = fx.store.begin(meta(&id))?;
            writer.output(&text.as_bytes()[..cut]).await?;
            writer.output(&text.as_bytes()[cut..]).await?;
            writer.input(&text.as_bytes()[..cut]).await?;
            writer.input(&text.as_bytes()[cut..]).await?;
            writer.finish("done").await?;
            writers.push((id, text));
        }
        expected.push_str(text);
    }
    for (id, text) in writers {
        let parsed = parse_cast(&fx.store.read_cast(&id).await?)?;
        let data: Vec<(&str, &str)> = parsed
            .events
            .iter()
            .map(|e| (e.kind.code(), e.data.as_str()))
            .collect();
        // One event per stream, holding the whole character; nothing for the first half.
        assert_eq!(data, [("o", text), ("i", text), ("m", "end: done")], "{id}");
    }
    Ok(())
}

#[tokio::test]
async fn invalid_and_dangling_bytes_become_replacement_characters() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let writer = fx.store.begin(meta("invalid-1"))?;
    writer.output(b"a\xffb\xc0").await?;
    writer.output(b"c").await?;
    writer.input(b"\xe2\x82").await?;
    writer.output(b"ok\xf0\x9f\x98").await?;
    writer.finish("closed").await?;
    let parsed = parse_cast(&fx.store.read_cast("invalid-1").await?)?;
    let data: Vec<(&str, &str)> = parsed
        .events
        .iter()
        .map(|e| (e.kind.code(), e.data.as_str()))
        .collect();
    assert_eq!(
        data,
        [
            ("o", "a\u{FFFD}b\u{FFFD}"),
            ("o", "c"),
            ("o", "ok"),
            // Dangling tails are flushed at finish, output first, then input.
            ("o", "\u{FFFD}"),
            ("i", "\u{FFFD}"),
            ("m", "end: closed"),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn asciinema_cat_plays_an_exported_recording() -> anyhow::Result<()> {
    let asciinema = std::path::Path::new("/usr/bin/asciinema");
    if !asciinema.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/usr/bin/asciinema is required in CI (apt-get install asciinema)"
        );
        eprintln!("skipping: /usr/bin/asciinema not installed");
        return Ok(());
    }
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 200).await?;
    let writer = fx.store.begin(meta("cat-1"))?;
    writer.output(b"hello from \xc3").await?;
    writer.output(b"\xa9 bastion\r\n").await?;
    writer.resize(100, 30).await?;
    writer.marker("warning: grant expires soon").await?;
    for i in 0..20 {
        writer
            .output(format!("line {i:02} of output\r\n").as_bytes())
            .await?;
    }
    let summary = writer.finish("logout").await?;
    assert!(
        summary.segments > 1,
        "several segments expected, got {}",
        summary.segments
    );

    let out = fx.dir.path().join("export.cast");
    let written = fx.store.write_cast("cat-1", &out).await?;
    assert_eq!(written, std::fs::metadata(&out)?.len());
    assert_eq!(std::fs::read(&out)?, fx.store.read_cast("cat-1").await?);

    // asciinema 2.x `cat` opens /dev/tty, which a test process has none of: run it inside a
    // pseudo-terminal made by util-linux `script` (-e: pass on asciinema's exit status).
    let command = format!("{} cat '{}'", asciinema.display(), out.display());
    let result = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(
        result.status.success(),
        "asciinema cat failed: {}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let shown = String::from_utf8_lossy(&result.stdout);
    assert!(shown.contains("hello from é bastion"), "{shown}");
    assert!(shown.contains("line 19 of output"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn the_manifest_session_is_the_meta_the_recording_began_with() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let mut began = meta("meta-1");
    began.command = Some("pg_dump app".to_string());
    began.term = None;
    let writer = fx.store.begin(began.clone())?;
    writer.output(b"done\n").await?;
    writer.finish("exit 0").await?;
    let manifest = fx.store.read_manifest("meta-1").await?.expect("manifest");
    assert_eq!(manifest.session, began);
    // Stored in the layout manifests have always had: the id at the top, the rest under
    // `session`.
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(
        fx.store_root().join("meta-1/manifest.json"),
    )?)?;
    assert_eq!(stored["id"], "meta-1");
    let session = stored["session"].as_object().expect("session object");
    let mut keys: Vec<&str> = session.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = [
        "user",
        "target",
        "login",
        "grant_id",
        "command",
        "width",
        "height",
        "term",
        "started_at",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(session["started_at"], "2025-01-02T03:04:05Z");
    Ok(())
}
