//! `/api/users` (the seed's UserController). The directory is searched by name prefix
//! under the rules of [`crate::privacy`]: at least [`MIN_QUERY_CHARS`] characters, a
//! per-user budget, pages of at most [`MAX_SEARCH_PAGE`] with a cursor, and staff roles
//! shown to staff only.

use axum::{Json, extract::State};
use chat_nats::presence::Presence;
use chat_store::{docs::UserDoc, users::After};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    cursor,
    error::ApiError,
    extract::ApiQuery,
    openapi::rules,
    privacy::{self, DirectoryRoles},
    routes::{chats::Page, check_id},
    state::AppState,
};

/// Most users in one presence request.
pub const MAX_PRESENCE_IDS: usize = 200;
/// The shortest directory query: one letter would list a school a letter at a time.
pub const MIN_QUERY_CHARS: usize = 2;
/// The longest directory query.
pub const MAX_QUERY_CHARS: usize = 100;
/// Most users in one page of a directory search (the default too).
pub const MAX_SEARCH_PAGE: u32 = 20;

/// A user as the API shows one.
#[derive(Debug, Serialize, JsonSchema)]
pub struct User {
    /// Id (the token's `sub`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Platform roles (empty in directory results for callers who may not see them).
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// A name prefix (any case, any Unicode normalisation) or an exact id.
    #[schemars(with = "rules::SearchText")]
    pub q: String,
    /// Page size, at most 20 (the default).
    #[schemars(range(min = 1, max = MAX_SEARCH_PAGE), extend("default" = MAX_SEARCH_PAGE))]
    pub limit: Option<u32>,
    /// Where the previous page stopped.
    #[schemars(with = "Option<rules::Cursor>")]
    pub cursor: Option<String>,
}

/// Finds users by name prefix (case- and normalisation-insensitive, every script); the
/// first page also holds the user whose id is exactly `q`.
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    let limit = match query.limit {
        None => MAX_SEARCH_PAGE,
        Some(n @ 1..=MAX_SEARCH_PAGE) => n,
        Some(_) => return Err(ApiError::invalid("limit must be between 1 and 20")),
    };
    let q = query.q.trim();
    let length = q.chars().count();
    if !(MIN_QUERY_CHARS..=MAX_QUERY_CHARS).contains(&length) || q.chars().any(char::is_control) {
        return Err(ApiError::invalid("q must be 2-100 characters"));
    }
    let after = query
        .cursor
        .as_deref()
        .map(|position| cursor::decode::<(String, String)>(position).map(|(name_key, id)| After { name_key, id }))
        .transpose()?;
    privacy::take_directory_search(&state, caller.id(), &caller.0.roles).await?;
    let store = &state.inner.store;
    let mut found = store.search_users(q, after.as_ref(), limit + 1).await?;
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next_cursor =
        has_more.then(|| found.last().map(|u| cursor::encode(&(u.name_key.clone(), u.id.clone())))).flatten();
    if after.is_none()
        && let Some(exact) = store.user(q).await?
        && found.iter().all(|u| u.id != exact.id)
    {
        found.insert(0, exact);
    }
    let show_roles =
        state.inner.privacy.directory_roles == DirectoryRoles::Everyone || privacy::is_staff(&caller.0.roles);
    let items = found.into_iter().map(|user| shown(user, show_roles)).collect();
    Ok(Json(Page { items, next_cursor }))
}

/// A directory entry as the caller may see it.
fn shown(user: UserDoc, show_roles: bool) -> User {
    User { id: user.id, name: user.name, roles: if show_roles { user.roles } else { Vec::new() } }
}

/// `GET /api/users/presence` query.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    /// Comma-separated user ids.
    #[schemars(with = "rules::IdList")]
    pub ids: String,
}

/// Online or offline and last seen, for up to 200 users; users the caller may not see
/// are offline and never seen.
pub async fn presence(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PresenceQuery>,
) -> Result<Json<Page<Presence>>, ApiError> {
    let ids: Vec<String> = query.ids.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if ids.is_empty() || ids.len() > MAX_PRESENCE_IDS {
        return Err(ApiError::invalid("ids must name 1 to 200 users"));
    }
    for id in &ids {
        check_id(id, "ids")?;
    }
    let (items, _) = crate::presence::lookup(&state, Some(&caller.actor()), &ids).await?;
    Ok(Json(Page { items, next_cursor: None }))
}
