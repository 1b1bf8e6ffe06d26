//! `/api/users` (the seed's UserController).

use axum::{Json, extract::State};
use chat_nats::presence::Presence;
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    cursor,
    error::ApiError,
    extract::ApiQuery,
    routes::{chats::Page, check_id},
    state::AppState,
};

/// Most users in one presence request.
pub const MAX_PRESENCE_IDS: usize = 200;

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

/// `GET /api/users` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// A name prefix (any case) or an exact id.
    pub q: String,
    /// Page size.
    pub limit: Option<u32>,
}

/// Finds users by name prefix (case-insensitive, Unicode-aware) or exact id.
pub async fn search(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    let limit = cursor::page_limit(query.limit)?;
    let q = query.q.trim();
    if q.is_empty() || q.chars().count() > 100 || q.chars().any(char::is_control) {
        return Err(ApiError::invalid("q must be 1-100 characters"));
    }
    let users = state.inner.store.search_users(q, limit).await?;
    let items = users.into_iter().map(|u| User { id: u.id, name: u.name, roles: u.roles }).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

/// `GET /api/users/presence` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    /// Comma-separated user ids.
    pub ids: String,
}

/// Online or offline and last seen, for up to 200 users.
pub async fn presence(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<PresenceQuery>,
) -> Result<Json<Page<Presence>>, ApiError> {
    let ids: Vec<String> = query.ids.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if ids.is_empty() || ids.len() > MAX_PRESENCE_IDS {
        return Err(ApiError::invalid("ids must name 1 to 200 users"));
    }
    for id in &ids {
        check_id(id, "ids")?;
    }
    let items = crate::presence::lookup(&state, &ids).await?;
    Ok(Json(Page { items, next_cursor: None }))
}
