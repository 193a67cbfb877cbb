//! The recording index built from real terminal sessions (bash with line editing and colours, vim
//! in the alternate screen with resizes), stored next to the recording and read back.

#[path = "index_data/fixture.rs"]
mod fixture;

use std::time::Duration;

use recorder::{
    EventKind, INDEX_OBJECT, MAX_OUTPUT_LINES_PER_SEGMENT, RecordingIndex, RecordingStore,
    build_index,
};

async fn store(dir: &std::path::Path, segment_bytes: usize) -> anyhow::Result<RecordingStore> {
    Ok(RecordingStore::open(fixture::config(dir, segment_bytes)).await?)
}

fn texts(lines: &[recorder::TextLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

#[tokio::test]
async fn typed_commands_output_and_markers_of_a_shell_session() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = store(dir.path(), 1024 * 1024).await?;
    let cast = fixture::session("shell.cast")?;
    fixture::record(&store, "shell", &cast).await?;

    let index = store.build_index("shell").await?;
    // Left arrow + insert, backspaces, Ctrl-C (line dropped), Ctrl-U, Up (history: unseen).
    assert_eq!(
        texts(&index.commands),
        [
            "echo hello",
            "ls --color=always /usr",
            r"printf '\e[1;31mred\e[0m \e[42mgreen bg\e[0m\n'",
            "whoami",
            "exit",
        ]
    );
    let enter = cast
        .events
        .iter()
        .find(|e| e.kind == EventKind::Input && e.data == "\r")
        .expect("an Enter key");
    assert!((index.commands[0].t - enter.time).abs() < 1e-5);

    let output = texts(&index.output);
    for expected in ["hello", "red green bg", "root", "exit"] {
        assert!(output.contains(&expected), "{expected:?} not in {output:?}");
    }
    assert!(output.iter().any(|l| l.starts_with("bin  etc  games")));
    assert!(
        output
            .iter()
            .all(|l| !l.contains('\u{1b}') && l.trim() == *l)
    );
    assert_eq!(texts(&index.markers), ["end: test"]);
    assert_eq!(index.damage, None);
    assert_eq!((index.width, index.height), (80, 24));
    assert_eq!(
        index.header.bastion.as_ref().map(|b| b.user.as_str()),
        Some("alice")
    );
    let last = cast.events.last().expect("events").time;
    assert!((index.duration - last).abs() < 1e-5);

    // Stored create-only next to the segments; writing the same index again is harmless.
    assert_eq!(store.read_index("shell").await?, None);
    store.write_index("shell", &index).await?;
    store.write_index("shell", &index).await?;
    assert!(dir.path().join("store/shell").join(INDEX_OBJECT).is_file());
    assert_eq!(store.read_index("shell").await?, Some(index));
    Ok(())
}

#[tokio::test]
async fn keyframes_follow_the_alternate_screen_and_resizes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Small segments: many keyframes, some taken inside vim.
    let store = store(dir.path(), 600).await?;
    let cast = fixture::session("vim.cast")?;
    fixture::record(&store, "vim", &cast).await?;
    let index = store.build_index("vim").await?;

    assert!(
        index.segments.len() > 15,
        "{} segments",
        index.segments.len()
    );
    let seqs: Vec<u32> = index.segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (0..seqs.len() as u32).collect::<Vec<_>>());
    assert!(index.keyframes.len() > 10);
    assert!(index.keyframes.windows(2).all(|k| k[0].seq < k[1].seq));
    let sizes: Vec<(u16, u16)> = index.keyframes.iter().map(|k| (k.cols, k.rows)).collect();
    for size in [(80, 24), (100, 30), (60, 20)] {
        assert!(sizes.contains(&size), "no keyframe at {size:?}: {sizes:?}");
    }
    // Keyframes taken inside vim restore the alternate screen.
    let alternate = index
        .keyframes
        .iter()
        .filter(|k| {
            let mut t = avt::Terminal::new(k.cols.into(), k.rows.into()).expect("size");
            t.feed(k.dump.as_str());
            t.active_screen_kind() == avt::ScreenKind::Alternate
        })
        .count();
    assert!(
        alternate > 3,
        "{alternate} keyframes in the alternate screen"
    );
    for span in &index.segments {
        assert!(span.t_start <= span.t_end);
        if let Some(k) = index
            .keyframes
            .iter()
            .find(|k| k.seq == span.seq && k.event == 0)
        {
            assert_eq!(k.t, span.t_start);
        }
    }
    let commands = texts(&index.commands);
    assert_eq!(
        commands.first(),
        Some(&"vim -u NONE -N -c 'syntax on' -c 'set number' script.sh")
    );
    assert!(commands.contains(&"cat script.sh"));
    let output = texts(&index.output);
    assert!(
        output
            .iter()
            .any(|l| l.contains("for i in 1 2 3; do echo \"$i\"; done"))
    );
    Ok(())
}

#[tokio::test]
async fn output_lines_are_capped_so_big_recordings_get_small_indexes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = store(dir.path(), 256 * 1024).await?;
    let writer = store.begin(fixture::meta("flood", 120, 40))?;
    let mut raw = 0usize;
    for chunk in 0..400u32 {
        let text: String = (0..200)
            .map(|i| {
                format!(
                    "\u{1b}[32m2025-06-01T10:{:02}:{:02}Z\u{1b}[0m INFO req={chunk:05}-{i:03} GET /api/items/{} status=200\r\n",
                    chunk % 60,
                    i % 60,
                    chunk * 7 + i
                )
            })
            .collect();
        raw += text.len();
        writer
            .output_at(
                Duration::from_millis(u64::from(chunk) * 10),
                text.as_bytes(),
            )
            .await?;
    }
    writer.finish("test").await?;
    let index = store.build_index("flood").await?;
    let kept = index.output.len() as u64;
    assert!(kept <= (index.segments.len() * MAX_OUTPUT_LINES_PER_SEGMENT) as u64);
    assert_eq!(kept + index.output_dropped, 400 * 200);
    let encoded = index.encode()?;
    assert!(
        encoded.len() * 50 < raw,
        "index of {} bytes for {raw} bytes of output",
        encoded.len()
    );
    assert_eq!(RecordingIndex::decode(&encoded)?, index);

    // The same events given straight to build_index give the same index.
    let cast = recorder::parse_cast(&store.read_cast("flood").await?)?;
    let per_segment = store.read_segments("flood").await?;
    let mut tagged = Vec::new();
    let mut events = cast.events.into_iter();
    for segment in &per_segment {
        let lines = segment.decompress()?;
        let count = lines
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"["))
            .count();
        tagged.extend(events.by_ref().take(count).map(|e| (segment.seq, e)));
    }
    let mut again = build_index(&cast.header, tagged.into_iter());
    // build_index knows nothing of the manifest; the store-built index checked it and found it
    // complete, so both agree.
    again.damage = index.damage.clone();
    assert_eq!(again, index);
    Ok(())
}
