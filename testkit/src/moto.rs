//! A real S3-compatible server: `moto_server` (PyPI `moto[server]`; `MOTO_SERVER=path`
//! overrides the program) on a free port of 127.0.0.1 with a fresh bucket [`BUCKET`], killed on
//! drop. Each test starts its own, so freezing one (`SIGSTOP`) to fake an outage disturbs
//! nothing else. moto takes unsigned requests (the bucket is created with a bare `PUT`) and any
//! credentials ([`ACCESS_KEY_ID`], [`SECRET_ACCESS_KEY`]).
//!
//! A test calls [`Moto::start`]: a missing `moto_server` is an error in CI and a SKIP elsewhere.
//! A benchmark asked to use S3 calls [`Moto::start_required`]: missing is always an error.
//! Crate-specific settings (recorder's `S3Options`) are built from [`Moto::endpoint`] and the
//! constants here, or read from [`Moto::s3_table`] as bastion's configuration would be.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::{net, tool};

/// The bucket every server is created with.
pub const BUCKET: &str = "recordings";
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

const INSTALL: &str = "pip install 'moto[server]', or set MOTO_SERVER=path";
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

/// The server program: `$MOTO_SERVER`, else `moto_server` on `PATH`.
pub fn program() -> Option<PathBuf> {
    match std::env::var_os("MOTO_SERVER") {
        Some(path) => Some(PathBuf::from(path)),
        None => tool::find("moto_server"),
    }
}

impl Moto {
    /// For a test: a running server, or `Ok(None)` after a SKIP line naming the running test
    /// when `moto_server` is not installed outside CI. In CI that is an error.
    pub fn start() -> Result<Option<Moto>> {
        Moto::start_for(&tool::current_test())
    }

    /// [`Moto::start`], with the SKIP line naming `test`.
    pub fn start_for(test: &str) -> Result<Option<Moto>> {
        let Some(program) = program() else {
            if tool::in_ci() {
                bail!("moto_server is required in CI but not installed ({INSTALL})");
            }
            tool::skip(test, &format!("moto_server is not installed ({INSTALL})"));
            return Ok(None);
        };
        Moto::launch(&program).map(Some)
    }

    /// For a benchmark asked to use S3: a running server, or an error.
    pub fn start_required() -> Result<Moto> {
        let program =
            program().with_context(|| format!("moto_server is not installed ({INSTALL})"))?;
        Moto::launch(&program)
    }

    /// The port is free when picked but may be taken before moto binds it: a few tries.
    fn launch(program: &Path) -> Result<Moto> {
        let mut last_error = None;
        for _ in 0..3 {
            match Moto::spawn(program) {
                Ok(moto) => return Ok(moto),
                Err(err) => last_error = Some(err),
            }
        }
        let err = last_error.unwrap_or_else(|| anyhow::anyhow!("no attempt made"));
        Err(err.context(format!("cannot start {}", program.display())))
    }

    fn spawn(program: &Path) -> Result<Moto> {
        let port = net::free_port()?;
        let dir = tempfile::Builder::new().prefix("testkit-moto-").tempdir()?;
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).context("creating moto log")?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("spawning {} ({INSTALL})", program.display()))?;
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = moto.child.try_wait()? {
                bail!("moto_server exited with {status}: {}", moto.log());
            }
            // Creating the bucket also says the server is ready.
            match moto.request("PUT", &format!("/{BUCKET}")) {
                Ok((200, _)) => return Ok(moto),
                Ok((status, body)) => bail!("creating bucket {BUCKET} answered {status}: {body}"),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => bail!("moto_server not ready within {READY_WITHIN:?}: {err}"),
            }
        }
    }

    /// One bodiless HTTP/1.1 request; returns status code and body.
    fn request(&self, method: &str, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP response: {response:.200}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://BUCKET/{prefix}`: a store URL under `prefix` here.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The `[s3]` table of a bastion configuration (bastion-replay reads the same) pointing
    /// here: path-style requests over plain http.
    pub fn s3_table(&self) -> String {
        format!(
            "[s3]\nendpoint = {:?}\nregion = {REGION:?}\naccess_key_id = {ACCESS_KEY_ID:?}\n\
             secret_access_key = {SECRET_ACCESS_KEY:?}\nallow_http = true\nvirtual_hosted_style = false\n",
            self.endpoint()
        )
    }

    /// Config text for a bastion storing recordings under `s3://BUCKET/{prefix}` here: the
    /// `recordings` line and the [`Moto::s3_table`].
    pub fn bastion_config(&self, prefix: &str) -> (String, String) {
        (
            format!("recordings = {:?}", self.url(prefix)),
            self.s3_table(),
        )
    }

    /// Object keys in the bucket under `prefix`, sorted (ListObjectsV2, up to 1000).
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let (status, body) =
            self.request("GET", &format!("/{BUCKET}?list-type=2&prefix={prefix}"))?;
        if status != 200 {
            bail!("listing {prefix} answered {status}: {body}");
        }
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Freezes the server (`SIGSTOP`): the kernel still accepts connections but nothing answers,
    /// like a hung or partitioned store.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) with a positive pid only affects that process, our own child.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// The server's output (one werkzeug line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_server_has_an_empty_bucket_and_answers_after_a_pause() -> Result<()> {
        let Some(moto) = Moto::start()? else {
            return Ok(());
        };
        assert_eq!(moto.keys("")?, Vec::<String>::new());
        moto.pause();
        moto.resume();
        assert_eq!(moto.keys("any/")?, Vec::<String>::new());
        assert!(
            moto.log().contains(&format!("PUT /{BUCKET}")),
            "{}",
            moto.log()
        );
        let (recordings, table) = moto.bastion_config("e2e");
        assert_eq!(recordings, "recordings = \"s3://recordings/e2e\"");
        assert!(table.contains(&format!("endpoint = \"{}\"", moto.endpoint())));
        Ok(())
    }
}
