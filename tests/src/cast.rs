//! Reading recordings back: asciicast v2 files as exported, and the raw zstd segments the
//! daemon stored, decoded with the real `zstd` and `asciinema` tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::child::{self, Input};
use crate::client::shell_quote;
use crate::prereq;

/// An asciicast v2 file: a header object, then `[time, code, data]` events.
#[derive(Debug, Clone)]
pub struct Cast {
    pub header: serde_json::Value,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub time: f64,
    /// "o" output, "i" input, "r" resize, "m" marker.
    pub code: String,
    pub data: String,
}

impl Cast {
    pub fn parse(text: &str) -> Result<Cast> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: serde_json::Value =
            serde_json::from_str(lines.next().context("empty asciicast file")?)
                .context("asciicast header is not JSON")?;
        ensure!(
            header["version"] == 2,
            "asciicast header version is not 2: {header}"
        );
        let events = lines
            .map(|line| {
                let (time, code, data): (f64, String, String) = serde_json::from_str(line)
                    .with_context(|| format!("bad asciicast event {line:?}"))?;
                Ok(Event { time, code, data })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Cast { header, events })
    }

    pub fn read(path: &Path) -> Result<Cast> {
        Cast::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
    }

    /// All data of events with `code`, concatenated.
    pub fn stream(&self, code: &str) -> String {
        self.events
            .iter()
            .filter(|e| e.code == code)
            .map(|e| e.data.as_str())
            .collect()
    }
}

/// What `asciinema cat FILE` prints: the terminal output of the recording. asciinema 2.x opens
/// /dev/tty, so it runs under `script`, which gives it a terminal (and turns "\n" into "\r\n").
pub fn asciinema_cat(path: &Path) -> Result<String> {
    let line = format!(
        "{} cat {}",
        shell_quote(&prereq::tool("asciinema").display().to_string()),
        shell_quote(&path.display().to_string())
    );
    let out = child::run(
        Command::new(prereq::tool("script")).args(["-q", "-e", "-c", &line, "/dev/null"]),
        Input::Null,
        Duration::from_secs(30),
    )?;
    ensure!(
        out.status.success(),
        "asciinema cat {} failed: {}{}",
        path.display(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(out.stdout_str())
}

/// The segment files of recording `id` under `root`, in name order (`seg-*.zst`).
pub fn segment_files(root: &Path, id: &str) -> Result<Vec<PathBuf>> {
    let dir = find_dir(root, id)?
        .with_context(|| format!("no directory named {id} under {}", root.display()))?;
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".zst"))
        })
        .collect();
    segments.sort();
    ensure!(
        !segments.is_empty(),
        "no seg-*.zst files in {}",
        dir.display()
    );
    Ok(segments)
}

fn find_dir(root: &Path, name: &str) -> Result<Option<PathBuf>> {
    if !root.is_dir() {
        return Ok(None);
    }
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == name) {
            return Ok(Some(path));
        }
        if let Some(found) = find_dir(&path, name)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `zstd -dc seg-1 seg-2 ...`: the segments decoded and concatenated.
pub fn decode_segments(segments: &[PathBuf]) -> Result<Vec<u8>> {
    let out = child::run(
        Command::new(prereq::tool("zstd"))
            .arg("-dcq")
            .args(segments),
        Input::Null,
        Duration::from_secs(60),
    )?;
    if !out.status.success() {
        bail!("zstd -dc {segments:?} failed: {}", out.stderr_str());
    }
    Ok(out.stdout)
}
