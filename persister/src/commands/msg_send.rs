//! `msg.send`, handled for a whole run of sends: one round trip for the senders'
//! memberships (role and mute) and the chats' modes the pipeline has not checked yet,
//! the replied-to messages and, for redelivered commands, the sends that already exist
//! (up to four queries at once; the moderation rules are [`send_rules`]),
//! one compare-and-set per chat that reserves the seqs and sets the preview ([`seqs`]),
//! and one `insert_many`, whose unique send key finds a client sending a key again
//! ([`resent_keys`]). The lookup of existing sends, the compare-and-sets and the insert
//! are merged with the other partitions' ([`SendWrites`]).

use std::collections::{HashMap, HashSet};

use chat_nats::{
    commands::{CommandOutcome, MsgSend},
    events::{ChatEvent, EventBody},
    limits,
    model::{ErrorCode, Message},
};
use chat_store::{
    Store, StoreError,
    docs::{LastMessageDoc, MessageDoc},
    messages::SendKey,
};
use futures::future::try_join_all;

use super::seqs;
use crate::{
    command::{HandleError, Issued},
    effects::Effects,
    group_commit::SendWrites,
    known_chats::{KnownChats, KnownMember},
    metrics, send_rules,
};

/// One send of a run: the command and what the pipeline knows of it.
#[derive(Debug, Clone, Copy)]
pub struct SendInRun<'a> {
    /// Who sent it, how to answer, whether it may be a replay.
    pub issued: &'a Issued,
    /// The send itself.
    pub command: &'a MsgSend,
}

/// A send that passed validation, waiting for its seq.
struct Accepted<'a> {
    issued: &'a Issued,
    key: SendKey,
    text: &'a str,
    reply_to: Option<&'a String>,
}

/// Handles consecutive `msg.send` commands in order.
pub async fn handle(
    store: &Store,
    writes: &SendWrites,
    known: &mut KnownChats,
    sends: &[SendInRun<'_>],
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let mut unchecked: Vec<(&str, &str)> = sends
        .iter()
        .map(|s| (s.command.chat_id.as_str(), s.issued.envelope.actor.user_id.as_str()))
        .filter(|(chat_id, user_id)| known.member(chat_id, user_id).is_none())
        .collect();
    unchecked.sort_unstable();
    unchecked.dedup();
    // A chat's mode is read beside the roles, not after them, and only when forgotten.
    let mut unmoded: Vec<&str> =
        sends.iter().map(|s| s.command.chat_id.as_str()).filter(|chat_id| known.mode(chat_id).is_none()).collect();
    unmoded.sort_unstable();
    unmoded.dedup();
    let replied_to: Vec<String> = sends.iter().filter_map(|s| s.command.reply_to.clone()).collect();
    // Only a redelivered command may have been stored by the attempt before it. A
    // client sending a key again is found by the insert instead (the send key is a
    // unique index), which spares the lookup on every other send.
    let keys: Vec<SendKey> =
        sends.iter().filter(|s| s.issued.redelivered).map(|s| key_of(s.issued, s.command)).collect();
    let (roles, modes, reply_targets, existing) = futures::try_join!(
        store.member_roles(&unchecked),
        store.chat_modes(&unmoded),
        store.chats_of_messages(&replied_to),
        writes.existing_sends(keys),
    )?;
    for member in &roles {
        let known_member = KnownMember { role: member.role, muted_until: member.muted_until };
        known.set_member(&member.chat_id, &member.user_id, known_member);
    }
    for row in &modes {
        known.set_mode(&row.chat_id, row.mode);
    }
    let reply_targets: HashMap<String, String> = reply_targets.into_iter().collect();
    let mut stored: HashMap<SendKey, MessageDoc> = existing.into_iter().map(|m| (SendKey::of(&m), m)).collect();

    let now = chrono::Utc::now();
    // Members with a send accepted earlier in this run: slow mode counts it as sent now.
    let mut sent_in_run: HashSet<(&str, &str)> = HashSet::new();
    let mut accepted = Vec::new();
    for &SendInRun { issued, command } in sends {
        let MsgSend { chat_id, client_msg_id, text, reply_to } = command;
        let sender = &issued.envelope.actor.user_id;
        let Some(member) = known.member(chat_id, sender) else {
            effects.reject(&issued.envelope, ErrorCode::NotFound, "no such chat");
            continue;
        };
        if let Err(reason) = limits::check_text(text).and(limits::check_client_id(client_msg_id, "client_msg_id")) {
            effects.reject(&issued.envelope, ErrorCode::Invalid, reason);
            continue;
        }
        if reply_to.as_ref().is_some_and(|id| reply_targets.get(id) != Some(chat_id)) {
            effects.reject(&issued.envelope, ErrorCode::Invalid, "reply_to names no message of this chat");
            continue;
        }
        let key = key_of(issued, command);
        // A send an earlier attempt stored is answered as stored, whatever the mode is now.
        if !stored.contains_key(&key) {
            let last_send =
                if sent_in_run.contains(&(chat_id, sender)) { Some(now) } else { known.last_send(chat_id, sender) };
            let mode = known.mode(chat_id).unwrap_or_default();
            if let Err(refusal) = send_rules::may_send(mode, member, last_send, now) {
                effects.reject_retryable(&issued.envelope, refusal.code, refusal.reason, refusal.retry_after_ms);
                continue;
            }
            sent_in_run.insert((chat_id, sender));
        }
        accepted.push(Accepted { issued, key, text, reply_to: reply_to.as_ref() });
    }

    // The new messages per chat, in order; a key repeated inside the batch counts once.
    let mut new_per_chat: HashMap<String, Vec<MessageDoc>> = HashMap::new();
    let mut seen = HashSet::new();
    for send in &accepted {
        if stored.contains_key(&send.key) || !seen.insert(&send.key) {
            continue;
        }
        new_per_chat.entry(send.key.chat_id.clone()).or_default().push(MessageDoc {
            id: chat_core::ids::new_id(),
            chat_id: send.key.chat_id.clone(),
            seq: 0,
            updated_seq: 0,
            sender_id: send.key.sender_id.clone(),
            client_msg_id: send.key.client_msg_id.clone(),
            text: send.text.to_owned(),
            reply_to: send.reply_to.cloned(),
            created_at: now,
            edited_at: None,
            deleted_at: None,
            last_command: None,
        });
    }
    let reserved = seqs::reserve_runs(store, writes, known, new_per_chat, now).await?;
    let mut fresh = Vec::new();
    let mut fresh_keys = HashSet::new();
    // Each chat's newest new message: the preview its head now names.
    let mut previews: HashMap<String, String> = HashMap::new();
    for (chat_id, last_seq, docs) in reserved {
        match last_seq {
            Some(last_seq) => known.set_last_seq(&chat_id, last_seq),
            // The chat is gone: its sends are answered below as such.
            None => {
                known.forget(&chat_id);
                continue;
            }
        }
        if let Some(newest) = docs.last() {
            previews.insert(chat_id.clone(), newest.id.clone());
        }
        for doc in docs {
            fresh_keys.insert(SendKey::of(&doc));
            stored.insert(SendKey::of(&doc), doc.clone());
            fresh.push(doc);
        }
    }
    for send in &accepted {
        if !stored.contains_key(&send.key) {
            effects.reject(&send.issued.envelope, ErrorCode::NotFound, "no such chat");
        }
    }
    let fresh_chats: HashSet<String> = fresh.iter().map(|doc| doc.chat_id.clone()).collect();
    let clashed = writes.insert_messages(fresh).await?;
    if !clashed.is_empty() {
        resent_keys(store, &clashed, &previews, &mut stored, &mut fresh_keys).await?;
    }

    // A replayed send may have been stored by an earlier version that set the preview
    // after the insert and crashed in between: it competes for the preview (the update
    // keeps the newest seq). A chat with fresh messages has just had a newer one set.
    let mut newest: HashMap<&str, &MessageDoc> = HashMap::new();
    let replayed = accepted
        .iter()
        .filter(|send| send.issued.redelivered && !fresh_chats.contains(send.key.chat_id.as_str()))
        .filter_map(|send| stored.get(&send.key));
    for doc in replayed {
        let entry = newest.entry(doc.chat_id.as_str()).or_insert(doc);
        if doc.seq > entry.seq {
            *entry = doc;
        }
    }
    try_join_all(
        newest
            .values()
            .map(|doc| async move { store.set_last_message(&doc.chat_id, &LastMessageDoc::of(doc), now).await }),
    )
    .await?;

    let mut answered = HashSet::new();
    for send in &accepted {
        let Some(doc) = stored.get(&send.key) else { continue };
        let message: Message = doc.clone().into();
        let event = ChatEvent::new(&message.chat_id, message.seq, EventBody::MsgCreated { message: message.clone() });
        let created = fresh_keys.contains(&send.key) && answered.insert(send.key.clone());
        if created && known.mode(&send.key.chat_id).is_some_and(|mode| mode.slow_mode_seconds > 0) {
            known.set_last_send(&send.key.chat_id, &send.key.sender_id, now);
        }
        let traceparent = send.issued.traceparent.as_deref();
        if created || send.issued.redelivered {
            // A redelivered command may have stored without publishing: publish again
            // under the same event id, which JetStream drops if it has it.
            effects.event(event, traceparent);
        } else {
            // A client resending a key it already used: only that user hears of it.
            effects.copy_to_user(&send.key.sender_id, &event);
        }
        let outcome = if created { "stored" } else { "duplicate" };
        metrics::COMMANDS.with_label_values(&["msg.send", outcome]).inc();
        effects.answer(
            &send.issued.envelope,
            CommandOutcome::Done { message: Some(Box::new(message)), chat: None, created },
        );
    }
    Ok(())
}

/// Sends whose key a message stored earlier holds (a client sending a key again): each
/// is answered with that message, and a head whose preview names one of them, never
/// stored, gets the chat's newest message back. Each leaves its seq unused, as a crash
/// between reservation and insert does.
async fn resent_keys(
    store: &Store,
    clashed: &[MessageDoc],
    previews: &HashMap<String, String>,
    stored: &mut HashMap<SendKey, MessageDoc>,
    fresh_keys: &mut HashSet<SendKey>,
) -> Result<(), HandleError> {
    let keys: Vec<SendKey> = clashed.iter().map(SendKey::of).collect();
    let originals = store.existing_sends(&keys).await?;
    for (refused, key) in clashed.iter().zip(keys) {
        let Some(original) = originals.iter().find(|doc| SendKey::of(doc) == key) else {
            let reason = format!("message {}'s send key is taken, yet no message holds it", refused.id);
            return Err(StoreError::Bson(reason).into());
        };
        if previews.get(&key.chat_id) == Some(&refused.id) {
            store.repair_preview(&key.chat_id, &refused.id).await?;
        }
        stored.insert(key.clone(), original.clone());
        fresh_keys.remove(&key);
    }
    Ok(())
}

/// The idempotency key of a send.
fn key_of(issued: &Issued, command: &MsgSend) -> SendKey {
    SendKey {
        chat_id: command.chat_id.clone(),
        sender_id: issued.envelope.actor.user_id.clone(),
        client_msg_id: command.client_msg_id.clone(),
    }
}
