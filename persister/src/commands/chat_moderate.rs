//! `chat.moderate`: a chat's owner and admins, or a platform admin, change who may post
//! (`posting`), slow mode and whether the chat is frozen. The chat document holds the
//! mode; the send path reads it beside the roles once the pipeline has forgotten the
//! chat, which this command (like every command but sends and read marks) makes it do.

use chat_nats::{
    commands::{ChatModerate, CommandOutcome},
    events::{ChatEvent, EventBody},
    limits,
    model::{Chat, ChatMode, ErrorCode, Posting},
    moderation::AuditAction,
    roles,
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

/// Handles one `chat.moderate`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &ChatModerate,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let ChatModerate { chat_id, posting, slow_mode_seconds, frozen } = command;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let platform_admin = envelope.actor.roles.iter().any(|role| role == roles::PLATFORM_ADMIN);
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    let role = super::role_in(&chat, &envelope.actor.user_id);
    if role.is_none() && !platform_admin {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    }
    if let Some(mark) = chat.last_moderation.as_ref().filter(|mark| mark.command_id == envelope.id) {
        let seq = u64::try_from(mark.seq).unwrap_or(0);
        // The crash may have come between the change and its audit entry.
        record(store, issued, &chat.mode).await?;
        return finish(issued, chat.into(), seq, false, effects);
    }
    if let Err(refusal) = authorization::may_moderate(role, platform_admin) {
        return reject(effects, refusal.code, refusal.reason);
    }
    if let Err(reason) = limits::check_moderation(*posting, *slow_mode_seconds, *frozen) {
        return reject(effects, ErrorCode::Invalid, &reason);
    }
    let mode = ChatMode {
        posting: posting.unwrap_or(chat.mode.posting),
        slow_mode_seconds: slow_mode_seconds.unwrap_or(chat.mode.slow_mode_seconds),
        frozen: frozen.unwrap_or(chat.mode.frozen),
    };
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let mark = ChangeMark { command_id: envelope.id.clone(), seq: bson_seq(seq) };
    let Some(updated) = store.moderate_chat(chat_id, &mode, &mark, chrono::Utc::now()).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    record(store, issued, &updated.mode).await?;
    finish(issued, updated.into(), seq, true, effects)
}

/// The audit entry: the mode the chat has after the command.
async fn record(store: &Store, issued: &Issued, mode: &ChatMode) -> Result<(), HandleError> {
    let posting = match mode.posting {
        Posting::Everyone => "everyone",
        Posting::Admins => "admins",
    };
    let entry = audit::Entry::new(AuditAction::ChatModerate, issued.envelope.chat_id())
        .detail("posting", posting)
        .detail("slow_mode_seconds", mode.slow_mode_seconds.to_string())
        .detail("frozen", mode.frozen.to_string());
    Ok(audit::record(store, &issued.envelope, None, entry).await?)
}

fn finish(issued: &Issued, chat: Chat, seq: u64, fresh: bool, effects: &mut Effects) -> Result<(), HandleError> {
    let event = ChatEvent::new(&chat.id, seq, EventBody::ChatModerated { mode: chat.mode });
    effects.event(event, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["chat.moderate", if fresh { "stored" } else { "duplicate" }]).inc();
    effects
        .answer(&issued.envelope, CommandOutcome::Done { message: None, chat: Some(Box::new(chat)), created: fresh });
    Ok(())
}
