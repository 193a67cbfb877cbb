//! The `bastion` binary: runs the command line and turns its outcome into an exit code.
//! Everything else lives in the library (`bastion::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    match bastion::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bastion: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
