//! What platform admins read of the moderation records: a message's edit and delete
//! history (`GET /api/admin/messages/{chat_id}/{message_id}/history`) and the audit
//! trail per chat or user (`GET /api/admin/audit`). Members never see either.

use axum::{Json, extract::State};
use chat_nats::{
    model::ErrorCode,
    moderation::{AuditEntry, HistoryEntry},
    roles,
};
use chat_store::audit::AuditFilter;
use chrono::DateTime;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    auth::Caller,
    cursor,
    error::ApiError,
    extract::{ApiPath, ApiQuery},
    openapi::rules,
    routes::{chats::Page, check_id},
    state::AppState,
};

/// A message's edits and delete, oldest first, with the text before and after each.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((chat_id, message_id)): ApiPath<(String, String)>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    check_platform_admin(&caller)?;
    check_id(&chat_id, "chat id")?;
    check_id(&message_id, "message id")?;
    let records = state.inner.store.history_of(&chat_id, &message_id).await?;
    Ok(Json(records.into_iter().map(HistoryEntry::from).collect()))
}

/// `GET /api/admin/audit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this chat's entries.
    #[schemars(with = "Option<rules::Id>")]
    pub chat_id: Option<String>,
    /// Only entries done by or to this user.
    #[schemars(with = "Option<rules::Id>")]
    pub user_id: Option<String>,
    /// Page size.
    #[schemars(range(min = 1, max = cursor::MAX_PAGE), extend("default" = cursor::DEFAULT_PAGE))]
    pub limit: Option<u32>,
    /// Where the previous page stopped.
    #[schemars(with = "Option<rules::Cursor>")]
    pub cursor: Option<String>,
}

/// The audit trail, newest first.
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    check_platform_admin(&caller)?;
    for (id, what) in [(&query.chat_id, "chat_id"), (&query.user_id, "user_id")] {
        if let Some(id) = id {
            check_id(id, what)?;
        }
    }
    let limit = cursor::page_limit(query.limit)?;
    let before = match &query.cursor {
        Some(position) => {
            let (at_ms, id): (i64, String) = cursor::decode(position)?;
            let at = DateTime::from_timestamp_millis(at_ms).ok_or_else(|| ApiError::invalid("malformed cursor"))?;
            Some((at, id))
        }
        None => None,
    };
    let filter = AuditFilter { chat_id: query.chat_id, user_id: query.user_id };
    let entries = state.inner.store.audit_entries(&filter, before, Some(limit + 1)).await?;
    let has_more = entries.len() > limit as usize;
    let items: Vec<AuditEntry> = entries.into_iter().take(limit as usize).map(AuditEntry::from).collect();
    let next_cursor =
        has_more.then(|| items.last().map(|entry| cursor::encode(&(entry.at.timestamp_millis(), &entry.id)))).flatten();
    Ok(Json(Page { items, next_cursor }))
}

fn check_platform_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.has_role(roles::PLATFORM_ADMIN) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "platform admin role required"))
    }
}
