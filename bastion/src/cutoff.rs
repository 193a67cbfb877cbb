//! The guaranteed kill: sever a TCP connection without the peer's cooperation.
//!
//! A polite SSH close travels through flow-controlled queues: a client that stopped
//! reading (SIGSTOPped, or a full window) would keep its session alive forever. A
//! `Cutoff` keeps a duplicate of the socket's file descriptor; cutting it resets the
//! connection (SO_LINGER 0, then shutdown), which wakes every task blocked on that socket
//! with an error, whatever state the SSH layer is in.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;

/// Whatever carries a user's connection, severed without the peer's cooperation: a TCP socket
/// today ([`Cutoff`]); an SSH channel for a connection that runs inside another (ProxyJump).
pub trait Sever: Send + Sync + 'static {
    fn sever(&self);
}

impl Sever for Cutoff {
    fn sever(&self) {
        self.cut();
    }
}

/// A handle that can sever one TCP connection from any task.
#[derive(Debug)]
pub struct Cutoff {
    socket: std::net::TcpStream,
}

impl Cutoff {
    /// Splits off a cutoff for `stream`; the returned stream is used as before.
    pub fn attach(stream: tokio::net::TcpStream) -> io::Result<(tokio::net::TcpStream, Cutoff)> {
        let std_stream = stream.into_std()?;
        let socket = std_stream.try_clone()?;
        Ok((
            tokio::net::TcpStream::from_std(std_stream)?,
            Cutoff { socket },
        ))
    }

    /// Severs the connection: unsent data is dropped and the peer gets a reset.
    pub fn cut(&self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the fd is valid for the lifetime of `self.socket`; the option value is a
        // properly sized `linger` struct.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "SO_LINGER failed");
        }
        // NotConnected just means the peer already went away: nothing left to cut.
        if let Err(e) = self.socket.shutdown(Shutdown::Both)
            && e.kind() != io::ErrorKind::NotConnected
        {
            tracing::debug!(error = %e, "shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A task blocked writing to a peer that never reads is woken by the cut.
    #[tokio::test]
    async fn cut_wakes_a_blocked_writer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_server_side, _) = listener.accept().await.unwrap(); // never reads
        let (mut client, cutoff) = Cutoff::attach(client).unwrap();
        let writer = tokio::spawn(async move {
            let chunk = vec![0u8; 1 << 16];
            loop {
                if client.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!writer.is_finished(), "the writer should be blocked by now");
        cutoff.cut();
        tokio::time::timeout(std::time::Duration::from_secs(2), writer)
            .await
            .expect("the cut must wake the writer")
            .unwrap();
    }

    #[tokio::test]
    async fn cut_ends_a_blocked_reader() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_server_side, _) = listener.accept().await.unwrap();
        let (mut client, cutoff) = Cutoff::attach(client).unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            client.read(&mut buf).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        cutoff.cut();
        let read = tokio::time::timeout(std::time::Duration::from_secs(2), reader)
            .await
            .expect("the cut must wake the reader")
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)));
    }
}
