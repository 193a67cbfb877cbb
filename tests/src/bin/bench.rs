//! bastion benchmark: the real daemon against a private OpenSSH sshd, compared with plain ssh.
//!
//! Run (release build; root, like the end-to-end tests):
//!
//!     cargo run --release -p bastion-tests --bin bench -- [--bytes 1G] [--samples 500]
//!         [--sessions 100] [--check]
//!
//! In one run, against the same sshd:
//! 1. Throughput: `cat` of a file of log-like text lines (`--bytes`, default 1 GB, generated once)
//!    through ssh direct, `ssh -J` via the same sshd as jump host, and the bastion with recording
//!    on (target db-1) and off (db-2, `record = false`, same daemon); exec sessions, no PTY. The
//!    output is read and counted by this process (cheaper than a pipe to /dev/null would be, and
//!    it proves every byte arrived). Target: bastion recorded ≥ ssh -J; the on/off ratio is the
//!    recording's cost.
//! 2. Keystroke echo latency through a PTY: `ssh -tt ... cat` with stdin a pipe; write one byte,
//!    time until the target tty's echo of it comes back; `--samples` after 50 warm-up rounds, 2 ms
//!    apart. Direct vs bastion. Target: bastion p99 within 0.3 ms of direct.
//! 3. Memory: a fresh daemon's VmRSS with one warm-up session, then after `--sessions` more idle
//!    interactive sessions (`ssh -tt` with an idle stdin). Target: < 100 KiB per session.
//!
//! `--check` makes the exit status non-zero when a target is missed. MB = 10^6 bytes.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bastion_tests::keys::KeyPair;
use bastion_tests::{Bastion, GrantSpec, Options, Sshd, child, prereq, procs};

struct Settings {
    bytes: u64,
    samples: usize,
    sessions: usize,
    check: bool,
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("bench: {err:#}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool> {
    let settings = parse_args()?;
    ensure!(
        prereq::require_root(),
        "the benchmark needs root (sshd logs in as root)"
    );
    ensure!(prereq::require(prereq::TOOLS), "missing tools, see above");
    let sshd = Sshd::start()?;
    let work = tempfile::Builder::new()
        .prefix("bastion-bench-")
        .tempdir()?;
    let direct_key = KeyPair::generate(work.path(), "direct")?;
    sshd.authorize(&direct_key)?;
    let bastion = Bastion::start(
        &sshd,
        &Options {
            db2_unrecorded: true,
            ..Options::default()
        },
    )?;
    bastion.grant(&GrantSpec::new("alice", "db-1", "4h"))?;
    bastion.grant(&GrantSpec::new("alice", "db-2", "4h"))?;
    let direct =
        bastion_tests::Ssh::new(&direct_key.private, &sshd.known_hosts()?, sshd.port, "root");

    println!(
        "bastion benchmark: {} of log-like text, {} echo samples, {} idle sessions\n",
        human_bytes(settings.bytes),
        settings.samples,
        settings.sessions
    );

    let text = work.path().join("log.txt");
    let started = Instant::now();
    testkit::logtext::write_file(&text, settings.bytes, testkit::logtext::SEED)?;
    println!("generated {} in {:.1?}", text.display(), started.elapsed());
    let remote_cat = format!("cat {}", text.display());

    let direct_rate = throughput(direct.clone().arg(&remote_cat).command(), settings.bytes)?;
    let jump_rate = throughput(
        jump_command(&sshd, &direct_key, work.path(), &remote_cat)?,
        settings.bytes,
    )?;
    let bastion_pid = bastion.pid().context("bastion not running")?;
    let cpu_before = procs::cpu_time(bastion_pid)?;
    let bastion_rate = throughput(
        bastion.alice().args(["db-1", "--", &remote_cat]).command(),
        settings.bytes,
    )?;
    let bastion_cpu = procs::cpu_time(bastion_pid)?.saturating_sub(cpu_before);
    let stored = recording_sizes(&bastion)?;
    let cpu_before = procs::cpu_time(bastion_pid)?;
    let unrecorded_rate = throughput(
        bastion.alice().args(["db-2", "--", &remote_cat]).command(),
        settings.bytes,
    )?;
    let unrecorded_cpu = procs::cpu_time(bastion_pid)?.saturating_sub(cpu_before);

    let echo = |ssh: bastion_tests::Ssh| ssh.opt("-tt").opt("-e").opt("none").command();
    let direct_echo = echo_latency(echo(direct.clone().arg("cat")), settings.samples)?;
    let bastion_echo = echo_latency(
        echo(bastion.alice().args(["db-1", "--", "cat"])),
        settings.samples,
    )?;
    drop(bastion);

    let memory = idle_session_memory(&sshd, settings.sessions)?;

    let ratio = bastion_rate / jump_rate;
    let (d50, d99) = (
        percentile(&direct_echo, 50.0),
        percentile(&direct_echo, 99.0),
    );
    let (b50, b99) = (
        percentile(&bastion_echo, 50.0),
        percentile(&bastion_echo, 99.0),
    );
    let extra_p99 = b99.saturating_sub(d99);
    let per_session = memory.after.saturating_sub(memory.before) as f64 / settings.sessions as f64;
    let targets = [
        ("throughput: bastion (recorded) ≥ ssh -J", ratio >= 1.0),
        (
            "echo: bastion p99 ≤ direct p99 + 0.3 ms",
            extra_p99 <= Duration::from_micros(300),
        ),
        ("memory: < 100 KiB per idle session", per_session < 100.0),
    ];

    println!(
        "\n1. throughput ({} through `cat`)",
        human_bytes(settings.bytes)
    );
    println!("   {:<28} {:>10.1} MB/s", "ssh direct", direct_rate);
    println!("   {:<28} {:>10.1} MB/s", "ssh -J (same sshd)", jump_rate);
    println!("   {:<28} {:>10.1} MB/s", "bastion, recorded", bastion_rate);
    println!(
        "   {:<28} {:>10.1} MB/s",
        "bastion, recording off", unrecorded_rate
    );
    println!("   ratio bastion / ssh -J = {ratio:.2}   (target ≥ 1.00)");
    println!(
        "   ratio bastion / direct = {:.2}",
        bastion_rate / direct_rate
    );
    println!(
        "   ratio recording on / off = {:.2}",
        bastion_rate / unrecorded_rate
    );
    for (what, rate, cpu) in [
        ("recorded", bastion_rate, bastion_cpu),
        ("recording off", unrecorded_rate, unrecorded_cpu),
    ] {
        let transfer_secs = settings.bytes as f64 / 1e6 / rate;
        println!(
            "   bastion CPU, {what}: {:.1} s user+system over {transfer_secs:.1} s ({:.0}% of one core)",
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / transfer_secs
        );
    }
    if let Some((events, on_disk)) = stored {
        println!(
            "   recording: {} of asciicast stored as {} zstd ({:.1}:1)",
            human_bytes(events),
            human_bytes(on_disk),
            events as f64 / on_disk.max(1) as f64
        );
    }
    println!(
        "\n2. keystroke echo latency through a PTY ({} samples)",
        settings.samples
    );
    println!("   {:<28} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "   {:<28} {:>10} {:>10}",
        "ssh direct",
        micros(d50),
        micros(d99)
    );
    println!(
        "   {:<28} {:>10} {:>10}",
        "bastion",
        micros(b50),
        micros(b99)
    );
    println!(
        "   bastion - direct: p50 {}, p99 {}   (target: p99 ≤ +300 µs)",
        signed_micros(b50, d50),
        signed_micros(b99, d99)
    );
    println!(
        "\n3. memory ({} idle interactive sessions)",
        settings.sessions
    );
    println!(
        "   bastion VmRSS {} KiB before, {} KiB after: {per_session:.1} KiB per session   (target < 100 KiB)",
        memory.before, memory.after
    );
    println!(
        "   {} KiB after all sessions closed (memory not returned: {} KiB)",
        memory.closed,
        memory.closed.saturating_sub(memory.before)
    );
    println!(
        "   {} KiB after a second round of {} sessions opened and closed (growth: {} KiB)",
        memory.closed_again,
        settings.sessions,
        memory.closed_again as i64 - memory.closed as i64
    );
    println!(
        "   session setup (connect, auth, target login, shell prompt): p50 {}",
        millis(memory.setup_p50)
    );
    println!("\ntargets:");
    for (what, met) in targets {
        println!("   [{}] {what}", if met { " ok " } else { "MISS" });
    }
    Ok(!settings.check || targets.iter().all(|(_, met)| *met))
}

fn parse_args() -> Result<Settings> {
    let mut settings = Settings {
        bytes: 1_000_000_000,
        samples: 500,
        sessions: 100,
        check: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--bytes" => settings.bytes = parse_size(&value("--bytes")?)?,
            "--samples" => settings.samples = value("--samples")?.parse().context("--samples")?,
            "--sessions" => {
                settings.sessions = value("--sessions")?.parse().context("--sessions")?
            }
            "--check" => settings.check = true,
            "-h" | "--help" => {
                println!("usage: bench [--bytes 1G] [--samples 500] [--sessions 100] [--check]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(
        settings.samples > 0 && settings.sessions > 0,
        "--samples and --sessions must be positive"
    );
    Ok(settings)
}

/// `1G`, `200M`, `64K` (powers of 1000) or a plain byte count.
fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .with_context(|| format!("bad size {text:?}"))?;
    let scale = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => bail!("bad size unit in {text:?} (K, M or G)"),
    };
    Ok(n * scale)
}

/// Runs `cmd` (which prints `expected` bytes), counting its stdout; returns MB/s.
fn throughput(mut cmd: Command, expected: u64) -> Result<f64> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let status = child.wait()?;
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    ensure!(
        status.success() && received == expected,
        "{cmd:?}: exit {status}, received {received} of {expected} bytes; stderr: {stderr}"
    );
    Ok(received as f64 / 1e6 / elapsed.as_secs_f64())
}

/// `ssh -J jump target CMD`, with both hosts defined in a config file: `-J` hands `-F` (but not
/// `-i` or `-o`) to the jump connection, so the file is how both hops get the same key settings.
fn jump_command(sshd: &Sshd, key: &KeyPair, dir: &Path, remote: &str) -> Result<Command> {
    let config = dir.join("ssh_config");
    let known_hosts = sshd.known_hosts()?;
    let host = |alias: &str| {
        format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  CheckHostIP no\n  BatchMode yes\n",
            sshd.port,
            key.private.display(),
            known_hosts.display()
        )
    };
    std::fs::write(&config, format!("{}{}", host("jump"), host("target")))?;
    let mut cmd = Command::new(prereq::tool("ssh"));
    cmd.arg("-F")
        .arg(&config)
        .args(["-J", "jump", "target", remote]);
    Ok(cmd)
}

/// Echo round trips through `cmd` (an `ssh -tt ... cat`): one byte out, its echo back.
fn echo_latency(mut cmd: Command, samples: usize) -> Result<Vec<Duration>> {
    const WARMUP: usize = 50;
    const PROBE: u8 = b'%';
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| {
        let mut stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut times = Vec::with_capacity(samples);
        for round in 0..WARMUP + samples {
            // The first round also waits for the session to come up.
            let timeout = if round == 0 {
                Duration::from_secs(20)
            } else {
                Duration::from_secs(5)
            };
            let sent = Instant::now();
            stdin.write_all(&[PROBE])?;
            wait_for_byte(stdout.as_raw_fd(), PROBE, timeout)?;
            if round >= WARMUP {
                times.push(sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(times)
    })();
    child::terminate(&mut child, Duration::from_secs(2));
    result
}

/// Reads from `fd` until `byte` shows up (other output is skipped).
fn wait_for_byte(fd: i32, byte: u8, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let n = read_within(fd, &mut buf, deadline)?;
        ensure!(n > 0, "ssh closed its output while waiting for an echo");
        if buf[..n].contains(&byte) {
            return Ok(());
        }
    }
}

/// One `read(2)` on `fd`, waiting with `poll(2)` until `deadline`.
fn read_within(fd: i32, buf: &mut [u8], deadline: Instant) -> Result<usize> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(remaining.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, count 1.
    let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
    ensure!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
    ensure!(ready > 0, "no output within the deadline");
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    ensure!(n >= 0, "read: {}", std::io::Error::last_os_error());
    Ok(n as usize)
}

struct Memory {
    before: u64,
    after: u64,
    /// After every session was closed again.
    closed: u64,
    /// After a second round of as many sessions, also closed.
    closed_again: u64,
    setup_p50: Duration,
}

/// RSS of a fresh daemon with one warm-up session, after `sessions` more idle ones, after
/// they closed, and after a second round of as many.
fn idle_session_memory(sshd: &Sshd, sessions: usize) -> Result<Memory> {
    let bastion = Bastion::start(sshd, &Options::default())?;
    bastion.grant(&GrantSpec::new("alice", "db-1", "4h"))?;
    let pid = bastion.pid().context("bastion not running")?;
    let open = || -> Result<(Child, Duration)> {
        let started = Instant::now();
        let child = bastion
            .alice()
            .opt("-tt")
            .arg("db-1")
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let fd = child.stdout.as_ref().context("no stdout")?.as_raw_fd();
        let mut buf = [0u8; 4096];
        // Any output means the target shell is up (its prompt).
        let n = read_within(fd, &mut buf, Instant::now() + Duration::from_secs(20)).with_context(
            || {
                format!(
                    "idle session did not start; bastion stderr:\n{}",
                    bastion.stderr()
                )
            },
        )?;
        ensure!(
            n > 0,
            "idle session closed at once; bastion stderr:\n{}",
            bastion.stderr()
        );
        Ok((child, started.elapsed()))
    };
    let warm_up = open()?.0;
    std::thread::sleep(Duration::from_secs(1));
    let before = procs::rss_kib(pid)?;
    // One round: `sessions` idle sessions opened, RSS read, all closed again.
    let round = || -> Result<(u64, Vec<Duration>)> {
        let mut children = Vec::new();
        let mut setup = Vec::new();
        let outcome = (|| -> Result<()> {
            for _ in 0..sessions {
                let (child, took) = open()?;
                children.push(child);
                setup.push(took);
            }
            Ok(())
        })();
        std::thread::sleep(Duration::from_secs(2));
        let after = procs::rss_kib(pid);
        for child in &mut children {
            child::terminate(child, Duration::from_millis(200));
        }
        outcome?;
        std::thread::sleep(Duration::from_secs(3));
        Ok((after?, setup))
    };
    let (after, setup) = round()?;
    let closed = procs::rss_kib(pid)?;
    // A second round tells retention (the allocator keeps freed memory and reuses it: RSS
    // stays flat) from a leak (RSS grows again by about as much).
    round()?;
    let closed_again = procs::rss_kib(pid)?;
    let mut warm_up = warm_up;
    child::terminate(&mut warm_up, Duration::from_millis(200));
    Ok(Memory {
        before,
        after,
        closed,
        closed_again,
        setup_p50: percentile(&setup, 50.0),
    })
}

/// Size of the newest recording's events and of its stored segments, once it is finished.
fn recording_sizes(bastion: &Bastion) -> Result<Option<(u64, u64)>> {
    let rec = bastion.wait_recording(Duration::from_secs(60), |r| r.user == "alice")?;
    let Ok(segments) = bastion_tests::cast::segment_files(&bastion.recordings_dir(), &rec.id)
    else {
        return Ok(None);
    };
    let on_disk = segments
        .iter()
        .filter_map(|s| s.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Some((rec.bytes.unwrap_or(0), on_disk)))
}

fn percentile(sorted_or_not: &[Duration], pct: f64) -> Duration {
    let mut v = sorted_or_not.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((pct / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn signed_micros(a: Duration, b: Duration) -> String {
    format!("{:+.0} µs", (a.as_secs_f64() - b.as_secs_f64()) * 1e6)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n => format!("{:.1} KB", n as f64 / 1e3),
    }
}
