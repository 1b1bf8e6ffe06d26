//! `member.mute`: a chat's owner and admins mute a member ranked below them until a
//! time, or unmute them; a platform admin mutes anyone. The mute is kept on the
//! membership document, which the send path reads with the role, and copied to the
//! chat's embedded list for chat views. A muted member still reads and marks read.

use chat_nats::{
    commands::{CommandOutcome, MemberMute},
    events::{ChatEvent, EventBody},
    model::{Chat, ErrorCode},
    roles,
};
use chat_store::{
    Store,
    docs::{ChangeMark, bson_seq},
};

use crate::{
    authorization,
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `member.mute`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &MemberMute,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let MemberMute { chat_id, user_id, until } = command;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let platform_admin = envelope.actor.roles.iter().any(|role| role == roles::PLATFORM_ADMIN);
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    let actor = super::role_in(&chat, &envelope.actor.user_id);
    if actor.is_none() && !platform_admin {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    }
    if let Some(mark) = chat.last_moderation.as_ref().filter(|mark| mark.command_id == envelope.id) {
        let seq = u64::try_from(mark.seq).unwrap_or(0);
        return finish(issued, chat.into(), user_id, seq, false, effects);
    }
    if let Err(refusal) = authorization::may_mute(actor, platform_admin, super::role_in(&chat, user_id)) {
        return reject(effects, refusal.code, refusal.reason);
    }
    let now = chrono::Utc::now();
    if until.is_some_and(|until| until <= now) {
        return reject(effects, ErrorCode::Invalid, "until is in the past: leave it out to unmute");
    }
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let mark = ChangeMark { command_id: envelope.id.clone(), seq: bson_seq(seq) };
    let Some(updated) = store.mute_member(chat_id, user_id, *until, &mark, now).await? else {
        return reject(effects, ErrorCode::NotFound, "not a member");
    };
    finish(issued, updated.into(), user_id, seq, true, effects)
}

fn finish(
    issued: &Issued,
    chat: Chat,
    user_id: &str,
    seq: u64,
    fresh: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let until = chat.participants.iter().find(|member| member.user_id == user_id).and_then(|m| m.muted_until);
    let event = ChatEvent::new(&chat.id, seq, EventBody::MemberMuted { user_id: user_id.to_owned(), until });
    effects.event(event, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["member.mute", if fresh { "stored" } else { "duplicate" }]).inc();
    effects
        .answer(&issued.envelope, CommandOutcome::Done { message: None, chat: Some(Box::new(chat)), created: fresh });
    Ok(())
}
