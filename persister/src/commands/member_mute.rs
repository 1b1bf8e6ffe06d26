//! `member.mute`: a chat's owner and admins mute a member ranked below them until a
//! time, or unmute them; a platform admin mutes anyone. The mute is kept on the
//! membership document, which the send path reads with the role, and copied to the
//! chat's embedded list for chat views. A muted member still reads and marks read.

use chat_nats::{
    commands::{CommandOutcome, MemberMute},
    events::{ChatEvent, EventBody},
    limits,
    model::{Chat, ErrorCode},
    moderation::AuditAction,
    roles,
};
use chat_store::{
    Store,
    docs::{ChangeMark, ChatDoc, bson_seq},
};
use chrono::{DateTime, Utc};

use crate::{
    audit,
    authorization::{self, Refusal},
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
    let platform_admin = envelope.actor.roles.iter().any(|role| role == roles::PLATFORM_ADMIN);
    let Some(chat) = store.chat(chat_id).await? else {
        effects.reject(envelope, ErrorCode::NotFound, "no such chat");
        return Ok(());
    };
    let actor = super::role_in(&chat, &envelope.actor.user_id);
    let replay = chat.last_moderation.as_ref().is_some_and(|mark| mark.command_id == envelope.id);
    let allowed = if actor.is_none() && !platform_admin {
        Err(Refusal { code: ErrorCode::NotFound, reason: "no such chat" })
    } else if replay {
        // Done before a crash: finish it whatever the roles are now.
        Ok(())
    } else {
        authorization::may_mute(actor, platform_admin, super::role_in(&chat, user_id))
    };
    let muted = match allowed {
        Ok(()) => mute(store, issued, &chat, (user_id, *until), None, effects).await?,
        Err(refusal) => Err(refusal),
    };
    match muted {
        Ok((chat, fresh)) => {
            effects.answer(envelope, CommandOutcome::Done { message: None, chat: Some(Box::new(chat)), created: fresh })
        }
        Err(refusal) => effects.reject(envelope, refusal.code, refusal.reason),
    }
    Ok(())
}

/// Mutes `user_id` in `chat` until `until` (unmutes with `None`) for a command already
/// authorised, records it in the audit trail and publishes `member.muted`; returns the
/// chat as it is after, and whether this call stored the change. A replay of the same
/// command (the chat's last moderation mark names it) writes nothing again. Also what a
/// report resolved with `mute_sender` does, which records its own entry too and so
/// gives this one an `audit_suffix`.
pub async fn mute(
    store: &Store,
    issued: &Issued,
    chat: &ChatDoc,
    target: (&str, Option<DateTime<Utc>>),
    audit_suffix: Option<&str>,
    effects: &mut Effects,
) -> Result<Result<(Chat, bool), Refusal>, HandleError> {
    let (user_id, until) = target;
    let envelope = &issued.envelope;
    let (chat, seq, fresh) = match chat.last_moderation.as_ref().filter(|mark| mark.command_id == envelope.id) {
        Some(mark) => (chat.clone(), u64::try_from(mark.seq).unwrap_or(0), false),
        None => {
            let now = chrono::Utc::now();
            if let Err(reason) = limits::check_mute_until(until, now) {
                return Ok(Err(Refusal { code: ErrorCode::Invalid, reason }));
            }
            let Some(seq) = store.reserve_seqs(&chat.id, 1).await? else {
                return Ok(Err(Refusal { code: ErrorCode::NotFound, reason: "no such chat" }));
            };
            let mark = ChangeMark { command_id: envelope.id.clone(), seq: bson_seq(seq) };
            let Some(updated) = store.mute_member(&chat.id, user_id, until, &mark, now).await? else {
                return Ok(Err(Refusal { code: ErrorCode::NotFound, reason: "not a member" }));
            };
            (updated, seq, true)
        }
    };
    let mut entry = audit::Entry::new(AuditAction::MemberMute, &chat.id).targets([user_id.to_owned()]);
    if let Some(until) = until {
        entry = entry.detail("until", until.to_rfc3339());
    }
    audit::record(store, envelope, audit_suffix, entry).await?;
    let chat: Chat = chat.into();
    let until = chat.participants.iter().find(|member| member.user_id == user_id).and_then(|m| m.muted_until);
    let event = ChatEvent::new(&chat.id, seq, EventBody::MemberMuted { user_id: user_id.to_owned(), until });
    effects.event(event, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["member.mute", if fresh { "stored" } else { "duplicate" }]).inc();
    Ok(Ok((chat, fresh)))
}
