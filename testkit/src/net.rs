//! Ports: handing out listening ports on 127.0.0.1 and waiting until a server accepts on one.
//!
//! Ports come from 20000-31999, below Linux's ephemeral range (32768-60999). Ports picked with
//! `bind(0)` would come from the ephemeral range, where the kernel also hands out source ports
//! of outgoing connections and other tests' `bind(0)` results, so a port checked free could be
//! taken again before the server binds it. Here a per-process counter never repeats a port,
//! and the pid-based starting point keeps concurrent test processes apart.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

const FIRST: u32 = 20_000;
const SPAN: u32 = 12_000;

/// A port nobody listens on, never handed out before by this process.
pub fn free_port() -> Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(977) % SPAN;
    for _ in 0..SPAN {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let Ok(port) = u16::try_from(FIRST + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port left in {FIRST}-{}", FIRST + SPAN - 1)
}

/// Polls until something accepts TCP connections on 127.0.0.1:`port`, or `timeout` passes.
pub fn wait_accepting(port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing accepted connections on {addr} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_below_the_ephemeral_range() -> Result<()> {
        let (a, b) = (free_port()?, free_port()?);
        assert_ne!(a, b);
        for port in [a, b] {
            assert!((20_000..32_000).contains(&port), "{port}");
        }
        // Another process may take a port between the check and this bind (the daemons of the
        // end-to-end tests still come and go): a few fresh ports.
        let (port, listener) = (0..5)
            .find_map(|_| {
                let port = free_port().ok()?;
                TcpListener::bind(("127.0.0.1", port))
                    .ok()
                    .map(|l| (port, l))
            })
            .ok_or_else(|| anyhow::anyhow!("no port could be bound"))?;
        wait_accepting(port, Duration::from_secs(1))?;
        drop(listener);
        // Nothing listening: an error; for the same reason, a few fresh ports.
        let refused = (0..5).any(|_| {
            free_port().is_ok_and(|port| wait_accepting(port, Duration::from_millis(50)).is_err())
        });
        assert!(refused, "wait_accepting fails when nothing listens");
        Ok(())
    }
}
