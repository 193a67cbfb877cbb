//! Local recording files: `FILE.cast` or `FILE.cast.zst` (also concatenated store segments),
//! read in the background into a [`CastSource`] so the first frame shows while the rest loads.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::SourceError;
use super::cast::{CastLoader, CastSource, split_header};

/// Bytes read per step of the background load.
const READ_CHUNK: usize = 1024 * 1024;

/// Longest header line accepted before giving up on the file.
const MAX_HEADER: usize = 1024 * 1024;

/// zstd frame magic (little endian) and the skippable frame magic range.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fn is_zstd(first: &[u8]) -> bool {
    first.starts_with(&ZSTD_MAGIC)
        || (first.len() >= 4 && first[1..4] == [0x2a, 0x4d, 0x18] && first[0] & 0xf0 == 0x50)
}

/// Counts bytes read from the file (compressed bytes for `.zst`) for the progress bar.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path`, reads up to the header and returns the source; the rest loads on a thread.
/// Blocking (file I/O): call it off the UI thread.
pub fn open_file(path: &Path) -> Result<CastSource, SourceError> {
    let origin = path.display().to_string();
    let read_error = |reason: String| SourceError::Read {
        what: origin.clone(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| read_error(e.to_string()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut magic = [0u8; 4];
    let got = file
        .read(&mut magic)
        .map_err(|e| read_error(e.to_string()))?;
    let count = Arc::new(AtomicU64::new(0));
    let file = Counting {
        inner: std::io::Cursor::new(magic[..got].to_vec()).chain(file),
        count: count.clone(),
    };
    let mut reader: Box<dyn Read + Send> = if is_zstd(&magic[..got]) {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| read_error(e.to_string()))?)
    } else {
        Box::new(file)
    };
    // The header line first: without it there is nothing to show.
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !head.contains(&b'\n') && head.len() < MAX_HEADER {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| read_error(e.to_string()))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let (header, rest) = split_header(&head, &origin)?;
    let rest = rest.to_vec();
    let (source, mut loader) = CastSource::new(header, &origin);
    loader.push_bytes(&rest);
    std::thread::Builder::new()
        .name("replay-load".to_string())
        .spawn(move || load_rest(reader, loader, count, total))
        .map_err(|e| read_error(format!("cannot start loader thread: {e}")))?;
    Ok(source)
}

fn load_rest(
    mut reader: Box<dyn Read + Send>,
    mut loader: CastLoader,
    count: Arc<AtomicU64>,
    total: u64,
) {
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        if loader.abandoned() {
            return;
        }
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                loader.push_bytes(&chunk[..n]);
                let done = count.load(Ordering::Relaxed);
                let fraction = if total > 0 {
                    done as f64 / total as f64
                } else {
                    0.0
                };
                loader.progress(
                    fraction,
                    format!(
                        "loading {} of {}",
                        crate::units::size(done),
                        crate::units::size(total)
                    ),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let at = crate::units::offset(loader.last_time());
                loader.finish(Some(format!(
                    "recording stops at {at}: cannot read further: {e}"
                )));
                return;
            }
        }
    }
    loader.finish(None);
}
