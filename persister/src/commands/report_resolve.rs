//! `report.resolve`: a user whose platform role is a moderation role
//! (`CHAT_MODERATION_ROLES`) closes a report, dismissing it, deleting the message (as
//! `msg.delete` does, with its event) or muting the sender (as `member.mute` does). The
//! action is done before
//! the report is marked, so a redelivery after a crash finishes it; the audit trail
//! records the resolution.

use chat_core::moderation::ModerationArgs;
use chat_nats::{
    commands::{CommandOutcome, ReportResolve},
    model::ErrorCode,
    moderation::{AuditAction, ResolveAction},
};
use chat_store::{
    Store,
    reports::{ReportDoc, Resolution},
};

use crate::{
    audit,
    authorization::Refusal,
    command::{HandleError, Issued},
    commands::{member_mute, msg_delete},
    effects::Effects,
    metrics,
};

/// Handles one `report.resolve`.
pub async fn handle(
    store: &Store,
    moderation: &ModerationArgs,
    issued: &Issued,
    command: &ReportResolve,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let ReportResolve { chat_id, report_id, action, .. } = command;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    if !moderation.is_moderator(&envelope.actor.roles) {
        return reject(effects, ErrorCode::Forbidden, "only moderators (CHAT_MODERATION_ROLES) resolve reports");
    }
    let Some(report) = store.report(report_id).await?.filter(|report| &report.chat_id == chat_id) else {
        return reject(effects, ErrorCode::NotFound, "no such report");
    };
    let replay = report.resolved_with.as_deref() == Some(envelope.id.as_str());
    if report.resolved_at.is_some() && !replay {
        // Resolved by someone else: their decision stands.
        return finish(issued, report, false, effects);
    }
    let done = match action {
        ResolveAction::Dismiss => Ok(()),
        ResolveAction::DeleteMessage => delete_message(store, issued, &report, effects).await?,
        ResolveAction::MuteSender => mute_sender(store, issued, command, &report, effects).await?,
    };
    if let Err(refusal) = done {
        return reject(effects, refusal.code, refusal.reason);
    }
    let resolution =
        Resolution { by: &envelope.actor.user_id, action: *action, command_id: &envelope.id, at: chrono::Utc::now() };
    let (resolved, fresh) = match store.resolve_report(report_id, &resolution).await? {
        Some(resolved) => (resolved, true),
        // A replay, or another moderator's resolve that came first.
        None => match store.report(report_id).await? {
            Some(current) => (current, false),
            None => return reject(effects, ErrorCode::NotFound, "no such report"),
        },
    };
    let action_name: &'static str = (*action).into();
    let reason: &'static str = resolved.reason.into();
    let entry = audit::Entry::new(AuditAction::ReportResolve, chat_id)
        .targets([resolved.sender_id.clone()])
        .detail("report_id", report_id.as_str())
        .detail("message_id", resolved.message_id.as_str())
        .detail("action", action_name)
        .detail("reason", reason);
    audit::record(store, envelope, None, entry).await?;
    finish(issued, resolved, fresh && !replay, effects)
}

/// `delete_message`: the reported message's tombstone and its `msg.deleted` event; a
/// message deleted already stays as it is (its event republished if this command
/// deleted it before a crash).
async fn delete_message(
    store: &Store,
    issued: &Issued,
    report: &ReportDoc,
    effects: &mut Effects,
) -> Result<Result<(), Refusal>, HandleError> {
    let Some(message) = store.message(&report.chat_id, &report.message_id).await? else {
        return Ok(Err(Refusal { code: ErrorCode::NotFound, reason: "no such message" }));
    };
    // A since_join chat's event carries the message's seq, for the edges to filter.
    let visibility = store.chat(&report.chat_id).await?.map(|chat| chat.history_visibility).unwrap_or_default();
    if message.deleted_at.is_some() {
        if message.last_command.as_deref() == Some(issued.envelope.id.as_str()) {
            store.refresh_last_message_text(&message.chat_id, &message.id, "").await?;
            msg_delete::publish_deleted(issued, &message.into(), visibility, effects);
        }
        return Ok(Ok(()));
    }
    match msg_delete::tombstone(store, issued, &message).await? {
        Some(tombstone) => {
            msg_delete::publish_deleted(issued, &tombstone, visibility, effects);
            Ok(Ok(()))
        }
        None => Ok(Err(Refusal { code: ErrorCode::NotFound, reason: "no such message" })),
    }
}

/// `mute_sender`: mutes the reported message's sender in its chat until the command's
/// `mute_until`, as `member.mute` does (its event and audit entry included). The
/// moderator's role is the authority here, whatever their place in the chat.
async fn mute_sender(
    store: &Store,
    issued: &Issued,
    command: &ReportResolve,
    report: &ReportDoc,
    effects: &mut Effects,
) -> Result<Result<(), Refusal>, HandleError> {
    let Some(until) = command.mute_until else {
        return Ok(Err(Refusal { code: ErrorCode::Invalid, reason: "mute_sender needs mute_until" }));
    };
    let Some(chat) = store.chat(&report.chat_id).await? else {
        return Ok(Err(Refusal { code: ErrorCode::NotFound, reason: "no such chat" }));
    };
    if super::role_in(&chat, &report.sender_id).is_none() {
        return Ok(Err(Refusal { code: ErrorCode::Conflict, reason: "the sender is no longer a member" }));
    }
    let target = (report.sender_id.as_str(), Some(until));
    Ok(member_mute::mute(store, issued, &chat, target, Some("mute"), effects).await?.map(|_| ()))
}

fn finish(issued: &Issued, report: ReportDoc, fresh: bool, effects: &mut Effects) -> Result<(), HandleError> {
    metrics::COMMANDS.with_label_values(&["report.resolve", if fresh { "stored" } else { "duplicate" }]).inc();
    effects.answer(&issued.envelope, CommandOutcome::Reported { report: Box::new(report.into()), created: fresh });
    Ok(())
}
