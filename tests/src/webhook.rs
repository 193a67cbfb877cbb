//! A tiny HTTP/1.1 webhook receiver for tests: it records each POST (path and JSON body) and
//! answers 200, 500, or never, so the daemon's webhooks and Slack replies can be checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde_json::Value;

/// The secret part of a webhook URL, which must never reach the daemon's log.
pub const SECRET: &str = "T0SECRET/B0SECRET/xyzSECRETxyz";

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// `500 Internal Server Error` to every post.
    Fail,
    /// Reads the request and never answers, holding the connection open.
    Hang,
}

/// A webhook: posts received (their JSON bodies, in order) and the paths they were sent to.
pub struct Receiver {
    pub port: u16,
    posts: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    pub fn start(answer: Answer) -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let seen = posts.clone();
        // The thread ends with the test process; a test's receivers are few.
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                if answer == Answer::Hang {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    if let Ok(clone) = stream.try_clone()
                        && let Some(post) = read_post(clone)
                    {
                        seen.lock().unwrap().push(post);
                    }
                    held.push(stream);
                    continue;
                }
                std::thread::spawn(move || serve(stream, answer, &seen));
            }
        });
        Ok(Receiver { port, posts })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/services/{SECRET}", self.port)
    }

    pub fn posts(&self) -> Vec<(String, Value)> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits for a post whose body satisfies `wanted`; returns it.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, body)) = self.posts().into_iter().find(|(_, body)| wanted(body)) {
                return Ok(body);
            }
            ensure!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; posts: {:#?}",
                self.posts()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Answers each request on one connection until the client closes it.
fn serve(stream: TcpStream, answer: Answer, seen: &Mutex<Vec<(String, Value)>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(post) = read_one(&mut reader) {
        seen.lock().unwrap().push(post);
        let reply: &[u8] = match answer {
            Answer::Fail => b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops",
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        };
        if writer.write_all(reply).is_err() {
            return;
        }
    }
}

fn read_post(stream: TcpStream) -> Option<(String, Value)> {
    read_one(&mut BufReader::new(stream))
}

/// One HTTP/1.1 request: its path and JSON body (`Null` when the body is not JSON).
fn read_one(reader: &mut BufReader<TcpStream>) -> Option<(String, Value)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}
