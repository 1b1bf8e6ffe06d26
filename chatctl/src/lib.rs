//! `chatctl`: the operator CLI of the chat service, as a library so that tests run its
//! commands in process; `main.rs` only parses the command line and reports errors.
//!
//! Layout:
//! - [`Cli`] and [`run`]: the command line and its dispatch;
//! - [`commands`]: one module per command (`token`, `backup_export`, `backup_import`,
//!   `audit_export`, `export_user` with the `records` they share, and the `bench` load
//!   generator in a folder of its own);
//! - [`backup`]: the backup file format (header, document lines, reader) and its errors;
//! - [`progress`]: progress bars on stderr, drawn only on a terminal.

pub mod backup;
pub mod commands;
pub mod progress;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "chatctl", about = "Operator tools for the chat service")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mint an HS256 token (development only: production tokens come from the platform).
    Token(commands::token::TokenArgs),
    /// Export or import the chat database as a portable, compressed JSON-lines file.
    Backup {
        /// `export` or `import`.
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Load a deployment with simulated clients and report latency, loss and CPU.
    Bench(Box<commands::bench::BenchArgs>),
    /// Write the audit trail (all of it, one chat's or one user's) as JSON lines.
    AuditExport(commands::audit_export::AuditExportArgs),
    /// Write a user's messages, memberships and reports as JSON lines (a data-protection
    /// request).
    ExportUser(commands::export_user::ExportUserArgs),
}

/// `chatctl backup …`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write chats, participants, messages and users to a gzip JSON-lines file.
    Export(commands::backup_export::ExportArgs),
    /// Load a file written by `export` into an empty database (or one emptied with `--drop`).
    Import(commands::backup_import::ImportArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `chatctl token` failed.
    #[error(transparent)]
    Token(#[from] commands::token::TokenError),
    /// `chatctl backup …` failed.
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    /// `chatctl bench` failed.
    #[error(transparent)]
    Bench(#[from] commands::bench::BenchError),
    /// `chatctl audit-export` or `export-user` failed.
    #[error(transparent)]
    Records(#[from] commands::records::RecordsError),
}

/// Runs one command, printing its result on stdout and progress on stderr.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Token(args) => println!("{}", commands::token::run(&args)?),
        Command::Backup { command: BackupCommand::Export(args) } => {
            let summary = commands::backup_export::run(&args, &progress::Progress::auto()).await?;
            println!("{summary}");
        }
        Command::Backup { command: BackupCommand::Import(args) } => {
            let summary = commands::backup_import::run(&args, &progress::Progress::auto()).await?;
            println!("{summary}");
        }
        Command::Bench(args) => {
            commands::bench::run(&args, &progress::Progress::auto()).await?;
        }
        Command::AuditExport(args) => {
            let written = commands::audit_export::run(&args).await?;
            eprintln!("{written} audit entries written");
        }
        Command::ExportUser(args) => {
            let written = commands::export_user::run(&args).await?;
            eprintln!("{written} records of {} written", args.user_id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{BackupCommand, Cli, Command};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn import_takes_in_and_drop() {
        let cli = Cli::try_parse_from(["chatctl", "backup", "import", "--in", "b.jsonl.gz", "--drop"]);
        match cli.map(|cli| cli.command) {
            Ok(Command::Backup { command: BackupCommand::Import(args) }) => {
                assert!(args.drop);
                assert_eq!(args.input, std::path::PathBuf::from("b.jsonl.gz"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["chatctl", "backup", "import"]).is_err(), "--in is required");
        assert!(Cli::try_parse_from(["chatctl", "backup", "export"]).is_err(), "--out is required");
    }

    #[test]
    fn bench_takes_repeated_pids_a_scenario_and_a_duration() {
        let cli = Cli::try_parse_from([
            "chatctl",
            "bench",
            "--only",
            "A",
            "--duration",
            "5",
            "--pid",
            "ws-edge=10",
            "--pid",
            "api=11",
        ]);
        match cli.map(|cli| cli.command) {
            Ok(Command::Bench(args)) => {
                assert_eq!(args.only.as_deref(), Some("A"));
                assert_eq!(args.duration, Some(5.0));
                let pids: Vec<(&str, u32)> = args.pids.iter().map(|p| (p.name.as_str(), p.pid)).collect();
                assert_eq!(pids, [("ws-edge", 10), ("api", 11)]);
                assert_eq!(args.connect_concurrency, 64);
            }
            other => panic!("{other:?}"),
        }
        let bad = Cli::try_parse_from(["chatctl", "bench", "--pid", "edge"]);
        assert!(bad.map_err(|e| e.to_string()).err().is_some_and(|e| e.contains("NAME=PID")));
    }
}
