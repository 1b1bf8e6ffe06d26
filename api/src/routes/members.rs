//! `/api/chats/{id}/participants`: adding people, changing roles, removing, leaving.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chat_core::policy;
use chat_nats::{
    commands::{Command, MemberAdd, MemberRemove},
    model::{Chat, ErrorCode, Role},
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    auth::Caller,
    commands,
    error::ApiError,
    extract::{ApiJson, ApiPath},
    openapi::rules,
    routes::{
        chats::{self, check_member, member_chat},
        check_id, traceparent,
    },
    state::AppState,
};

/// `POST /api/chats/{id}/participants`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    /// Who to add (or whose role to change).
    #[schemars(with = "Vec<rules::Id>", length(min = 1, max = chat_nats::limits::MAX_MEMBERS_PER_COMMAND))]
    pub user_ids: Vec<String>,
    /// Their role (`member` by default; `admin` only by the owner).
    #[serde(default = "member")]
    #[schemars(with = "rules::GrantedRole")]
    pub role: Role,
}

fn member() -> Role {
    Role::Member
}

/// Adds members or changes their role (owners and admins).
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(request): ApiJson<AddMembers>,
) -> Result<Json<Chat>, ApiError> {
    let chat = member_chat(&state, &caller, &chat_id).await?;
    if request.user_ids.is_empty() || request.user_ids.len() > chat_nats::limits::MAX_MEMBERS_PER_COMMAND {
        return Err(ApiError::invalid("user_ids must name 1 to 1000 users"));
    }
    for id in &request.user_ids {
        check_id(id, "user_ids")?;
    }
    // The persister decides; answering here spares a full chat the round trip.
    let mut fresh: Vec<&String> =
        request.user_ids.iter().filter(|id| chat.participants.iter().all(|m| &m.user_id != *id)).collect();
    fresh.sort();
    fresh.dedup();
    let limits = &state.inner.chat_limits;
    if chat.participants.len() + fresh.len() > limits.max_participants {
        return Err(ApiError::new(ErrorCode::Conflict, limits.too_many_participants()));
    }
    let command = Command::MemberAdd(MemberAdd { chat_id, user_ids: request.user_ids, role: request.role });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (_, chat, _) = commands::done_or_error(outcome)?;
    chat.map(Json).ok_or_else(|| ApiError::internal("persister answered without a chat"))
}

/// Removes a member, or leaves (the caller's own id): 204.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((chat_id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_member(&state, &caller, &chat_id).await?;
    check_id(&user_id, "user id")?;
    // The persister decides; answering here spares the round trip. Only an owner can
    // be a supervisor, so only removing one loads the whole chat.
    let target = state.inner.store.participant(&chat_id, &user_id).await?.map(|member| member.role);
    if target == Some(Role::Owner) && user_id != caller.id() {
        let chat = member_chat(&state, &caller, &chat_id).await?;
        let supervised = policy::is_supervised(chat.kind, chat.direct_key.as_deref());
        policy::may_remove(supervised, target, false).map_err(chats::refused)?;
    }
    let outcome = commands::submit(
        &state,
        &caller,
        Command::MemberRemove(MemberRemove { chat_id, user_id }),
        traceparent(&headers),
    )
    .await?;
    commands::done_or_error(outcome)?;
    Ok(StatusCode::NO_CONTENT)
}
