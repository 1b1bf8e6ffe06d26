//! `chatctl`: the operator CLI. `chatctl token` mints an HS256 development token.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chatctl", about = "Operator tools for the chat service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint an HS256 token (development only: production tokens come from the platform).
    Token {
        /// The user id (`sub`).
        user_id: String,
        /// Display name.
        #[arg(long, default_value = "Dev User")]
        name: String,
        /// Platform roles, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "student")]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_s: u64,
        /// The HS256 secret.
        #[arg(long, env = "CHAT_JWT_SECRET", default_value = chat_core::auth::DEV_SECRET, hide_env_values = true)]
        secret: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Token { user_id, name, roles, ttl_s, secret } => {
            anyhow::ensure!(
                chat_nats::subjects::is_valid_id(&user_id),
                "user id must be 1-64 characters of [A-Za-z0-9_-]"
            );
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let claims = chat_core::auth::dev_claims(&user_id, &name, &roles, ttl_s);
            let token = chat_core::auth::mint_hs256(&secret, &claims).context("signing the token")?;
            println!("{token}");
        }
    }
    Ok(())
}
