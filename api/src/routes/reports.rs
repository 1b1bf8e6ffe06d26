//! Reports of messages: a member reports (`POST /api/chats/{id}/messages/{mid}/report`);
//! staff with a moderation role (`CHAT_MODERATION_ROLES`) read the review queue
//! (`GET /api/moderation/reports`) and resolve a report in one call
//! (`POST /api/moderation/reports/{id}/resolve`). Both writes go through the persister.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chat_nats::{
    commands::{Command, CommandOutcome, MsgReport, ReportResolve},
    model::ErrorCode,
    moderation::{self, Report, ReportReason, ReportState, ResolveAction},
};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

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

/// `POST /api/chats/{id}/messages/{message_id}/report`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportMessage {
    /// Why.
    pub reason: ReportReason,
    /// What the moderators should know.
    #[serde(default)]
    #[schemars(with = "Option<rules::Note>")]
    pub note: Option<String>,
}

/// Reports a message the caller can read: 201 with the report, 200 with the caller's
/// earlier report of it.
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((chat_id, message_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<ReportMessage>,
) -> Result<(StatusCode, Json<Report>), ApiError> {
    check_member(&state, &caller, &chat_id).await?;
    check_id(&message_id, "message id")?;
    if let Some(note) = &request.note {
        moderation::check_note(note).map_err(ApiError::invalid)?;
    }
    let command = Command::MsgReport(MsgReport { chat_id, message_id, reason: request.reason, note: request.note });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (report, created) = reported(outcome)?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(report)))
}

/// `GET /api/moderation/reports`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Which reports; `open` when absent.
    pub state: Option<ReportState>,
    /// Page size.
    #[schemars(range(min = 1, max = cursor::MAX_PAGE), extend("default" = cursor::DEFAULT_PAGE))]
    pub limit: Option<u32>,
    /// Where the previous page stopped.
    #[schemars(with = "Option<rules::Cursor>")]
    pub cursor: Option<String>,
}

/// The review queue: reports in one state, oldest first.
pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<Page<Report>>, ApiError> {
    check_moderator(&state, &caller)?;
    let limit = cursor::page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_position).transpose()?;
    let reports = state.inner.store.reports_in(query.state.unwrap_or(ReportState::Open), after, limit + 1).await?;
    let has_more = reports.len() > limit as usize;
    let items: Vec<Report> = reports.into_iter().take(limit as usize).map(Report::from).collect();
    let next_cursor = has_more
        .then(|| items.last().map(|report| cursor::encode(&(report.created_at.timestamp_millis(), &report.id))))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

/// `POST /api/moderation/reports/{id}/resolve`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveReport {
    /// What to do.
    pub action: ResolveAction,
    /// Until when the sender is muted; `mute_sender` only.
    #[serde(default, with = "chat_nats::model::timestamp::option")]
    #[schemars(schema_with = "chat_nats::model::timestamp::option::schema")]
    pub mute_until: Option<DateTime<Utc>>,
}

/// Resolves a report: answers it as resolved (by whoever resolved it first).
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(report_id): ApiPath<String>,
    ApiJson(request): ApiJson<ResolveReport>,
) -> Result<Json<Report>, ApiError> {
    check_moderator(&state, &caller)?;
    check_id(&report_id, "report id")?;
    if request.mute_until.is_some() != (request.action == ResolveAction::MuteSender) {
        return Err(ApiError::invalid("mute_until goes with mute_sender, and only with it"));
    }
    let report = state.inner.store.report(&report_id).await?.ok_or_else(ApiError::not_found)?;
    let command = Command::ReportResolve(ReportResolve {
        chat_id: report.chat_id,
        report_id,
        action: request.action,
        mute_until: request.mute_until,
    });
    let outcome = commands::submit(&state, &caller, command, traceparent(&headers)).await?;
    let (report, _) = reported(outcome)?;
    Ok(Json(report))
}

/// Moderators only (`CHAT_MODERATION_ROLES`), as the persister decides for resolving.
fn check_moderator(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if state.inner.moderation.is_moderator(&caller.0.roles) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "only moderators (CHAT_MODERATION_ROLES) review reports"))
    }
}

fn decode_position(position: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let (at_ms, id): (i64, String) = cursor::decode(position)?;
    let at = DateTime::from_timestamp_millis(at_ms).ok_or_else(|| ApiError::invalid("malformed cursor"))?;
    Ok((at, id))
}

fn reported(outcome: CommandOutcome) -> Result<(Report, bool), ApiError> {
    match outcome {
        CommandOutcome::Reported { report, created } => Ok((*report, created)),
        CommandOutcome::Rejected(rejection) => Err(ApiError::new(rejection.code, rejection.message)),
        CommandOutcome::Done { .. } => Err(ApiError::internal("the persister answered without a report")),
    }
}
