//! Stream-tagged writes: every stream becomes the asciicast event it stands for, and a session
//! recorded through `write` with stdout, stderr and stdin is byte for byte the recording the
//! untagged `output()`/`input()` calls make.

mod support;

use std::time::Duration;

use recorder::{EventKind, RecordError, Stream, parse_cast};
use support::{Fixture, meta};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/session.cast");

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[tokio::test]
async fn each_stream_becomes_its_event_kind() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let writer = fx.store.begin(meta("kinds-1"))?;
    let streams = [
        (Stream::TerminalOutput, EventKind::Output),
        (Stream::TerminalInput, EventKind::Input),
        (Stream::Stdout, EventKind::Output),
        (Stream::Stderr, EventKind::Output),
        (Stream::Stdin, EventKind::Input),
    ];
    for (n, (stream, _)) in streams.iter().enumerate() {
        let data = format!("{stream:?} {n}\r\n");
        writer
            .write_at(ms(n as u64), *stream, data.as_bytes())
            .await?;
    }
    writer.finish_at(ms(10), "done").await?;

    let parsed = parse_cast(&fx.store.read_cast("kinds-1").await?)?;
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let events: Vec<(EventKind, &str)> = parsed
        .events
        .iter()
        .map(|e| (e.kind.clone(), e.data.as_str()))
        .collect();
    let mut expected: Vec<(EventKind, String)> = streams
        .iter()
        .enumerate()
        .map(|(n, (stream, kind))| (kind.clone(), format!("{stream:?} {n}\r\n")))
        .collect();
    expected.push((EventKind::Marker, "end: done".to_string()));
    let expected: Vec<(EventKind, &str)> = expected
        .iter()
        .map(|(kind, data)| (kind.clone(), data.as_str()))
        .collect();
    assert_eq!(events, expected);
    Ok(())
}

/// `golden_cast_is_byte_stable_and_parses_back` (format.rs) records this session with
/// `output_at`/`input_at`; here its output goes out as a stdout/stderr mix and its input as
/// stdin, and must give the same file.
#[tokio::test]
async fn the_golden_session_through_tagged_streams_is_the_golden_file() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let writer = fx.store.begin(meta("golden-1"))?;
    writer.write_at(ms(500), Stream::Stdout, b"$ ").await?;
    writer.write_at(ms(750), Stream::Stdin, b"l").await?;
    writer
        .write_at(ms(850), Stream::TerminalInput, b"s\r")
        .await?;
    writer
        .write_at(
            ms(850),
            Stream::Stderr,
            b"ls\r\n\x1b[1;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\r\n",
        )
        .await?;
    writer.resize_at(ms(1850), 120, 40).await?;
    writer
        .marker_at(ms(1850), "grant expires in 5 minutes")
        .await?;
    // The split "é" and emoji now cross from stdout to stderr and back.
    writer
        .write_at(ms(1851), Stream::Stdout, b"caf\xc3")
        .await?;
    writer
        .write_at(ms(1849), Stream::Stderr, b"\xa9 \xf0\x9f")
        .await?;
    writer
        .write_at(ms(1853), Stream::Stdout, b"\x98\x80 \xff\x00end\r\n")
        .await?;
    writer.finish_at(ms(2000), "expired").await?;

    let cast = fx.store.read_cast("golden-1").await?;
    assert_eq!(
        String::from_utf8_lossy(&cast),
        String::from_utf8_lossy(&std::fs::read(GOLDEN)?)
    );
    Ok(())
}

/// One chunk of a session: when, on which stream, what.
type Chunk = (u64, Stream, &'static [u8]);

/// A command's streams with characters split across chunks and across stdout/stderr, invalid
/// bytes, an empty chunk, a time going backwards, and halves of characters left at the end.
const EXEC_SESSION: &[Chunk] = &[
    (0, Stream::Stdin, b"SELECT '\xe2\x82"),
    (1, Stream::Stdin, b"\xac';\n"),
    (2, Stream::Stdout, b"  ?column? \n----------\n \xe2"),
    (3, Stream::Stderr, b"\x82\xac\nNOTICE: caf\xc3"),
    (3, Stream::Stdout, b""),
    (4, Stream::Stdout, b"\xa9\n\xff(1 row)\n"),
    (2, Stream::Stderr, b"WARNING: \xf0\x9f"),
    (5, Stream::Stdin, b"\\q\n\xf0\x9f\x98"),
    (6, Stream::Stdout, b"bye\n\xf0"),
];

/// What the same bytes looked like when all output went through `output()`.
fn untagged(stream: Stream) -> Stream {
    match stream {
        Stream::TerminalOutput | Stream::Stdout | Stream::Stderr => Stream::TerminalOutput,
        Stream::TerminalInput | Stream::Stdin => Stream::TerminalInput,
    }
}

#[tokio::test]
async fn a_stdout_stderr_stdin_mix_records_exactly_as_output_and_input_did() -> anyhow::Result<()> {
    let tagged = Fixture::new(|_| {}).await?;
    let writer = tagged.store.begin(meta("exec-1"))?;
    for &(at, stream, data) in EXEC_SESSION {
        writer.write_at(ms(at), stream, data).await?;
    }
    writer.finish_at(ms(7), "exit 0").await?;

    let old_path = Fixture::new(|_| {}).await?;
    let writer = old_path.store.begin(meta("exec-1"))?;
    for &(at, stream, data) in EXEC_SESSION {
        match untagged(stream) {
            Stream::TerminalOutput => writer.output_at(ms(at), data).await?,
            _ => writer.input_at(ms(at), data).await?,
        }
    }
    writer.finish_at(ms(7), "exit 0").await?;

    let cast = tagged.store.read_cast("exec-1").await?;
    assert_eq!(
        String::from_utf8_lossy(&cast),
        String::from_utf8_lossy(&old_path.store.read_cast("exec-1").await?)
    );
    let parsed = parse_cast(&cast)?;
    let data: Vec<(&str, &str)> = parsed
        .events
        .iter()
        .map(|e| (e.kind.code(), e.data.as_str()))
        .collect();
    assert_eq!(
        data,
        [
            ("i", "SELECT '"),
            ("i", "€';\n"),
            ("o", "  ?column? \n----------\n "),
            ("o", "€\nNOTICE: caf"),
            ("o", "é\n\u{FFFD}(1 row)\n"),
            ("o", "WARNING: "),
            ("i", "\\q\n"),
            // The emoji stderr began is cut off by stdout's next chunk.
            ("o", "\u{FFFD}bye\n"),
            // Halves left at the end are flushed at finish, output first, then input.
            ("o", "\u{FFFD}"),
            ("i", "\u{FFFD}"),
            ("m", "end: exit 0"),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_write_after_finish_is_refused_on_every_stream() -> anyhow::Result<()> {
    let fx = Fixture::new(|_| {}).await?;
    let writer = fx.store.begin(meta("after-1"))?;
    writer.write(Stream::Stdout, b"last words\n").await?;
    writer.finish("exit 0").await?;
    for stream in [Stream::Stdout, Stream::Stderr, Stream::Stdin] {
        let error = writer.write(stream, b"late").await.unwrap_err();
        assert!(matches!(error, RecordError::Finished { .. }), "{error}");
        // Empty writes carry no data but still say the recording is over.
        let error = writer.write(stream, b"").await.unwrap_err();
        assert!(matches!(error, RecordError::Finished { .. }), "{error}");
    }
    let parsed = parse_cast(&fx.store.read_cast("after-1").await?)?;
    let data: Vec<&str> = parsed.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["last words\n", "end: exit 0"]);
    Ok(())
}
