//! `member.add`: owners and admins add people to a group. Each new member gets a seq
//! and a `member.added` event.

use chat_nats::{
    commands::{Command, CommandOutcome},
    events::{ChatEvent, EventBody},
    limits,
    model::{ChatKind, ErrorCode},
    subjects,
};
use chat_store::{
    Store,
    docs::{MemberDoc, ParticipantDoc, bson_seq},
};

use crate::{
    effects::Effects,
    metrics,
    pipeline::{HandleError, Incoming},
};

/// Handles one `member.add`.
pub async fn handle(store: &Store, command: &Incoming, effects: &mut Effects) -> Result<(), HandleError> {
    let envelope = &command.envelope;
    let Command::MemberAdd { chat_id, user_ids, role } = &envelope.command else {
        return Ok(());
    };
    let reject = |effects: &mut Effects, code, reason: &str| {
        metrics::COMMANDS.with_label_values(&["member.add", "rejected"]).inc();
        effects.reject(envelope, code, reason);
        Ok(())
    };
    let Some(chat) = store.chat(chat_id).await? else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    let Some(actor_role) = super::role_in(&chat, &envelope.actor.user_id) else {
        return reject(effects, ErrorCode::NotFound, "no such chat");
    };
    if chat.kind == ChatKind::Direct {
        return reject(effects, ErrorCode::Forbidden, "direct chats have exactly two members");
    }
    if !actor_role.can_manage() {
        return reject(effects, ErrorCode::Forbidden, "only owners and admins add members");
    }
    if *role > actor_role || *role == chat_nats::model::Role::Owner {
        return reject(effects, ErrorCode::Forbidden, "cannot grant this role");
    }
    if user_ids.is_empty() || user_ids.len() > limits::MAX_MEMBERS_PER_COMMAND {
        return reject(effects, ErrorCode::Invalid, "user_ids must name 1 to 1000 users");
    }
    if user_ids.iter().any(|id| !subjects::is_valid_id(id)) {
        return reject(effects, ErrorCode::Invalid, "invalid user id");
    }

    // Members this very command added before a crash are republished, not re-added.
    let mut added = Vec::new();
    let mut fresh = Vec::new();
    for user_id in user_ids {
        match store.participant(chat_id, user_id).await? {
            Some(existing) if existing.added_by.as_deref() == Some(envelope.id.as_str()) => added.push(existing),
            Some(_) => {}
            None if fresh.iter().all(|p: &String| p != user_id) => fresh.push(user_id.clone()),
            None => {}
        }
    }
    if !fresh.is_empty() {
        let count = fresh.len() as u64;
        let Some(last) = store.reserve_seqs(chat_id, count).await? else {
            return reject(effects, ErrorCode::NotFound, "no such chat");
        };
        let now = chrono::Utc::now();
        let docs: Vec<ParticipantDoc> = fresh
            .iter()
            .enumerate()
            .map(|(i, user_id)| ParticipantDoc {
                id: ParticipantDoc::key(chat_id, user_id),
                chat_id: chat_id.clone(),
                user_id: user_id.clone(),
                role: *role,
                joined_at: now,
                joined_seq: bson_seq(last - count + 1 + i as u64),
                last_read_seq: 0,
                muted: false,
                added_by: Some(envelope.id.clone()),
            })
            .collect();
        store.insert_participants(&docs).await?;
        let members: Vec<MemberDoc> =
            docs.iter().map(|d| MemberDoc { user_id: d.user_id.clone(), role: d.role }).collect();
        store.add_chat_members(chat_id, &members, now).await?;
        added.extend(docs);
    }
    for participant in &added {
        let seq = u64::try_from(participant.joined_seq).unwrap_or(0);
        let body = EventBody::MemberAdded { user_id: participant.user_id.clone(), role: participant.role };
        effects.event(ChatEvent::new(chat_id, seq, body), command.traceparent.as_deref());
    }
    metrics::COMMANDS.with_label_values(&["member.add", "stored"]).inc();
    let chat = store.chat(chat_id).await?.map(|chat| Box::new(chat.into()));
    effects.answer(envelope, CommandOutcome::Done { message: None, chat, created: !fresh.is_empty() });
    Ok(())
}
