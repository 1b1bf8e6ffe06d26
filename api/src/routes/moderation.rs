//! `/api/chats/{id}/moderation` and `/api/chats/{id}/participants/{user_id}/mute`: a
//! chat's owner and admins, or a platform admin, change the chat's mode (who posts,
//! slow mode, frozen) and mute members. The persister decides; these routes answer
//! only what needs no store read (shape, bounds, membership of non-admins).

use axum::{Json, extract::State, http::HeaderMap};
use chat_nats::{
    commands::{ChatModerate, Command, MAX_SLOW_MODE_SECONDS, MemberMute},
    limits,
    model::{Chat, Posting, timestamp},
    roles,
};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    auth::Caller,
    commands,
    error::ApiError,
    extract::{ApiJson, ApiPath},
    routes::{chats::check_member, check_id, traceparent},
    state::AppState,
};

/// `PATCH /api/chats/{id}/moderation`: at least one of the fields; those left out keep
/// their value.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct Moderate {
    /// Who may post: `admins` makes an announcement chat.
    #[serde(default)]
    pub posting: Option<Posting>,
    /// Seconds between two messages of a member (owners and admins are exempt); 0 is off.
    #[serde(default)]
    #[schemars(range(max = MAX_SLOW_MODE_SECONDS))]
    pub slow_mode_seconds: Option<u32>,
    /// Read-only for everyone, or open again.
    #[serde(default)]
    pub frozen: Option<bool>,
}

/// `PUT /api/chats/{id}/participants/{user_id}/mute`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// When the mute ends, in the future; `null` (or left out) unmutes.
    #[serde(with = "timestamp::option", default)]
    #[schemars(schema_with = "timestamp::option::schema")]
    pub until: Option<DateTime<Utc>>,
}

/// A platform admin moderates chats they are not in; anyone else must be a member.
async fn check_moderator(state: &AppState, caller: &Caller, chat_id: &str) -> Result<(), ApiError> {
    if caller.0.has_role(roles::PLATFORM_ADMIN) {
        return check_id(chat_id, "chat id");
    }
    check_member(state, caller, chat_id).await
}

/// Changes the chat's mode; answers with the chat.
pub async fn moderate(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(request): ApiJson<Moderate>,
) -> Result<Json<Chat>, ApiError> {
    let Moderate { posting, slow_mode_seconds, frozen } = request;
    limits::check_moderation(posting, slow_mode_seconds, frozen).map_err(ApiError::invalid)?;
    check_moderator(&state, &caller, &chat_id).await?;
    let command = Command::ChatModerate(ChatModerate { chat_id, posting, slow_mode_seconds, frozen });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (_, chat, _) = commands::done_or_error(outcome)?;
    chat.map(Json).ok_or_else(|| ApiError::internal("persister answered without a chat"))
}

/// Mutes a member until a time, or unmutes them; answers with the chat.
pub async fn mute(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((chat_id, user_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<Mute>,
) -> Result<Json<Chat>, ApiError> {
    check_id(&user_id, "user id")?;
    limits::check_mute_until(request.until, Utc::now()).map_err(ApiError::invalid)?;
    check_moderator(&state, &caller, &chat_id).await?;
    let command = Command::MemberMute(MemberMute { chat_id, user_id, until: request.until });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (_, chat, _) = commands::done_or_error(outcome)?;
    chat.map(Json).ok_or_else(|| ApiError::internal("persister answered without a chat"))
}
