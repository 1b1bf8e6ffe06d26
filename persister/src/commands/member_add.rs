//! `member.add`: owners and admins add people to a group, or change the role of
//! existing members. Each addition or change gets a seq and a `member.added` event.

use chat_core::config::ChatLimitArgs;
use chat_nats::{
    commands::{CommandOutcome, MemberAdd},
    events::{ChatEvent, EventBody},
    limits,
    model::ErrorCode,
    moderation::AuditAction,
    subjects,
};
use chat_store::{
    Store,
    docs::{MemberDoc, ParticipantDoc, bson_seq},
};

use crate::{
    audit, authorization,
    command::{HandleError, Issued},
    effects::Effects,
    metrics,
};

/// Handles one `member.add`; a chat would hold more than `limits` allow is refused
/// (`conflict`) with nothing written.
pub async fn handle(
    store: &Store,
    limits: &ChatLimitArgs,
    issued: &Issued,
    command: &MemberAdd,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let envelope = &issued.envelope;
    let MemberAdd { chat_id, user_ids, role } = command;
    let reject = |effects: &mut Effects, code, reason: &str| {
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let Some(chat) = store.chat(chat_id).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let Some(actor_role) = super::role_in(&chat, &envelope.actor.user_id) else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    if let Err(refusal) = authorization::may_add(chat.kind, actor_role, *role) {
        return reject(effects, refusal.code, refusal.reason);
    }
    if user_ids.is_empty() || user_ids.len() > limits::MAX_MEMBERS_PER_COMMAND {
        return reject(effects, ErrorCode::Invalid, "user_ids must name 1 to 1000 users");
    }
    if user_ids.iter().any(|id| !subjects::is_valid_id(id)) {
        return reject(effects, ErrorCode::Invalid, "invalid user id");
    }

    // Members this very command added before a crash are republished, not re-added;
    // existing members named with another role have their role changed.
    let mut added = Vec::new();
    let mut replayed = Vec::new();
    let mut fresh: Vec<String> = Vec::new();
    let mut changed = Vec::new();
    for user_id in user_ids {
        match store.participant(chat_id, user_id).await? {
            Some(existing) if existing.added_by.as_deref() == Some(envelope.id.as_str()) => {
                replayed.push(MemberDoc { user_id: existing.user_id.clone(), role: existing.role, muted_until: None });
                added.push(existing);
            }
            Some(existing) if existing.role != *role => {
                if let Err(refusal) = authorization::may_change_role(actor_role, existing.role) {
                    return reject(effects, refusal.code, refusal.reason);
                }
                if changed.iter().all(|p: &ParticipantDoc| &p.user_id != user_id) {
                    changed.push(existing);
                }
            }
            Some(_) => {}
            None if !fresh.contains(user_id) => fresh.push(user_id.clone()),
            None => {}
        }
    }
    // Replayed members are in the chat already; only fresh ones make it larger.
    if chat.participants.len() + fresh.len() > limits.max_participants {
        return reject(effects, ErrorCode::Conflict, &limits.too_many_participants());
    }
    // The membership this command wrote is the record of a replay; the run before may
    // have crashed before the chat document followed it.
    if !replayed.is_empty() {
        store.add_chat_members(chat_id, &replayed, chrono::Utc::now()).await?;
        for member in &replayed {
            store.set_chat_member_role(chat_id, &member.user_id, member.role).await?;
        }
    }
    let count = (fresh.len() + changed.len()) as u64;
    if count > 0 {
        let Some(last) = store.reserve_seqs(chat_id, count).await? else {
            return reject(effects, ErrorCode::NotFound, "no such chat");
        };
        let mut next_seq = last - count + 1;
        let now = chrono::Utc::now();
        let mut docs = Vec::with_capacity(fresh.len());
        for user_id in &fresh {
            docs.push(ParticipantDoc {
                id: ParticipantDoc::key(chat_id, user_id),
                chat_id: chat_id.clone(),
                user_id: user_id.clone(),
                role: *role,
                joined_at: now,
                joined_seq: bson_seq(next_seq),
                role_seq: None,
                last_read_seq: 0,
                muted: false,
                muted_until: None,
                added_by: Some(envelope.id.clone()),
            });
            next_seq += 1;
        }
        store.insert_participants(&docs).await?;
        let members: Vec<MemberDoc> =
            docs.iter().map(|d| MemberDoc { user_id: d.user_id.clone(), role: d.role, muted_until: None }).collect();
        store.add_chat_members(chat_id, &members, now).await?;
        added.extend(docs);
        let role_name = role.as_str();
        if !fresh.is_empty() {
            let entry =
                audit::Entry::new(AuditAction::MemberAdd, chat_id).targets(fresh.clone()).detail("role", role_name);
            audit::record(store, envelope, None, entry).await?;
        }
        if !changed.is_empty() {
            let entry = audit::Entry::new(AuditAction::MemberRoleChange, chat_id)
                .targets(changed.iter().map(|p| p.user_id.clone()))
                .detail("role", role_name);
            audit::record(store, envelope, Some("role"), entry).await?;
        }
        for mut participant in changed.drain(..) {
            store.set_participant_role(chat_id, &participant.user_id, *role, next_seq, &envelope.id).await?;
            store.set_chat_member_role(chat_id, &participant.user_id, *role).await?;
            participant.role = *role;
            participant.role_seq = Some(bson_seq(next_seq));
            next_seq += 1;
            added.push(participant);
        }
    }
    // In seq order: a replay finds this command's memberships in the order they were
    // named, and an edge drops an event whose seq is below one it delivered.
    added.sort_by_key(ParticipantDoc::membership_seq);
    for participant in &added {
        let seq = u64::try_from(participant.membership_seq()).unwrap_or(0);
        let body = EventBody::MemberAdded { user_id: participant.user_id.clone(), role: participant.role };
        effects.event(ChatEvent::new(chat_id, seq, body), issued.traceparent.as_deref());
    }
    metrics::COMMANDS.with_label_values(&["member.add", "stored"]).inc();
    let chat = store.chat(chat_id).await?.map(|chat| Box::new(chat.into()));
    effects.answer(envelope, CommandOutcome::Done { message: None, chat, created: count > 0 });
    Ok(())
}
