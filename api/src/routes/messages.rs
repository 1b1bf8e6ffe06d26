//! `/api/chats/{id}/messages` (the seed's MessageController).

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chat_nats::{
    commands::{Command, MsgDelete, MsgEdit, MsgSend, Read},
    limits,
    model::Message,
};
use chat_store::messages::HistoryPage;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    commands, cursor,
    error::ApiError,
    extract::{ApiJson, ApiPath, ApiQuery},
    openapi::rules,
    routes::{
        chats::{Page, check_member},
        check_id, traceparent,
    },
    state::AppState,
};

/// History query: newest first by default; `after_seq` reads oldest first. At most one
/// of `cursor`, `before_seq` and `after_seq`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("not" = { "anyOf": [
    { "required": ["cursor", "before_seq"] },
    { "required": ["cursor", "after_seq"] },
    { "required": ["before_seq", "after_seq"] },
] }))]
pub struct HistoryQuery {
    /// Only messages with a smaller seq.
    pub before_seq: Option<u64>,
    /// Only messages with a larger seq, oldest first.
    pub after_seq: Option<u64>,
    /// Page size.
    #[schemars(range(min = 1, max = cursor::MAX_PAGE), extend("default" = cursor::DEFAULT_PAGE))]
    pub limit: Option<u32>,
    /// Where the previous page stopped.
    #[schemars(with = "Option<rules::Cursor>")]
    pub cursor: Option<String>,
}

/// Where a history page continues.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "d", content = "s")]
enum Position {
    #[serde(rename = "b")]
    Before(u64),
    #[serde(rename = "a")]
    After(u64),
}

/// A page of history, tombstones included; in a `since_join` chat, from the caller's
/// joining on.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<Message>>, ApiError> {
    check_id(&chat_id, "chat id")?;
    let limit = cursor::page_limit(query.limit)?;
    let page = match (&query.cursor, query.before_seq, query.after_seq) {
        (Some(position), None, None) => match cursor::decode::<Position>(position)? {
            Position::Before(seq) => HistoryPage::Before(Some(seq)),
            Position::After(seq) => HistoryPage::After(seq),
        },
        (None, before, None) => HistoryPage::Before(before),
        (None, None, Some(after)) => HistoryPage::After(after),
        _ => return Err(ApiError::invalid("use one of cursor, before_seq and after_seq")),
    };
    let docs = state
        .inner
        .store
        .member_history(&chat_id, caller.id(), page, limit + 1)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let has_more = docs.len() > limit as usize;
    let items: Vec<Message> = docs.into_iter().take(limit as usize).map(Into::into).collect();
    let next_cursor = match (has_more, items.last(), page) {
        (true, Some(last), HistoryPage::Before(_)) => Some(cursor::encode(&Position::Before(last.seq))),
        (true, Some(last), HistoryPage::After(_)) => Some(cursor::encode(&Position::After(last.seq))),
        _ => None,
    };
    Ok(Json(Page { items, next_cursor }))
}

/// `POST /api/chats/{id}/messages`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The client's idempotency key: a resend with the same key answers the original.
    #[schemars(with = "rules::Id")]
    pub client_msg_id: String,
    /// The text.
    #[schemars(with = "rules::Text")]
    pub text: String,
    /// The message being answered, of the same chat.
    #[serde(default)]
    #[schemars(with = "Option<rules::Id>")]
    pub reply_to: Option<String>,
}

/// Sends through the pipeline; 201 with the stored message, 200 for a resend.
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(request): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    check_member(&state, &caller, &chat_id).await?;
    limits::check_client_id(&request.client_msg_id, "client_msg_id").map_err(ApiError::invalid)?;
    check_text(&request.text)?;
    if let Some(reply_to) = &request.reply_to {
        check_id(reply_to, "reply_to")?;
    }
    // Only well-formed sends count against the budget.
    if let chat_core::rate_limit::Verdict::Limited { retry_after_ms } = state.inner.message_budget.take(caller.id()) {
        return Err(ApiError {
            code: chat_nats::model::ErrorCode::RateLimited,
            message: "too many messages; slow down".into(),
            retry_after_s: Some(retry_after_ms.div_ceil(1000)),
        });
    }
    let command = Command::MsgSend(MsgSend {
        chat_id,
        client_msg_id: request.client_msg_id,
        text: request.text,
        reply_to: request.reply_to,
    });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (message, _, created) = commands::done_or_error(outcome)?;
    let message = message.ok_or_else(|| ApiError::internal("persister answered without a message"))?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(message)))
}

/// `PATCH /api/chats/{id}/messages/{message_id}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The new text.
    #[schemars(with = "rules::Text")]
    pub text: String,
}

/// Edits a message (its sender only).
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((chat_id, message_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<EditMessage>,
) -> Result<Json<Message>, ApiError> {
    check_member(&state, &caller, &chat_id).await?;
    check_id(&message_id, "message id")?;
    check_text(&request.text)?;
    let command = Command::MsgEdit(MsgEdit { chat_id, message_id, text: request.text });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (message, _, _) = commands::done_or_error(outcome)?;
    message.map(Json).ok_or_else(|| ApiError::internal("persister answered without a message"))
}

/// Soft-deletes a message; answers with its tombstone. Platform admins may delete in
/// chats they do not belong to.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((chat_id, message_id)): ApiPath<(String, String)>,
) -> Result<Json<Message>, ApiError> {
    if !caller.0.has_role(chat_nats::roles::PLATFORM_ADMIN) {
        check_member(&state, &caller, &chat_id).await?;
    }
    check_id(&chat_id, "chat id")?;
    check_id(&message_id, "message id")?;
    let command = Command::MsgDelete(MsgDelete { chat_id, message_id });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (message, _, _) = commands::done_or_error(outcome)?;
    message.map(Json).ok_or_else(|| ApiError::internal("persister answered without a message"))
}

/// `POST /api/chats/{id}/read`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Everything up to this seq is read (a mark past the chat's `last_seq` stops there).
    #[serde(deserialize_with = "crate::integer::u64")]
    #[schemars(with = "rules::Seq")]
    pub up_to_seq: u64,
}

/// Moves the caller's read mark forward (never backwards): 204.
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(request): ApiJson<MarkRead>,
) -> Result<StatusCode, ApiError> {
    check_member(&state, &caller, &chat_id).await?;
    let command = Command::Read(Read { chat_id, up_to_seq: request.up_to_seq });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    commands::done_or_error(outcome)?;
    Ok(StatusCode::NO_CONTENT)
}

fn check_text(text: &str) -> Result<(), ApiError> {
    limits::check_text(text).map_err(|reason| {
        if text.chars().count() > limits::MAX_TEXT_CHARS {
            ApiError::new(chat_nats::model::ErrorCode::TooLarge, reason)
        } else {
            ApiError::invalid(reason)
        }
    })
}
