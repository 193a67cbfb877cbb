//! Export of a recording, or a time range of it, to a plain asciicast v2 file that `asciinema`
//! plays.
//!
//! A range that starts mid-recording begins with the terminal as it was at its start: the
//! header gets the terminal size of that moment and the first event (at 0.0) is the emulator's
//! dump of the screen, so the exported file shows the same thing the reviewer saw. Event times
//! are shifted to start at 0. Events are read in windows so a long recording is never held in
//! memory twice.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use recorder::{Event, Header};

use crate::source::{RecordingSource, SourceError};

/// Recording time read per step.
const WINDOW: f64 = 60.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub path: PathBuf,
    pub events: u64,
    pub bytes: u64,
    /// The exported range in recording time.
    pub from: f64,
    pub to: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write export {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("export range {from:.1}s to {to:.1}s is empty")]
    EmptyRange { from: f64, to: f64 },
}

/// Writes `range` (recording seconds, inclusive end) or the whole recording to `path`.
pub async fn export(
    source: &mut dyn RecordingSource,
    path: &Path,
    range: Option<(f64, f64)>,
) -> Result<ExportSummary, ExportError> {
    let write_error = |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let duration = source.duration();
    let (from, to) = match range {
        Some((a, b)) => (a.min(b).max(0.0), a.max(b)),
        None => (0.0, duration),
    };
    if range.is_some() && to <= from {
        return Err(ExportError::EmptyRange { from, to });
    }
    let mut header = source.header();
    let mut first: Option<String> = None;
    if from > 0.0 {
        let term = source.screen_at(from).await?;
        let (cols, rows) = term.size();
        header.width = cols as u32;
        header.height = rows as u32;
        header.timestamp = header.timestamp.map(|t| t + from as i64);
        header.title = Some(format!(
            "{} ({} to {})",
            header
                .title
                .clone()
                .unwrap_or_else(|| "recording".to_string()),
            crate::units::offset(from),
            crate::units::offset(to)
        ));
        first = Some(term.dump());
    }
    let file = std::fs::File::create(path).map_err(write_error)?;
    let mut out = Counting {
        inner: BufWriter::new(file),
        bytes: 0,
    };
    write_header(&mut out, &header).map_err(write_error)?;
    let mut events = 0u64;
    if let Some(dump) = first {
        write_event(&mut out, 0.0, "o", &dump).map_err(write_error)?;
        events += 1;
    }
    // Events strictly after `from` (the dump covers everything up to it); the very first
    // window of a whole export starts before 0 so an event at 0.0 is included.
    let mut at = if from > 0.0 { from } else { -1.0 };
    while at < to {
        let until = (at + WINDOW).min(to);
        for event in source.events_between(at, until).await? {
            write_recorded(&mut out, &event, from).map_err(write_error)?;
            events += 1;
        }
        at = until;
    }
    out.inner.flush().map_err(write_error)?;
    out.inner.get_ref().sync_all().map_err(write_error)?;
    Ok(ExportSummary {
        path: path.to_path_buf(),
        events,
        bytes: out.bytes,
        from,
        to,
    })
}

struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_header(out: &mut impl Write, header: &Header) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, header)?;
    out.write_all(b"\n")
}

fn write_recorded(out: &mut impl Write, event: &Event, shift: f64) -> std::io::Result<()> {
    write_event(
        out,
        (event.time - shift).max(0.0),
        event.kind.code(),
        &event.data,
    )
}

fn write_event(out: &mut impl Write, time: f64, code: &str, data: &str) -> std::io::Result<()> {
    write!(out, "[{time:.6}, ")?;
    serde_json::to_writer(&mut *out, code)?;
    out.write_all(b", ")?;
    serde_json::to_writer(&mut *out, data)?;
    out.write_all(b"]\n")
}
