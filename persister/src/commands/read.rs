//! `read`: a member's read mark only moves forward, never past the chat's last seq;
//! the other members (and the reader's other devices) hear it live.

use chat_nats::{
    commands::{Command, CommandOutcome},
    events::LiveSignal,
    model::ErrorCode,
    subjects,
};
use chat_store::Store;

use crate::{
    command::{HandleError, Incoming},
    effects::Effects,
    metrics,
};

/// Handles one `read`.
pub async fn handle(store: &Store, command: &Incoming, effects: &mut Effects) -> Result<(), HandleError> {
    let envelope = &command.envelope;
    let Command::Read { chat_id, up_to_seq } = &envelope.command else { return Ok(()) };
    let actor = &envelope.actor.user_id;
    let Some(chat) = store.chat(chat_id).await?.filter(|chat| super::role_in(chat, actor).is_some()) else {
        effects.reject(envelope, ErrorCode::NotFound, "no such chat");
        return Ok(());
    };
    let up_to = (*up_to_seq).min(u64::try_from(chat.last_seq).unwrap_or(0));
    let moved = store.advance_read_mark(chat_id, actor, up_to).await?;
    if moved {
        let signal = LiveSignal::Read { chat_id: chat_id.clone(), user_id: actor.clone(), up_to_seq: up_to };
        if let Ok(body) = serde_json::to_vec(&signal) {
            effects.notices.push((subjects::live(chat_id, signal.name()), body.into()));
        }
    }
    metrics::COMMANDS.with_label_values(&["read", if moved { "stored" } else { "duplicate" }]).inc();
    effects.answer(envelope, CommandOutcome::Done { message: None, chat: None, created: moved });
    Ok(())
}
