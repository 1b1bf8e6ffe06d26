//! `/api/users` (the seed's UserController).

use axum::{Json, extract::State};
use serde::Serialize;

use crate::{auth::Caller, error::ApiError, state::AppState};

/// A user as the API shows one.
#[derive(Debug, Serialize)]
pub struct User {
    /// Id (the token's `sub`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Platform roles.
    pub roles: Vec<String>,
}

/// The caller, as stored from their token.
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<User>, ApiError> {
    let user = state.inner.store.user(caller.id()).await?;
    Ok(Json(match user {
        Some(doc) => User { id: doc.id, name: doc.name, roles: doc.roles },
        None => User { id: caller.id().to_owned(), name: caller.name().to_owned(), roles: caller.0.roles.clone() },
    }))
}
