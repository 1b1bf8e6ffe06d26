//! `chatctl token`: mints an HS256 development token.

use clap::Args;

/// Arguments of `chatctl token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub`).
    pub user_id: String,
    /// Display name.
    #[arg(long, default_value = "Dev User")]
    pub name: String,
    /// Platform roles, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "student")]
    pub roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl_s: u64,
    /// The HS256 secret.
    #[arg(long, env = "CHAT_JWT_SECRET", default_value = chat_core::auth::DEV_SECRET, hide_env_values = true)]
    pub secret: String,
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The user id would be refused by every service.
    #[error("user id must be 1-64 characters of [A-Za-z0-9_-]")]
    InvalidUserId,
    /// Signing failed.
    #[error("signing the token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Mints the token.
pub fn run(args: &TokenArgs) -> Result<String, TokenError> {
    if !chat_nats::subjects::is_valid_id(&args.user_id) {
        return Err(TokenError::InvalidUserId);
    }
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    let claims = chat_core::auth::dev_claims(&args.user_id, &args.name, &roles, args.ttl_s);
    chat_core::auth::mint_hs256(&args.secret, &claims).map_err(TokenError::Sign)
}

#[cfg(test)]
mod tests {
    use super::{TokenArgs, TokenError, run};

    fn args(user_id: &str) -> TokenArgs {
        TokenArgs {
            user_id: user_id.into(),
            name: "Dev User".into(),
            roles: vec!["student".into()],
            ttl_s: 60,
            secret: chat_core::auth::DEV_SECRET.into(),
        }
    }

    #[test]
    fn a_token_is_three_base64_parts_and_a_bad_user_id_is_refused() {
        let token = run(&args("dev-user")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token.split('.').count(), 3);
        assert!(matches!(run(&args("no spaces")), Err(TokenError::InvalidUserId)));
    }
}
