//! `/api/chats/{id}/messages` (the seed's MessageController).

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chat_nats::{commands::Command, limits, model::Message};
use chat_store::messages::HistoryPage;
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    commands, cursor,
    error::ApiError,
    extract::{ApiJson, ApiPath, ApiQuery},
    routes::{
        chats::{Page, member_chat},
        check_id, traceparent,
    },
    state::AppState,
};

/// History query: newest first by default; `after_seq` reads oldest first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only messages with a smaller seq.
    pub before_seq: Option<u64>,
    /// Only messages with a larger seq, oldest first.
    pub after_seq: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
    /// Where the previous page stopped.
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

/// A page of history, tombstones included.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<Message>>, ApiError> {
    member_chat(&state, &caller, &chat_id).await?;
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
    let docs = state.inner.store.history(&chat_id, page, limit + 1).await?;
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The client's idempotency key.
    pub client_msg_id: String,
    /// The text.
    pub text: String,
    /// The message being answered.
    #[serde(default)]
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
    member_chat(&state, &caller, &chat_id).await?;
    limits::check_client_id(&request.client_msg_id, "client_msg_id").map_err(ApiError::invalid)?;
    limits::check_text(&request.text).map_err(|reason| {
        if request.text.chars().count() > limits::MAX_TEXT_CHARS {
            ApiError::new(chat_nats::model::ErrorCode::TooLarge, reason)
        } else {
            ApiError::invalid(reason)
        }
    })?;
    if let Some(reply_to) = &request.reply_to {
        check_id(reply_to, "reply_to")?;
    }
    let command = Command::MsgSend {
        chat_id,
        client_msg_id: request.client_msg_id,
        text: request.text,
        reply_to: request.reply_to,
    };
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (message, _, created) = commands::done_or_error(outcome)?;
    let message = message.ok_or_else(|| ApiError::internal("persister answered without a message"))?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(message)))
}
