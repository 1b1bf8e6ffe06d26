//! `read`: a member's read mark only moves forward, never past the chat's last seq;
//! the other members (and the reader's other devices) hear it live.

use chat_nats::{
    commands::{CommandOutcome, Read},
    events::LiveSignal,
    model::ErrorCode,
    subjects,
};
use chat_store::{Store, docs::bson_seq};

use crate::{
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `read`.
pub async fn handle(store: &Store, issued: &Issued, command: &Read, effects: &mut Effects) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let Read { chat_id, up_to_seq } = command;
    let actor = &envelope.actor.user_id;
    let Some(chat) = store.chat(chat_id).await?.filter(|chat| super::role_in(chat, actor).is_some()) else {
        effects.reject(envelope, ErrorCode::NotFound, "no such chat");
        return Ok(());
    };
    let up_to = (*up_to_seq).min(u64::try_from(chat.last_seq).unwrap_or(0));
    let moved = store.advance_read_mark(chat_id, actor, up_to).await?;
    // A replay may find the mark this very command moved before a crash kept its
    // signal from the other members: they hear it now (twice at worst, harmlessly).
    let unheard = !moved
        && issued.redelivered
        && store.participant(chat_id, actor).await?.is_some_and(|member| member.last_read_seq == bson_seq(up_to));
    if moved || unheard {
        let signal = LiveSignal::Read { chat_id: chat_id.clone(), user_id: actor.clone(), up_to_seq: up_to };
        if let Ok(body) = serde_json::to_vec(&signal) {
            effects.notices.push((subjects::live(chat_id, signal.kind()), body.into()));
        }
    }
    metrics::COMMANDS.with_label_values(&["read", if moved { "stored" } else { "duplicate" }]).inc();
    effects.answer(envelope, CommandOutcome::Done { message: None, chat: None, created: moved });
    Ok(())
}
