//! Deterministic, realistic text for benchmarks: application log lines (timestamps, levels,
//! request ids, paths, numbers: compressible like real output, not trivially so) and the
//! terminal output of a busy interactive session (those lines coloured, mixed with progress bars
//! redrawn in place, status blocks rewritten with cursor-up and full-screen redraws). The same
//! seed gives the same text, so runs compare; [`Rng`] is the generator behind it, for
//! benchmarks that need reproducible numbers of their own.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// A seed for when any will do.
pub const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// xorshift64: reproducible pseudo-random numbers without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (zero, which xorshift never leaves, is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { SEED } else { seed })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next_u64() % n).unwrap_or(0)
    }

    /// A number in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const PLAIN_LEVELS: [&str; 4] = ["INFO ", "DEBUG", "WARN ", "ERROR"];
const COLOURED_LEVELS: [&str; 4] = [
    "\u{1b}[32mINFO\u{1b}[0m ",
    "DEBUG",
    "\u{1b}[33mWARN\u{1b}[0m ",
    "\u{1b}[1;31mERROR\u{1b}[0m",
];
const METHODS: [&str; 3] = ["GET ", "POST", "PUT "];
const PATHS: [&str; 5] = [
    "/api/v1/items",
    "/api/v1/users",
    "/healthz",
    "/api/v2/orders",
    "/static/app.js",
];
const STATUSES: [u16; 6] = [200, 200, 200, 201, 404, 500];

/// Application log lines, one per [`LogLines::push_line`], one millisecond apart:
/// `2025-06-01T00:00:00.001Z INFO  worker-7  req=… GET  /api/v1/items/123 status=200 …`.
#[derive(Debug, Clone)]
pub struct LogLines {
    rng: Rng,
    n: u64,
    coloured: bool,
}

impl LogLines {
    /// Lines as in a log file, ending in `\n`.
    pub fn plain(seed: u64) -> LogLines {
        LogLines {
            rng: Rng::new(seed),
            n: 0,
            coloured: false,
        }
    }

    /// Lines as a terminal shows them: the timestamp dim, the level coloured, ending in `\r\n`.
    pub fn coloured(seed: u64) -> LogLines {
        LogLines {
            coloured: true,
            ..LogLines::plain(seed)
        }
    }

    /// Appends the next line to `out`.
    pub fn push_line(&mut self, out: &mut String) {
        let r = self.rng.next_u64();
        self.n += 1;
        let n = self.n;
        let (dim, normal, levels, end) = if self.coloured {
            ("\u{1b}[2m", "\u{1b}[0m", &COLOURED_LEVELS, "\r\n")
        } else {
            ("", "", &PLAIN_LEVELS, "\n")
        };
        let pick = |shift: u32, len: usize| (r >> shift) as usize % len;
        let _ = write!(
            out,
            "{dim}2025-06-{:02}T{:02}:{:02}:{:02}.{:03}Z{normal} {} worker-{:<2} req={r:016x} {} {}/{} \
             status={} bytes={} latency_ms={}{end}",
            1 + n / 86_400_000 % 28,
            n / 3_600_000 % 24,
            n / 60_000 % 60,
            n / 1000 % 60,
            n % 1000,
            levels[pick(0, levels.len())],
            (r >> 2) & 31,
            METHODS[pick(7, METHODS.len())],
            PATHS[pick(9, PATHS.len())],
            (r >> 40) & 0xffff,
            STATUSES[pick(20, STATUSES.len())],
            (r >> 24) & 0xfffff,
            (r >> 50) & 0x3ff,
        );
    }

    /// Appends lines until `out` holds at least `bytes`.
    pub fn fill(&mut self, out: &mut String, bytes: usize) {
        while out.len() < bytes {
            self.push_line(out);
        }
    }
}

/// Writes exactly `size` bytes of plain log lines to `path` (the last line cut short).
pub fn write_file(path: &Path, size: u64, seed: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut lines = LogLines::plain(seed);
    let mut block = String::with_capacity(1 << 16);
    let mut written = 0u64;
    while written < size {
        block.clear();
        lines.fill(&mut block, 1 << 16);
        let take =
            usize::try_from(size - written).map_or(block.len(), |left| left.min(block.len()));
        out.write_all(&block.as_bytes()[..take])?;
        written += take as u64;
    }
    out.flush()
}

/// The terminal output of a busy interactive session in a terminal of `rows` rows: mostly
/// coloured log lines, with progress bars redrawn in place (`\r`, erase-line), status blocks
/// rewritten after cursor-up, and now and then a full-screen (top-like) redraw.
#[derive(Debug, Clone)]
pub struct SessionOutput {
    rng: Rng,
    lines: LogLines,
    rows: u16,
}

impl SessionOutput {
    pub fn new(seed: u64, rows: u16) -> SessionOutput {
        let mut rng = Rng::new(seed);
        let lines = LogLines::coloured(rng.next_u64());
        SessionOutput {
            rng,
            lines,
            rows: rows.max(3),
        }
    }

    /// Appends output until `out` holds at least `bytes`.
    pub fn fill(&mut self, out: &mut String, bytes: usize) {
        while out.len() < bytes {
            let r = self.rng.next_u64();
            match r % 100 {
                0..=3 => progress_bar(out, r),
                4..=5 => status_block(out, r),
                6 => self.full_screen(out),
                _ => self.lines.push_line(out),
            }
        }
    }

    fn full_screen(&mut self, out: &mut String) {
        out.push_str("\u{1b}[H\u{1b}[2J\u{1b}[7m  PID USER     %CPU %MEM COMMAND \u{1b}[0m");
        for row in 2..self.rows {
            let v = self.rng.next_u64();
            let _ = write!(
                out,
                "\u{1b}[{row};1H{:>5} app      {:>4.1} {:>4.1} worker --id {}",
                v % 65536,
                ((v >> 16) & 0x3ff) as f64 / 10.0,
                ((v >> 26) & 0xff) as f64 / 10.0,
                (v >> 40) & 0xff
            );
        }
        let _ = write!(out, "\u{1b}[{};1H", self.rows);
    }
}

/// A download's progress bar redrawn in place from 0 to 100 %, then left on its line.
fn progress_bar(out: &mut String, r: u64) {
    for pct in (0..=100).step_by(20) {
        let _ = write!(
            out,
            "\r\u{1b}[36m[{:<20}]\u{1b}[0m {pct:>3}% layer {:02x}\u{1b}[K",
            "#".repeat(pct / 5),
            (r >> 8) & 0xff
        );
    }
    out.push_str("\r\n");
}

/// Three status lines rewritten in place: cursor up, erase each, write it again.
fn status_block(out: &mut String, r: u64) {
    out.push_str("\u{1b}[3A");
    for w in 0..3 {
        let _ = write!(
            out,
            "\u{1b}[2K worker-{w}: {} jobs, {} ms\r\n",
            (r >> (8 + w * 8)) & 0xff,
            (r >> 40) & 0x3ff
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_lines() {
        let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
        LogLines::plain(7).fill(&mut a, 10_000);
        LogLines::plain(7).fill(&mut b, 10_000);
        LogLines::plain(8).fill(&mut c, 10_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let first = a.lines().next().unwrap_or_default();
        assert!(first.starts_with("2025-06-01T00:00:00.001Z "), "{first}");
        assert!(first.contains(" status="), "{first}");
        assert!(a.lines().all(|l| l.contains(" latency_ms=")));
    }

    #[test]
    fn a_file_gets_exactly_its_size_of_whole_lines_but_the_last() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log.txt");
        write_file(&path, 200_003, SEED)?;
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.len(), 200_003);
        let mut expected = String::new();
        LogLines::plain(SEED).fill(&mut expected, 200_003);
        assert!(expected.starts_with(&text));
        Ok(())
    }

    #[test]
    fn session_output_mixes_every_kind_of_output() {
        let mut out = String::new();
        SessionOutput::new(SEED, 40).fill(&mut out, 256 * 1024);
        assert!(out.len() >= 256 * 1024);
        for kind in [
            "\u{1b}[32mINFO",
            "100% layer",
            "\u{1b}[3A\u{1b}[2K",
            "\u{1b}[2J",
            "\u{1b}[39;1H",
        ] {
            assert!(out.contains(kind), "no {kind:?} in the output");
        }
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(0);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
            assert!((0.0..1.0).contains(&rng.fraction()));
        }
        assert_eq!(rng.below(0), 0);
    }
}
