//! `/api/chats` (the seed's ChatController).

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chat_nats::{
    commands::{ChatCreate, ChatUpdate, Command},
    model::{Chat, ChatKind, ErrorCode, HistoryVisibility, Role, direct_key},
};
use chat_store::docs::{ChatDoc, ParticipantDoc};
use futures::future::try_join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    commands, cursor,
    error::ApiError,
    extract::{ApiJson, ApiPath, ApiQuery},
    openapi::rules,
    privacy,
    routes::{check_id, traceparent},
    state::AppState,
};

/// `POST /api/chats`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CreateChat {
    /// The direct chat with one other user.
    Direct {
        /// The other user (not the caller).
        #[schemars(with = "rules::Id")]
        member_id: String,
    },
    /// A group the caller owns.
    Group {
        /// Its title.
        #[schemars(with = "rules::Title")]
        title: String,
        /// Members besides the caller.
        #[serde(default)]
        #[schemars(with = "Vec<rules::Id>", length(max = chat_nats::limits::MAX_MEMBERS_PER_COMMAND))]
        member_ids: Vec<String>,
        /// The platform's course or group id: only the platform's `admin` and `service`
        /// roles may set it (others get 403), and it is unique (409).
        #[serde(default)]
        #[schemars(with = "Option<rules::Id>")]
        external_id: Option<String>,
        /// Which history later members read (default: `all` for staff, else
        /// `since_join`).
        #[serde(default)]
        history_visibility: Option<HistoryVisibility>,
    },
}

/// Creates a chat; an existing direct chat comes back with 200.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateChat>,
) -> Result<(StatusCode, Json<Chat>), ApiError> {
    let command = match request {
        CreateChat::Direct { member_id } => {
            check_id(&member_id, "member_id")?;
            if member_id == caller.id() {
                return Err(ApiError::invalid("a direct chat needs another member"));
            }
            if let Some(existing) = state.inner.store.direct_chat(&direct_key(caller.id(), &member_id)).await? {
                return Ok((StatusCode::OK, Json(existing.into())));
            }
            // The persister decides (and makes a supervised pair's chat a group);
            // asking here spares a refusal the round trip.
            let policy = &state.inner.policy;
            if policy.judges_direct_chats() {
                let other = state.inner.store.user(&member_id).await?;
                let other_roles = other.map(|user| user.roles).unwrap_or_default();
                policy.direct_chat(caller.id(), &caller.0.roles, &member_id, &other_roles).map_err(refused)?;
            }
            Command::ChatCreate(ChatCreate {
                chat_id: chat_core::ids::new_id(),
                kind: ChatKind::Direct,
                title: None,
                member_ids: vec![member_id],
                external_id: None,
                history_visibility: None,
            })
        }
        CreateChat::Group { title, member_ids, external_id, history_visibility } => {
            chat_nats::limits::check_title(&title).map_err(ApiError::invalid)?;
            state.inner.policy.may_create_group(&caller.0.roles).map_err(refused)?;
            for id in &member_ids {
                check_id(id, "member_ids")?;
            }
            let mut everyone: Vec<&str> = member_ids.iter().map(String::as_str).chain([caller.id()]).collect();
            everyone.sort_unstable();
            everyone.dedup();
            let limits = &state.inner.chat_limits;
            if everyone.len() > limits.max_participants {
                return Err(ApiError::new(ErrorCode::Conflict, limits.too_many_participants()));
            }
            if let Some(external_id) = &external_id {
                check_id(external_id, "external_id")?;
                // The persister enforces this too; answering here spares the round trip.
                if !chat_nats::roles::is_platform(&caller.0.roles) {
                    return Err(ApiError::new(
                        ErrorCode::Forbidden,
                        "only the platform (admin or service role) may set external_id",
                    ));
                }
            }
            Command::ChatCreate(ChatCreate {
                chat_id: chat_core::ids::new_id(),
                kind: ChatKind::Group,
                title: Some(title),
                member_ids,
                external_id,
                history_visibility,
            })
        }
    };
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (_, chat, created) = commands::done_or_error(outcome)?;
    let chat = chat.ok_or_else(|| ApiError::internal("persister answered without a chat"))?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(chat)))
}

/// A refusal by the messaging policy as the api answers it.
pub fn refused(refusal: chat_core::policy::Refusal) -> ApiError {
    ApiError::new(refusal.code(), refusal.message)
}

/// `GET /api/chats` query.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size.
    #[schemars(range(min = 1, max = cursor::MAX_PAGE), extend("default" = cursor::DEFAULT_PAGE))]
    pub limit: Option<u32>,
    /// Where the previous page stopped.
    #[schemars(with = "Option<rules::Cursor>")]
    pub cursor: Option<String>,
}

/// A chat in the caller's list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChatListItem {
    /// The chat.
    #[serde(flatten)]
    pub chat: Chat,
    /// Messages by others after the caller's read mark, not deleted.
    pub unread_count: u64,
    /// The caller's read mark.
    pub last_read_seq: u64,
    /// The caller's role.
    pub my_role: Role,
}

/// A page of items.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The caller's chats, most recent activity first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<ChatListItem>>, ApiError> {
    let limit = cursor::page_limit(query.limit)?;
    let store = &state.inner.store;
    let after = match &query.cursor {
        Some(position) => {
            let (updated_ms, id): (i64, String) = cursor::decode(position)?;
            let at = chrono::DateTime::from_timestamp_millis(updated_ms)
                .ok_or_else(|| ApiError::invalid("malformed cursor"))?;
            Some((at, id))
        }
        None => None,
    };
    let chats = store.chats_of_user(caller.id(), after, limit + 1).await?;
    let has_more = chats.len() > limit as usize;
    let chats: Vec<ChatDoc> = chats.into_iter().take(limit as usize).collect();
    let next_cursor = has_more
        .then(|| chats.last().map(|c| cursor::encode(&(c.updated_at.timestamp_millis(), c.id.clone()))))
        .flatten();
    let chat_ids: Vec<String> = chats.iter().map(|c| c.id.clone()).collect();
    let marks: HashMap<String, ParticipantDoc> =
        store.memberships_in(caller.id(), &chat_ids).await?.into_iter().map(|p| (p.chat_id.clone(), p)).collect();
    let user_id = caller.id();
    let items = try_join_all(chats.into_iter().map(|chat| {
        let mark = marks.get(&chat.id);
        let last_read_seq = mark.map(|p| u64::try_from(p.last_read_seq).unwrap_or(0)).unwrap_or(0);
        let my_role = mark.map(|p| p.role).unwrap_or(Role::Member);
        let first_seq = privacy::first_readable_seq(chat.history_visibility, mark.map_or(i64::MAX, |p| p.joined_seq));
        async move {
            let last_seq = u64::try_from(chat.last_seq).unwrap_or(0);
            // Messages from before a `since_join` member joined are not theirs to read.
            let unread_after = last_read_seq.max(first_seq.saturating_sub(1));
            let unread_count = store.count_unread(&chat.id, user_id, unread_after, last_seq).await?;
            let chat = privacy::chat_as_seen(chat.into(), first_seq);
            Ok::<_, chat_store::StoreError>(ChatListItem { chat, unread_count, last_read_seq, my_role })
        }
    }))
    .await?;
    Ok(Json(Page { items, next_cursor }))
}

/// Loads a chat the caller belongs to; anything else is 404.
pub async fn member_chat(state: &AppState, caller: &Caller, chat_id: &str) -> Result<ChatDoc, ApiError> {
    check_id(chat_id, "chat id")?;
    let chat = state.inner.store.chat(chat_id).await?.ok_or_else(ApiError::not_found)?;
    if chat.participants.iter().any(|m| m.user_id == caller.id()) { Ok(chat) } else { Err(ApiError::not_found()) }
}

/// Checks that the caller belongs to a chat with one point lookup of their membership
/// (a member of a chat that does not exist cannot be): for routes that need nothing else
/// of the chat. Anything else is 404.
pub async fn check_member(state: &AppState, caller: &Caller, chat_id: &str) -> Result<(), ApiError> {
    member_of(state, caller, chat_id).await.map(|_| ())
}

/// The caller's membership of a chat, by one point lookup; anything else is 404.
pub async fn member_of(state: &AppState, caller: &Caller, chat_id: &str) -> Result<ParticipantDoc, ApiError> {
    check_id(chat_id, "chat id")?;
    state.inner.store.participant(chat_id, caller.id()).await?.ok_or_else(ApiError::not_found)
}

/// One chat with its participants.
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
) -> Result<Json<Chat>, ApiError> {
    let chat = member_chat(&state, &caller, &chat_id).await?;
    let member = member_of(&state, &caller, &chat_id).await?;
    let first_seq = privacy::first_readable_seq(chat.history_visibility, member.joined_seq);
    Ok(Json(privacy::chat_as_seen(chat.into(), first_seq)))
}

/// `PATCH /api/chats/{id}`: at least one of the fields, not `null`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    { "required": ["title"], "properties": { "title": { "not": { "type": "null" } } } },
    { "required": ["history_visibility"], "properties": { "history_visibility": { "not": { "type": "null" } } } },
]))]
pub struct Rename {
    /// The new title.
    #[serde(default)]
    #[schemars(with = "Option<rules::Title>")]
    pub title: Option<String>,
    /// The new history visibility.
    #[serde(default)]
    pub history_visibility: Option<HistoryVisibility>,
}

/// Renames a group or changes its history visibility (owners and admins).
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(request): ApiJson<Rename>,
) -> Result<Json<Chat>, ApiError> {
    check_member(&state, &caller, &chat_id).await?;
    if request.title.is_none() && request.history_visibility.is_none() {
        return Err(ApiError::invalid("give title or history_visibility"));
    }
    if let Some(title) = &request.title {
        chat_nats::limits::check_title(title).map_err(ApiError::invalid)?;
    }
    let command = Command::ChatUpdate(ChatUpdate {
        chat_id,
        title: request.title,
        history_visibility: request.history_visibility,
    });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (_, chat, _) = commands::done_or_error(outcome)?;
    chat.map(Json).ok_or_else(|| ApiError::internal("persister answered without a chat"))
}
