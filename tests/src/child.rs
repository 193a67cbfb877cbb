//! Running a child process to completion with a deadline, feeding stdin and collecting
//! stdout/stderr on threads so that neither pipe can fill up and deadlock the child.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished child left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Finished {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Exit code, or `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Where the child's stdin comes from.
#[derive(Debug, Clone, Default)]
pub enum Input {
    /// `/dev/null`: the child sees EOF at once.
    #[default]
    Null,
    /// These bytes, then EOF.
    Bytes(Vec<u8>),
    /// A file (streamed by the kernel, for large inputs).
    File(std::path::PathBuf),
}

/// Runs `cmd` until it exits or `timeout` passes (then kills it and fails with what it printed).
pub fn run(cmd: &mut Command, input: Input, timeout: Duration) -> Result<Finished> {
    let describe = format!("{cmd:?}");
    let stdin = match &input {
        Input::Null => Stdio::null(),
        Input::Bytes(_) => Stdio::piped(),
        Input::File(path) => Stdio::from(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ),
    };
    let started = Instant::now();
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {describe}"))?;
    let writer = match (input, child.stdin.take()) {
        (Input::Bytes(bytes), Some(mut pipe)) => Some(std::thread::spawn(move || {
            // The child may exit without reading everything; that is its business.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_deadline(&mut child, started + timeout)?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let Some(status) = status else {
        bail!(
            "timed out after {timeout:?}: {describe}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Ok(Finished {
        status,
        stdout,
        stderr,
        elapsed: started.elapsed(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child` until `deadline`; kills it and returns `None` if it is still running then.
pub fn wait_deadline(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to `pid`; errors (process already gone) are ignored on purpose.
pub fn signal(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) with a positive pid only affects that process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// SIGTERM, then SIGKILL if the child has not exited after `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), libc::SIGTERM);
    if let Ok(None) | Err(_) = wait_deadline(child, Instant::now() + grace) {
        let _ = child.kill();
        let _ = child.wait();
    }
}
