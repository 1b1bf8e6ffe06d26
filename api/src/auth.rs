//! The bearer-token extractor (the seed's AuthMiddleware). A verified caller is also
//! written to the `users` directory, at most once per [`UPSERT_INTERVAL`] unless the
//! token's name or roles changed.

use std::time::{Duration, Instant};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use chat_core::auth::{AuthError, Claims};
use chat_nats::model::ErrorCode;

use crate::{error::ApiError, state::AppState};

/// How often a user's directory entry is refreshed from their token.
const UPSERT_INTERVAL: Duration = Duration::from_secs(300);

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    /// The caller's user id.
    pub fn id(&self) -> &str {
        &self.0.sub
    }

    /// The caller as a command's or a request's actor.
    pub fn actor(&self) -> chat_nats::commands::Actor {
        chat_nats::commands::Actor { user_id: self.0.sub.clone(), roles: self.0.roles.clone() }
    }

    /// The display name: the token's `name`, else the id.
    pub fn name(&self) -> &str {
        self.0.name.as_deref().unwrap_or(&self.0.sub)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| unauthorized(AuthError::Missing))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized(AuthError::Missing))?;
        let claims = state.inner.verifier.verify(token.trim()).map_err(unauthorized)?;
        let caller = Caller(claims);
        remember(state, &caller).await?;
        Ok(caller)
    }
}

fn unauthorized(error: AuthError) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, error.to_string())
}

async fn remember(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let fresh = {
        let known = state.inner.known_users.lock().await;
        known.get(caller.id()).is_some_and(|(at, name, roles)| {
            at.elapsed() < UPSERT_INTERVAL && name == caller.name() && roles == &caller.0.roles
        })
    };
    if fresh {
        return Ok(());
    }
    state.inner.store.upsert_user(caller.id(), caller.name(), &caller.0.roles, chrono::Utc::now()).await?;
    state
        .inner
        .known_users
        .lock()
        .await
        .insert(caller.id().to_owned(), (Instant::now(), caller.name().to_owned(), caller.0.roles.clone()));
    Ok(())
}
