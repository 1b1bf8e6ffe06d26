//! `msg.delete`: a soft delete by the sender, a chat owner or admin, or a platform
//! `admin`. The text goes, the tombstone stays, `updated_seq` moves; the text is kept
//! in `message_history` for platform admins until retention purges it.

use chat_nats::{
    commands::{CommandOutcome, MsgDelete},
    events::{ChatEvent, EventBody},
    model::{ErrorCode, HistoryVisibility, Message},
};
use chat_store::{
    Store,
    docs::{MessageDoc, bson_seq},
    message_history::HistoryDoc,
};

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
    // After the replay check: a change stored before a freeze still gets its event.
    if let Err(refusal) = authorization::may_change_messages(chat.mode.frozen) {
        return reject(effects, refusal.code, refusal.reason);
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
    let Some(updated) = tombstone(store, issued, &message).await? else {
        return reject(effects, ErrorCode::NotFound, "no such message");
    };
    finish(issued, updated, chat.history_visibility, true, effects)
}

/// Deletes a stored message for `issued` (already authorised): reserves the change's
/// seq, appends the text to `message_history`, leaves the tombstone and clears the
/// chat's preview. `None` when the chat or the message is gone.
pub async fn tombstone(store: &Store, issued: &Issued, message: &MessageDoc) -> Result<Option<Message>, HandleError> {
    let envelope = &issued.envelope;
    let (chat_id, message_id) = (&message.chat_id, &message.id);
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else { return Ok(None) };
    let now = chrono::Utc::now();
    let record = HistoryDoc {
        id: envelope.id.clone(),
        chat_id: chat_id.clone(),
        message_id: message_id.clone(),
        seq: bson_seq(seq),
        actor: envelope.actor.user_id.clone(),
        at: now,
        before: message.text.clone(),
        after: None,
    };
    store.append_history(&record).await?;
    let Some(updated) = store.delete_message(chat_id, message_id, seq, &envelope.id, now).await? else {
        return Ok(None);
    };
    store.refresh_last_message_text(chat_id, message_id, "").await?;
    Ok(Some(updated.into()))
}

/// Publishes the `msg.deleted` event of a tombstone, marked with the message's seq in a
/// `since_join` chat so that edges keep it from members who joined after the message.
pub fn publish_deleted(issued: &Issued, message: &Message, visibility: HistoryVisibility, effects: &mut Effects) {
    let deleted_at = message.deleted_at.unwrap_or(message.created_at);
    let body = EventBody::MsgDeleted { message_id: message.id.clone(), deleted_at };
    let event = ChatEvent::new(&message.chat_id, message.updated_seq, body);
    effects.message_event(event, message.seq, visibility, issued.traceparent.as_deref());
}

fn finish(
    issued: &Issued,
    message: Message,
    visibility: HistoryVisibility,
    fresh: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    publish_deleted(issued, &message, visibility, effects);
    metrics::COMMANDS.with_label_values(&["msg.delete", if fresh { "stored" } else { "duplicate" }]).inc();
    effects.answer(
        &issued.envelope,
        CommandOutcome::Done { message: Some(Box::new(message)), chat: None, created: fresh },
    );
    Ok(())
}
