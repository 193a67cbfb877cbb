//! Port forwarding through the bastion is refused (`-L`, `-R`, `-W`), even with an active
//! grant: the only way to a target is a recorded session. The forwards aim at the target sshd,
//! whose "SSH-2.0-" banner would prove that a forward got through.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bastion_tests::{child, net};

use crate::{bed, hour_grant};

#[test]
fn local_forward_is_refused() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let local_port = net::free_port()?;
    let mut ssh = bed
        .bastion
        .alice()
        .opt("-N")
        .opt("-o")
        .opt("ExitOnForwardFailure=yes")
        .opt("-L")
        .opt(format!("127.0.0.1:{local_port}:{}", bed.sshd.address()))
        .spawn()?;
    let result = (|| -> Result<()> {
        net::wait_accepting(local_port, Duration::from_secs(15))?;
        let mut stream = TcpStream::connect(("127.0.0.1", local_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        ensure!(
            !String::from_utf8_lossy(&received).contains("SSH-2.0-"),
            "ssh -L through the bastion reached the target sshd: received {:?}",
            String::from_utf8_lossy(&received)
        );
        Ok(())
    })();
    child::terminate(&mut ssh, Duration::from_secs(2));
    result
}

#[test]
fn remote_forward_is_refused() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let out = bed
        .bastion
        .alice()
        .opt("-N")
        .opt("-o")
        .opt("ExitOnForwardFailure=yes")
        .opt("-R")
        .opt(format!("0:{}", bed.sshd.address()))
        .timeout(Duration::from_secs(15))
        .run();
    let out = match out {
        Ok(out) => out,
        Err(err) => anyhow::bail!(
            "ssh -R -o ExitOnForwardFailure=yes stayed connected, so the bastion accepted the forward: {err}"
        ),
    };
    ensure!(
        !out.status.success() && out.stderr_str().contains("forwarding failed"),
        "expected ssh -R to fail with \"remote port forwarding failed\"; got exit {:?}, stderr {:?}",
        out.code(),
        out.stderr_str()
    );
    Ok(())
}

/// `-W` is what `ssh -J bastion target` uses under the hood.
#[test]
fn stdio_forward_is_refused() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let out = bed
        .bastion
        .alice()
        .opt("-W")
        .opt(bed.sshd.address())
        .timeout(Duration::from_secs(15))
        .run()?;
    ensure!(
        !out.status.success() && !out.stdout_str().contains("SSH-2.0-"),
        "ssh -W through the bastion should fail without reaching the target; got exit {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(())
}
