//! `member.remove`: anyone leaves a group; owners remove admins and members, admins
//! remove members. The owner cannot leave (there is no ownership transfer yet), and
//! direct chats keep their two members. Nobody removes a supervised chat's supervisor
//! (`chat_core::policy::may_remove`).

use chat_core::policy;
use chat_nats::{
    commands::{CommandOutcome, MemberRemove},
    events::{ChatEvent, EventBody},
    model::{ErrorCode, Role},
    moderation::AuditAction,
};
use chat_store::{
    Store,
    docs::{RemovalMark, bson_seq},
};

use crate::{
    audit, authorization,
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `member.remove`.
pub async fn handle(
    store: &Store,
    issued: &Issued,
    command: &MemberRemove,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let MemberRemove { chat_id, user_id } = command;
    let actor = &envelope.actor.user_id;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let Some(chat) = store.chat(chat_id).await? else { return reject(effects, ErrorCode::NotFound, "no such chat") };
    if let Some(mark) = chat.last_removal.as_ref().filter(|mark| mark.command_id == envelope.id) {
        // A replay: the run before may have crashed between the chat and the
        // membership write. The chat document is the record; the membership follows.
        let seq = u64::try_from(mark.seq).unwrap_or(0);
        let (user_id, role) = (mark.user_id.clone(), mark.role);
        store.delete_participant(chat_id, &user_id).await?;
        record(store, envelope, chat_id, &user_id, role).await?;
        return finish(issued, chat.into(), seq, user_id, role, false, effects);
    }
    let Some(actor_role) = super::role_in(&chat, actor) else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let target = super::role_in(&chat, user_id);
    let supervised = policy::is_supervised(chat.kind, chat.direct_key.as_deref());
    if let Err(refusal) = policy::may_remove(supervised, target, user_id == actor) {
        return reject(effects, refusal.code(), &refusal.message);
    }
    if let Err(refusal) = authorization::may_remove(chat.kind, actor_role, target, user_id == actor) {
        return reject(effects, refusal.code, refusal.reason);
    }
    let Some(target_role) = target else { return reject(effects, ErrorCode::NotFound, "not a member") };
    let Some(seq) = store.reserve_seqs(chat_id, 1).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let mark = RemovalMark {
        command_id: envelope.id.clone(),
        seq: bson_seq(seq),
        user_id: user_id.clone(),
        role: target_role,
    };
    let Some(updated) = store.remove_chat_member(chat_id, &mark, chrono::Utc::now()).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    store.delete_participant(chat_id, user_id).await?;
    record(store, envelope, chat_id, user_id, target_role).await?;
    finish(issued, updated.into(), seq, user_id.clone(), target_role, true, effects)
}

/// The removal's audit entry (a replay records nothing twice).
async fn record(
    store: &Store,
    envelope: &chat_nats::commands::CommandEnvelope,
    chat_id: &str,
    user_id: &str,
    role: Role,
) -> Result<(), HandleError> {
    let entry = audit::Entry::new(AuditAction::MemberRemove, chat_id)
        .targets([user_id.to_owned()])
        .detail("role", role.as_str())
        .detail("left", (user_id == envelope.actor.user_id).to_string());
    Ok(audit::record(store, envelope, None, entry).await?)
}

fn finish(
    issued: &Issued,
    chat: chat_nats::model::Chat,
    seq: u64,
    user_id: String,
    role: Role,
    fresh: bool,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let event = ChatEvent::new(&chat.id, seq, EventBody::MemberRemoved { user_id, role });
    effects.event(event, issued.traceparent.as_deref());
    metrics::COMMANDS.with_label_values(&["member.remove", if fresh { "stored" } else { "duplicate" }]).inc();
    effects
        .answer(&issued.envelope, CommandOutcome::Done { message: None, chat: Some(Box::new(chat)), created: fresh });
    Ok(())
}
