//! Development conveniences for the web client (`clients/web`), both off by default:
//! [`WebArgs`] (the settings), [`static_files`] (the built client served at `/`) and
//! [`dev_token`] (`POST /api/dev/token`, which signs tokens with the public
//! development secret, so it can never mint a token a production service accepts).

pub mod dev_token;
pub mod static_files;

use std::path::PathBuf;

use clap::Args;

/// The web client's settings.
#[derive(Debug, Clone, Default, Args)]
pub struct WebArgs {
    /// A directory of built web client files (`clients/web/dist`) served at `/`;
    /// nothing is served outside `/api` when unset.
    #[arg(long = "web-dir", env = "CHAT_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Serve `POST /api/dev/token`, which mints a token for any user id. Refused at
    /// startup unless `CHAT_JWT_SECRET` is the public development secret.
    #[arg(long = "dev-tokens", env = "CHAT_DEV_TOKENS", default_value_t = false)]
    pub dev_tokens: bool,
}
