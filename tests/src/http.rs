//! The bastion's HTTP API as a client sees it, through the real `curl`: one call is one
//! process, its status and its JSON body (or the raw text when the body is not JSON).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// An API endpoint (`http://127.0.0.1:PORT` or `https://...` with its CA).
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    /// PEM CA file for `https` (curl --cacert).
    pub ca: Option<std::path::PathBuf>,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
    pub headers: String,
}

impl Reply {
    /// The error `code` of a JSON error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            ca: None,
        }
    }

    /// `method path` with an optional bearer `token`, JSON `body` and extra header lines.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<Reply> {
        self.call_with(
            method,
            path,
            token,
            body,
            &["Content-Type: application/json"],
        )
    }

    /// Like `call`, with these request headers instead of the JSON content type.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[&str],
    ) -> Result<Reply> {
        let dir = tempfile::tempdir()?;
        let header_file = dir.path().join("headers");
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "20", "-X", method])
            .arg("-D")
            .arg(&header_file)
            .args(["-w", "\n%{http_code}"]);
        if let Some(ca) = &self.ca {
            command.arg("--cacert").arg(ca);
        }
        // Headers (the token among them) go in a curl config file, not argv, where ps shows them.
        let mut config = String::new();
        if let Some(token) = token {
            config.push_str(&format!("header = \"Authorization: Bearer {token}\"\n"));
        }
        for header in headers {
            config.push_str(&format!("header = {:?}\n", header));
        }
        let config_file = dir.path().join("curlrc");
        std::fs::write(&config_file, config)?;
        command.arg("-K").arg(&config_file);
        if body.is_some() {
            command.args(["--data-binary", "@-"]);
        }
        command
            .arg(format!("{}{path}", self.base))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("running curl")?;
        if let Some(mut stdin) = child.stdin.take()
            && let Some(body) = body
        {
            stdin.write_all(body.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "curl {method} {path} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let (text, status) = stdout.rsplit_once('\n').context("curl printed no status")?;
        let status: u16 = status.trim().parse().context("curl status")?;
        Ok(Reply {
            status,
            body: serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
            text: text.to_string(),
            headers: std::fs::read_to_string(&header_file).unwrap_or_default(),
        })
    }
}
