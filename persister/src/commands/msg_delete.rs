//! `msg.delete`: a soft delete by the sender, a chat owner or admin, or a platform
//! `admin`. The text goes, the tombstone stays, `updated_seq` moves.

use chat_nats::{
    commands::{CommandOutcome, MsgDelete},
    events::{ChatEvent, EventBody},
    model::{ErrorCode, HistoryVisibility, Message},
};
use chat_store::Store;

use crate::{
    authorization,
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `msg.delete`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &MsgDelete,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let MsgDelete { chat_id, message_id } = command;
    let actor = &envelope.actor.user_id;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let platform_admin = envelope.actor.roles.iter().any(|r| r == chat_nats::roles::PLATFORM_ADMIN);
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    let role = super::role_in(&chat, actor);
    if role.is_none() && !platform_admin {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    }
    let Some(message) = store.message(chat_id, message_id).await? else {
        return reject(effects, ErrorCode::NotFound, "no such message");
    };
    if message.last_command.as_deref() == Some(envelope.id.as_str()) {
        // A replay: the run before may have crashed before the preview refresh.
        store.refresh_last_message_text(chat_id, message_id, "").await?;
        return finish(issued, message.into(), chat.history_visibility, false, effects);
    }
    if let Err(refusal) = authorization::may_delete(&message.sender_id == actor, role, platform_admin) {
        return reject(effects, refusal.code, refusal.reason);
    }
    if message.deleted_at.is_some() {
        metrics::COMMANDS.with_label_values(&["msg.delete", "duplicate"]).inc();
        let message: Message = message.into();
        effects.answer(envelope, CommandOutcome::Done { message: Some(Box::new(message)), chat: None, created: false });
        return Ok(());
    }
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let deleted = store.delete_message(chat_id, message_id, seq, &envelope.id, chrono::Utc::now()).await?;
    let Some(updated) = deleted else {
        return reject(effects, ErrorCode::NotFound, "no such message");
    };
    store.refresh_last_message_text(chat_id, message_id, "").await?;
    finish(issued, updated.into(), chat.history_visibility, true, effects)
}

fn finish(
    issued: &Issued,
    message: Message,
    visibility: HistoryVisibility,
    fresh: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let deleted_at = message.deleted_at.unwrap_or(message.created_at);
    let body = EventBody::MsgDeleted { message_id: message.id.clone(), deleted_at };
    let event = ChatEvent::new(&message.chat_id, message.updated_seq, body);
    effects.message_event(event, message.seq, visibility, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["msg.delete", if fresh { "stored" } else { "duplicate" }]).inc();
    effects.answer(
        &issued.envelope,
        CommandOutcome::Done { message: Some(Box::new(message)), chat: None, created: fresh },
    );
    Ok(())
}
