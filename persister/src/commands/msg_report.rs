//! `msg.report`: any member reports a message they can read, once: the report's id is
//! a hash of chat, message and reporter, so a second report finds the first. The
//! reporter learns nothing of other members' reports, and nobody is sent an event.

use chat_nats::{
    commands::{CommandOutcome, MsgReport},
    model::ErrorCode,
    moderation::{self, ReportState},
};
use chat_store::{Store, reports::ReportDoc};

use crate::{
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `msg.report`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &MsgReport,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let MsgReport { chat_id, message_id, reason, note } = command;
    let actor = &envelope.actor.user_id;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    let Some(member) = store.participant(chat_id, actor).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let Some(message) = store.message(chat_id, message_id).await? else {
        return reject(effects, ErrorCode::NotFound, "no such message");
    };
    // A member reports only what they can read.
    let first_readable = chat.history_visibility.first_readable_seq(u64::try_from(member.joined_seq).unwrap_or(0));
    if u64::try_from(message.seq).unwrap_or(0) < first_readable {
        return reject(effects, ErrorCode::NotFound, "no such message");
    }
    let id = moderation::report_id(chat_id, message_id, actor);
    if let Some(existing) = store.report(&id).await? {
        return finish(issued, existing, false, effects);
    }
    if message.sender_id == *actor {
        return reject(effects, ErrorCode::Invalid, "you cannot report your own message");
    }
    if message.deleted_at.is_some() {
        return reject(effects, ErrorCode::Conflict, "the message is deleted already");
    }
    if let Some(note) = note
        && let Err(reason) = moderation::check_note(note)
    {
        return reject(effects, ErrorCode::Invalid, &reason);
    }
    let report = ReportDoc {
        id,
        chat_id: chat_id.clone(),
        message_id: message_id.clone(),
        sender_id: message.sender_id,
        reporter_id: actor.clone(),
        reason: *reason,
        note: note.clone().filter(|note| !note.trim().is_empty()),
        state: ReportState::Open,
        created_at: chrono::Utc::now(),
        resolved_at: None,
        resolved_by: None,
        action: None,
        resolved_with: None,
    };
    let (stored, created) = store.insert_report(&report).await?;
    finish(issued, stored, created, effects)
}

fn finish(issued: &Issued, report: ReportDoc, fresh: bool, effects: &mut Effects) -> Result<(), HandleError> {
    metrics::COMMANDS.with_label_values(&["msg.report", if fresh { "stored" } else { "duplicate" }]).inc();
    effects.answer(&issued.envelope, CommandOutcome::Reported { report: Box::new(report.into()), created: fresh });
    Ok(())
}
