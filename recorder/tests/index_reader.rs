//! Reading recordings back: every seek equals a straight replay (real bash and vim sessions,
//! colours, alternate screen, resizes), from a stored index, an index built in memory, and local
//! `.cast` / `.cast.zst` files; damaged recordings play up to the damage and say where.

#[path = "index_data/fixture.rs"]
mod fixture;

use std::time::Duration;

use recorder::{Event, EventKind, ParsedCast, Reader, RecordingStore};

struct Recorded {
    _dir: tempfile::TempDir,
    store: RecordingStore,
    root: std::path::PathBuf,
    /// The recording as stored, parsed in one go: the reference for seeks.
    stored: ParsedCast,
}

async fn recorded(name: &str, id: &str, segment_bytes: usize) -> anyhow::Result<Recorded> {
    let dir = tempfile::tempdir()?;
    let store = RecordingStore::open(fixture::config(dir.path(), segment_bytes)).await?;
    fixture::record(&store, id, &fixture::session(name)?).await?;
    let stored = recorder::parse_cast(&store.read_cast(id).await?)?;
    let root = dir.path().join("store").join(id);
    Ok(Recorded {
        _dir: dir,
        store,
        root,
        stored,
    })
}

async fn assert_seeks_match(reader: &mut Reader, cast: &ParsedCast, what: &str) {
    let (w, h) = (cast.header.width, cast.header.height);
    for t in fixture::probe_times(&cast.events) {
        let seek = reader.screen_at(t).await.expect("seek");
        let straight = fixture::straight_replay(w, h, &cast.events, t);
        fixture::assert_same_screen(&seek, &straight, &format!("{what} at {t}"));
    }
}

#[tokio::test]
async fn seeks_equal_straight_replay_with_stored_and_built_indexes() -> anyhow::Result<()> {
    for (name, segment_bytes) in [
        ("vim.cast", 700),
        ("shell.cast", 900),
        ("vim.cast", 1 << 20),
    ] {
        let rec = recorded(name, "seek", segment_bytes).await?;
        // No stored index: built in memory from the segments.
        let mut built = Reader::open(&rec.store, "seek").await?;
        assert_eq!(built.damage(), None);
        assert_eq!(built.header(), &rec.stored.header);
        assert_seeks_match(&mut built, &rec.stored, &format!("{name} built")).await;

        rec.store.write_index("seek", built.index()).await?;
        let mut stored = Reader::open(&rec.store, "seek").await?;
        assert_eq!(stored.index(), built.index());
        assert_seeks_match(&mut stored, &rec.stored, &format!("{name} stored")).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_seek_reads_one_segment() -> anyhow::Result<()> {
    let rec = recorded("vim.cast", "one", 700).await?;
    let mut reader = Reader::open(&rec.store, "one").await?;
    let spans = reader.index().segments.clone();
    assert!(spans.len() > 10);
    // Delete every segment but the one holding the target: the seek still works, because
    // it needs only its keyframe (in the index) and that segment.
    let target = &spans[spans.len() / 2];
    for span in &spans {
        if span.seq != target.seq {
            std::fs::remove_file(rec.root.join(recorder::segment_name(span.seq)))?;
        }
    }
    let t = (target.t_start + target.t_end) / 2.0;
    let seek = reader.screen_at(t).await?;
    let (w, h) = (rec.stored.header.width, rec.stored.header.height);
    let straight = fixture::straight_replay(w, h, &rec.stored.events, t);
    fixture::assert_same_screen(&seek, &straight, "single segment");
    assert_eq!(reader.damage(), None);
    Ok(())
}

#[tokio::test]
async fn events_between_continue_a_seek() -> anyhow::Result<()> {
    let rec = recorded("vim.cast", "range", 700).await?;
    let mut reader = Reader::open(&rec.store, "range").await?;
    let all = reader.events_between(-1.0, f64::INFINITY).await?;
    assert_eq!(all, rec.stored.events);
    let d = reader.duration();
    for (from, to) in [(0.0, d / 3.0), (d / 3.0, d * 0.7), (d * 0.7, d + 1.0)] {
        let mut screen = reader.screen_at(from).await?;
        let events = reader.events_between(from, to).await?;
        assert!(events.iter().all(|e| e.time > from && e.time <= to));
        for event in &events {
            match event.kind {
                EventKind::Output => screen.feed(event.data.as_str()),
                EventKind::Resize => {
                    let (c, r) = event.data.split_once('x').expect("size");
                    screen.resize(c.parse()?, r.parse()?);
                }
                _ => {}
            }
        }
        let (w, h) = (rec.stored.header.width, rec.stored.header.height);
        let straight = fixture::straight_replay(w, h, &rec.stored.events, to);
        fixture::assert_same_screen(&screen, &straight, &format!("{from}..{to}"));
    }
    Ok(())
}

#[tokio::test]
async fn local_cast_files_plain_and_compressed() -> anyhow::Result<()> {
    let rec = recorded("vim.cast", "export", 700).await?;
    // `cat seg-* > x.cast.zst`: data frames with the trailer frames in between.
    let mut concatenated = Vec::new();
    for span in Reader::open(&rec.store, "export")
        .await?
        .index()
        .segments
        .iter()
    {
        concatenated.extend(std::fs::read(
            rec.root.join(recorder::segment_name(span.seq)),
        )?);
    }
    let plain = rec.store.read_cast("export").await?;
    for (what, bytes) in [("cast", plain.as_slice()), ("cast.zst", &concatenated)] {
        let mut reader = Reader::from_cast_bytes(bytes)?;
        assert_eq!(reader.damage(), None, "{what}");
        assert_eq!(reader.header(), &rec.stored.header);
        assert_seeks_match(&mut reader, &rec.stored, what).await;
    }
    Ok(())
}

#[tokio::test]
async fn long_cast_files_are_cut_into_pieces_with_keyframes() -> anyhow::Result<()> {
    // The vim session 200 times over (about 1.5 MiB of data): more than one in-memory piece.
    let session = fixture::session("vim.cast")?;
    let span = last_time(&session.events) + 1.0;
    let mut text = serde_json::to_string(&session.header)? + "\n";
    let mut events = Vec::new();
    for round in 0..200 {
        for e in &session.events {
            let time = e.time + f64::from(round) * span;
            let line = (time, e.kind.code(), &e.data);
            text.push_str(&serde_json::to_string(&line)?);
            text.push('\n');
            events.push(Event {
                time,
                kind: e.kind.clone(),
                data: e.data.clone(),
            });
        }
    }
    let mut reader = Reader::from_cast_bytes(text.as_bytes())?;
    let index = reader.index();
    assert!(index.segments.len() >= 2, "{} pieces", index.segments.len());
    // 1 MiB pieces: keyframes inside them too.
    assert!(index.keyframes.iter().any(|k| k.event > 0));
    let cast = ParsedCast {
        header: session.header.clone(),
        events,
        errors: Vec::new(),
    };
    let duration = reader.duration();
    for i in 0..=40 {
        let t = duration * f64::from(i) / 40.0 + 0.001;
        let seek = reader.screen_at(t).await?;
        let straight = fixture::straight_replay(80, 24, &cast.events, t);
        fixture::assert_same_screen(&seek, &straight, &format!("long cast at {t}"));
    }
    Ok(())
}

#[tokio::test]
async fn big_segments_seek_from_keyframes_inside_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = RecordingStore::open(fixture::config(dir.path(), 4 << 20)).await?;
    let writer = store.begin(fixture::meta("big", 100, 30))?;
    for chunk in 0..150u32 {
        let mut text = String::new();
        for i in 0..300u32 {
            text.push_str(&format!(
                "\u{1b}[3{}m{chunk:03}.{i:03}\u{1b}[0m GET /items/{} 200\r\n",
                i % 8,
                chunk * i
            ));
            if i % 50 == 0 {
                text.push_str(&format!("\u{1b}[2A\u{1b}[2K progress {i}\r\u{1b}[2B"));
            }
        }
        let at = Duration::from_millis(u64::from(chunk) * 20);
        writer.output_at(at, text.as_bytes()).await?;
    }
    writer.finish("test").await?;
    let stored = recorder::parse_cast(&store.read_cast("big").await?)?;
    let mut reader = Reader::open(&store, "big").await?;
    let index = reader.index();
    assert_eq!(index.segments.len(), 1);
    assert!(index.keyframes.iter().filter(|k| k.event > 0).count() >= 2);
    let duration = reader.duration();
    for i in 0..=20 {
        let t = duration * f64::from(i) / 20.0;
        let seek = reader.screen_at(t).await?;
        let straight = fixture::straight_replay(100, 30, &stored.events, t);
        fixture::assert_same_screen(&seek, &straight, &format!("big segment at {t}"));
    }
    Ok(())
}

fn last_time(events: &[Event]) -> f64 {
    events.last().map_or(0.0, |e| e.time)
}

#[tokio::test]
async fn damaged_recordings_play_up_to_the_damage() -> anyhow::Result<()> {
    let rec = recorded("shell.cast", "dmg", 600).await?;
    let full = Reader::open(&rec.store, "dmg").await?;
    let spans = full.index().segments.clone();
    assert!(spans.len() > 8);
    let seg = |seq: u32| rec.root.join(recorder::segment_name(seq));

    // The damaged segment must change the screen, or a seek would never need it.
    let k = spans
        .iter()
        .position(|s| s.seq >= 5 && s.screen_events > 0)
        .expect("a segment with output");
    let seq = spans[k].seq;

    // A corrupt segment (one flipped byte in its data frame).
    let mut bytes = std::fs::read(seg(seq))?;
    bytes[20] ^= 0x40;
    std::fs::write(seg(seq), &bytes)?;
    let mut reader = Reader::open(&rec.store, "dmg").await?;
    let damage = reader.damage().expect("damage").to_string();
    assert!(
        damage.starts_with(&format!("segment {seq} is corrupt")),
        "{damage}"
    );
    let stop = spans[k - 1].t_end;
    assert!(
        damage.ends_with(&format!("playback stops at {stop:.3} s")),
        "{damage}"
    );
    assert_eq!(reader.duration(), stop);
    assert_eq!(reader.index().segments.len(), k);
    let at_end = reader.screen_at(1e9).await?;
    let (w, h) = (rec.stored.header.width, rec.stored.header.height);
    let straight = fixture::straight_replay(w, h, &rec.stored.events, stop);
    fixture::assert_same_screen(&at_end, &straight, "at the damage");

    // A missing segment.
    std::fs::remove_file(seg(seq))?;
    let reader = Reader::open(&rec.store, "dmg").await?;
    let damage = reader.damage().expect("damage");
    assert!(
        damage.starts_with(&format!("segment {seq} is missing")),
        "{damage}"
    );
    assert_eq!(reader.duration(), stop);

    // A segment that disappears after the index was stored: found when seeking into it.
    rec.store.write_index("dmg", full.index()).await?;
    let mut reader = Reader::open(&rec.store, "dmg").await?;
    assert_eq!(reader.damage(), None);
    let inside = (spans[k].t_start + spans[k].t_end) / 2.0;
    assert!(reader.screen_at(spans[k - 1].t_start).await.is_ok());
    assert!(reader.screen_at(inside).await.is_err());
    let damage = reader.damage().expect("damage noted while reading");
    assert!(
        damage.starts_with(&format!("segment {seq} cannot be read")),
        "{damage}"
    );
    Ok(())
}

#[tokio::test]
async fn corrupt_lines_and_cut_files_stop_playback_there() -> anyhow::Result<()> {
    let cast = fixture::session("shell.cast")?;
    let text = std::fs::read_to_string(fixture::data_dir().join("shell.cast"))?;
    let lines: Vec<&str> = text.lines().collect();
    // Line 101 (the 100th event) is garbled; a file cut mid-line ends the same way.
    let mut garbled = lines.clone();
    garbled[100] = "[12.5, \"o\", \"unterminated";
    let cut = format!("{}\n{}", lines[..100].join("\n"), &lines[100][..7]);
    for (what, bytes) in [("garbled", garbled.join("\n")), ("cut", cut)] {
        let mut reader = Reader::from_cast_bytes(bytes.as_bytes())?;
        let stop = last_time(&cast.events[..99]);
        let damage = reader.damage().expect("damage");
        assert!(
            damage.starts_with("line 101 is not a valid event"),
            "{what}: {damage}"
        );
        assert_eq!(reader.duration(), stop, "{what}");
        let screen = reader.screen_at(1e9).await?;
        let straight = fixture::straight_replay(80, 24, &cast.events, stop);
        fixture::assert_same_screen(&screen, &straight, what);
    }
    Ok(())
}

#[tokio::test]
async fn a_recording_cut_off_without_manifest_says_so() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = RecordingStore::open(fixture::config(dir.path(), 400)).await?;
    let cast = fixture::session("shell.cast")?;
    let writer = store.begin(fixture::meta("cut", 80, 24))?;
    for event in cast.events.iter().filter(|e| e.kind == EventKind::Output) {
        let at = Duration::from_secs_f64(event.time);
        writer.output_at(at, event.data.as_bytes()).await?;
    }
    // The session is still running (no finish): closed segments reach the store, the open one
    // does not.
    assert!(store.flush(Duration::from_secs(10)).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reader = loop {
        let reader = Reader::open(&store, "cut").await?;
        if reader.index().segments.len() > 3 || std::time::Instant::now() > deadline {
            break reader;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(reader.index().segments.len() > 3);
    let damage = reader.damage().expect("no manifest is reported");
    assert!(damage.starts_with("recording has no manifest"), "{damage}");
    assert!(reader.duration() < last_time(&cast.events));
    drop(writer);
    Ok(())
}
