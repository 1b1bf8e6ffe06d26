//! `POST /api/dev/token`: a development token for any user, so the web client can
//! sign in without an identity provider. It exists only with `CHAT_DEV_TOKENS` set,
//! and the api refuses to start with it unless the tokens it would sign use the public
//! development secret ([`chat_core::auth::DEV_SECRET`]): anyone can mint those already
//! (`chatctl token`), so the route grants nothing a production key would honour.

use std::sync::Arc;

use axum::{Json, Router, extract::State, routing::post};
use chat_core::{
    StartupError,
    auth::{Audience, Claims, DEV_SECRET, dev_claims, mint_hs256},
    config::JwtArgs,
};
use serde::{Deserialize, Serialize};

use crate::{error::ApiError, extract::ApiJson, routes::check_id};

/// How long a development token is valid; the web client asks again before it ends.
pub const DEV_TOKEN_TTL_S: u64 = 3600;

/// What the tokens are signed with and for.
#[derive(Debug, Clone)]
pub struct DevTokens {
    issuer: Option<String>,
    audience: String,
}

impl DevTokens {
    /// The minter for these token settings; an error unless they hold the development
    /// secret and accept HS256.
    pub fn from_args(jwt: &JwtArgs) -> Result<DevTokens, StartupError> {
        if jwt.jwt_secret.as_deref() != Some(DEV_SECRET) || !jwt.jwt_algorithms.iter().any(|a| a == "HS256") {
            return Err(StartupError::Config(
                "CHAT_DEV_TOKENS needs HS256 with the public development secret in CHAT_JWT_SECRET; \
                 never enable it with a real key"
                    .into(),
            ));
        }
        Ok(DevTokens { issuer: jwt.jwt_issuer.clone(), audience: jwt.jwt_audience.clone() })
    }
}

/// `POST /api/dev/token` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user id (`sub`).
    pub user_id: String,
    /// The display name.
    pub name: String,
    /// Platform roles (`student` when absent).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// `POST /api/dev/token` answer.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The signed token.
    pub token: String,
    /// Its `exp`, seconds since the epoch.
    pub expires_at: u64,
}

/// The route, with its own state.
pub fn routes<S>(tokens: DevTokens) -> Router<S> {
    Router::new().route("/api/dev/token", post(mint)).with_state(Arc::new(tokens))
}

async fn mint(
    State(tokens): State<Arc<DevTokens>>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    check_id(&request.user_id, "user_id")?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name must be 1-100 characters"));
    }
    let roles = request.roles.unwrap_or_else(|| vec!["student".into()]);
    if roles.len() > 4 || roles.iter().any(|r| !matches!(r.as_str(), "student" | "teacher" | "admin")) {
        return Err(ApiError::invalid("roles are student, teacher or admin"));
    }
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let claims = Claims {
        iss: tokens.issuer.clone(),
        aud: Some(Audience::One(tokens.audience.clone())),
        ..dev_claims(&request.user_id, name, &roles, DEV_TOKEN_TTL_S)
    };
    let token = mint_hs256(DEV_SECRET, &claims).map_err(ApiError::internal)?;
    Ok(Json(TokenResponse { token, expires_at: claims.exp }))
}
