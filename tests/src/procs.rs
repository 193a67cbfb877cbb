//! Looking at processes through /proc: finding target-side processes by their exact argv (to
//! prove a session's remote command really died) and reading a process's resident memory.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Pids of all processes whose argv is exactly `argv`.
pub fn with_argv(argv: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                let args: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
                args.len() == argv.len() && args.iter().zip(argv).all(|(a, b)| *a == b.as_bytes())
            })
        })
        .collect()
}

/// Waits until some process has exactly `argv`; returns its pid.
pub fn wait_present(argv: &[&str], timeout: Duration) -> Result<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(pid) = with_argv(argv).first() {
            return Ok(*pid);
        }
        if Instant::now() >= deadline {
            bail!("no process with argv {argv:?} appeared within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no process has exactly `argv` (zombies count as gone); returns when that was.
pub fn wait_gone(argv: &[&str], deadline: Instant) -> Result<Instant> {
    loop {
        let alive: Vec<u32> = with_argv(argv)
            .into_iter()
            .filter(|pid| !is_zombie(*pid))
            .collect();
        if alive.is_empty() {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!("processes {alive:?} with argv {argv:?} are still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Resident set size of `pid` in KiB (VmRSS from /proc/PID/status).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("unparsable VmRSS line {line:?}"))
}

/// CPU time (user + system) `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (_, rest) = stat.rsplit_once(')').context("unparsable /proc/PID/stat")?;
    // After the command name: state is field 3 of stat, utime 14 and stime 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        bail!("no utime/stime in /proc/{pid}/stat");
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    Ok(Duration::from_millis((user + system) * 1000 / per_second))
}

/// A number unlikely to collide between concurrently running tests, for unique argv and names.
pub fn unique_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    100_000 + (u64::from(std::process::id()) * 7919 + u64::from(nanos) + n * 104_729) % 900_000
}

/// Applies an open-file limit (soft and hard, like `ulimit -n`) and a umask to a child process.
pub fn limit_process(
    command: &mut std::process::Command,
    open_files: Option<u64>,
    umask: Option<u32>,
) {
    use std::os::unix::process::CommandExt;
    if open_files.is_none() && umask.is_none() {
        return;
    }
    // SAFETY: only async-signal-safe calls (setrlimit, umask) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some(n) = open_files {
                let limit = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(mask) = umask {
                libc::umask(mask);
            }
            Ok(())
        });
    }
}
