//! The `chatctl` binary: parse the command line, run the command; on failure, one line
//! on stderr and exit status 1 (no backtrace, whatever `RUST_BACKTRACE` says: these are
//! an operator's errors, not the program's).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match chatctl::run(chatctl::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chatctl: {error}");
            ExitCode::FAILURE
        }
    }
}
