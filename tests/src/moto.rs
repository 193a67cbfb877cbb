//! A real S3-compatible server for the end-to-end tests: `moto_server` (PyPI `moto[server]`) on a
//! free port with a fresh bucket, one per test, so freezing it (`SIGSTOP`) to fake an outage
//! disturbs nothing else. Plus the config text that points a bastion at it.
//!
//! Missing `moto_server` is a failure in CI and a SKIP elsewhere, like every other tool
//! (`tests/run` installs it with pip).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::{child, net, prereq};

/// The bucket every server is created with.
pub const BUCKET: &str = "recordings";

pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Moto {
    /// A running server with bucket [`BUCKET`]; `Ok(None)` when moto is not installed outside CI
    /// (a SKIP line has been printed; in CI it panics).
    pub fn start() -> Result<Option<Moto>> {
        if !prereq::require(&["moto_server"]) {
            return Ok(None);
        }
        let mut last_error = None;
        for _ in 0..3 {
            match Moto::spawn() {
                Ok(moto) => return Ok(Some(moto)),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto_server did not start")))
    }

    fn spawn() -> Result<Moto> {
        let port = net::free_port()?;
        let dir = tempfile::Builder::new().prefix("bastion-moto-").tempdir()?;
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).context("creating moto log")?;
        let child = Command::new(prereq::tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("spawning moto_server")?;
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait()? {
                bail!("moto_server exited with {status}: {}", moto.log());
            }
            // moto takes unsigned requests; the bucket creation also says it is ready.
            match moto.request("PUT", &format!("/{BUCKET}")) {
                Ok((200, _)) => return Ok(moto),
                Ok((status, body)) => bail!("creating bucket answered {status}: {body}"),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => bail!("moto_server not ready within 60s: {err}"),
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

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Config text for a bastion storing recordings under `s3://BUCKET/{prefix}` here: the
    /// `recordings` line and the `[s3]` table (path-style, plain http; moto takes any key).
    pub fn bastion_config(&self, prefix: &str) -> (String, String) {
        (
            format!("recordings = \"s3://{BUCKET}/{prefix}\""),
            format!(
                "[s3]\nendpoint = {:?}\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\n\
                 secret_access_key = \"testing\"\nallow_http = true\nvirtual_hosted_style = false\n",
                self.endpoint()
            ),
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
        child::signal(self.child.id(), libc::SIGSTOP);
    }

    pub fn resume(&self) {
        child::signal(self.child.id(), libc::SIGCONT);
    }

    /// The server's output (one line per request).
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
