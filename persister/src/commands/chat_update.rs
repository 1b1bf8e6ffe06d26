//! `chat.update`: owners and admins rename a group or change its history visibility.

use chat_nats::{
    commands::{ChatUpdate, CommandOutcome},
    events::{ChatEvent, EventBody},
    limits,
    model::ErrorCode,
    moderation::AuditAction,
};
use chat_store::{
    Store,
    docs::{ChangeMark, bson_seq},
};

use crate::{
    audit, authorization,
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `chat.update`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &ChatUpdate,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let ChatUpdate { chat_id, title, history_visibility } = command;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    let Some(role) = super::role_in(&chat, &envelope.actor.user_id) else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    if let Some(mark) = chat.last_update.as_ref().filter(|mark| mark.command_id == envelope.id) {
        let seq = u64::try_from(mark.seq).unwrap_or(0);
        record(store, envelope, command).await?;
        return finish(issued, chat.into(), seq, false, effects);
    }
    if let Err(refusal) = authorization::may_rename(chat.kind, role) {
        return reject(effects, refusal.code, refusal.reason);
    }
    if title.is_none() && history_visibility.is_none() {
        return reject(effects, ErrorCode::Invalid, "nothing to change: give title or history_visibility");
    }
    if let Some(title) = title
        && let Err(reason) = limits::check_title(title)
    {
        return reject(effects, ErrorCode::Invalid, &reason);
    }
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let mark = ChangeMark { command_id: envelope.id.clone(), seq: bson_seq(seq) };
    let Some(updated) =
        store.rename_chat(chat_id, title.as_deref(), *history_visibility, &mark, chrono::Utc::now()).await?
    else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    record(store, envelope, command).await?;
    finish(issued, updated.into(), seq, true, effects)
}

/// The change's audit entry (a replay records nothing twice).
async fn record(
    store: &Store,
    envelope: &chat_nats::commands::CommandEnvelope,
    command: &ChatUpdate,
) -> Result<(), HandleError> {
    let mut entry = audit::Entry::new(AuditAction::ChatUpdate, &command.chat_id);
    if let Some(title) = &command.title {
        entry = entry.detail("title", title.as_str());
    }
    if let Some(visibility) = command.history_visibility {
        entry = entry.detail("history_visibility", visibility.as_str());
    }
    Ok(audit::record(store, envelope, None, entry).await?)
}

fn finish(
    issued: &Issued,
    chat: chat_nats::model::Chat,
    seq: u64,
    fresh: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let event = ChatEvent::new(&chat.id, seq, EventBody::ChatUpdated { chat: chat.clone() });
    effects.event(event, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["chat.update", if fresh { "stored" } else { "duplicate" }]).inc();
    effects
        .answer(&issued.envelope, CommandOutcome::Done { message: None, chat: Some(Box::new(chat)), created: fresh });
    Ok(())
}
