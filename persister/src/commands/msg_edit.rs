//! `msg.edit`: only the sender changes a message's text; deleted messages stay deleted.
//! The text before and after goes to `message_history`.

use chat_nats::{
    commands::{CommandOutcome, MsgEdit},
    events::{ChatEvent, EventBody},
    limits,
    model::{ErrorCode, HistoryVisibility, Message},
};
use chat_store::{Store, docs::bson_seq, message_history::HistoryDoc};

use crate::{
    authorization,
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `msg.edit`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &MsgEdit,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let MsgEdit { chat_id, message_id, text } = command;
    let actor = &envelope.actor.user_id;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    if super::role_in(&chat, actor).is_none() {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    }
    let Some(message) = store.message(chat_id, message_id).await? else {
        return reject(effects, ErrorCode::NotFound, "no such message");
    };
    if message.last_command.as_deref() == Some(envelope.id.as_str()) {
        // A replay: the run before may have crashed before the preview refresh.
        store.refresh_last_message_text(chat_id, message_id, &message.text).await?;
        return finish(issued, message.into(), chat.history_visibility, false, effects);
    }
    // After the replay check: a change stored before a freeze still gets its event.
    if let Err(refusal) = authorization::may_change_messages(chat.mode.frozen) {
        return reject(effects, refusal.code, refusal.reason);
    }
    if let Err(refusal) = authorization::may_edit(&message.sender_id == actor, message.deleted_at.is_some()) {
        return reject(effects, refusal.code, refusal.reason);
    }
    if let Err(reason) = limits::check_text(text) {
        return reject(effects, ErrorCode::Invalid, &reason);
    }
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let now = chrono::Utc::now();
    let record = HistoryDoc {
        id: envelope.id.clone(),
        chat_id: chat_id.clone(),
        message_id: message_id.clone(),
        seq: bson_seq(seq),
        actor: actor.clone(),
        at: now,
        before: message.text.clone(),
        after: Some(text.clone()),
    };
    store.append_history(&record).await?;
    let Some(updated) = store.edit_message(chat_id, message_id, text, seq, &envelope.id, now).await? else {
        return reject(effects, ErrorCode::NotFound, "no such message");
    };
    store.refresh_last_message_text(chat_id, message_id, text).await?;
    finish(issued, updated.into(), chat.history_visibility, true, effects)
}

fn finish(
    issued: &Issued,
    message: Message,
    visibility: HistoryVisibility,
    fresh: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let event =
        ChatEvent::new(&message.chat_id, message.updated_seq, EventBody::MsgEdited { message: message.clone() });
    effects.message_event(event, message.seq, visibility, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["msg.edit", if fresh { "stored" } else { "duplicate" }]).inc();
    effects.answer(
        &issued.envelope,
        CommandOutcome::Done { message: Some(Box::new(message)), chat: None, created: fresh },
    );
    Ok(())
}
