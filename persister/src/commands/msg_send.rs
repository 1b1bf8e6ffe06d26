//! `msg.send`, handled for a whole run of consecutive sends: one query for existing
//! messages, one seq reservation per chat, one `insert_many`, one summary update per chat.

use std::collections::{HashMap, HashSet};

use chat_nats::{
    commands::{Command, CommandOutcome},
    events::{ChatEvent, EventBody},
    limits,
    model::{ErrorCode, Message},
};
use chat_store::{
    Store,
    docs::{ChatDoc, LastMessageDoc, MessageDoc, bson_seq},
    messages::SendKey,
};
use futures::future::try_join_all;

use crate::{
    effects::Effects,
    metrics,
    pipeline::{HandleError, Incoming},
};

/// A send that passed validation, waiting for its seq.
struct Accepted<'a> {
    command: &'a Incoming,
    key: SendKey,
    text: &'a str,
    reply_to: Option<&'a String>,
}

/// Handles consecutive `msg.send` commands in order.
pub async fn handle(store: &Store, sends: &[Incoming], effects: &mut Effects) -> Result<(), HandleError> {
    let chat_ids: Vec<String> =
        sends.iter().map(|s| s.envelope.chat_id().to_owned()).collect::<HashSet<_>>().into_iter().collect();
    let chats: HashMap<String, ChatDoc> =
        store.chats_by_ids(&chat_ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect();

    let replied_to: Vec<String> = sends
        .iter()
        .filter_map(|s| match &s.envelope.command {
            Command::MsgSend { reply_to: Some(id), .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let reply_targets: HashMap<String, String> = store.chats_of_messages(&replied_to).await?.into_iter().collect();

    let mut accepted = Vec::new();
    for command in sends {
        let Command::MsgSend { chat_id, client_msg_id, text, reply_to } = &command.envelope.command else {
            continue;
        };
        let sender = &command.envelope.actor.user_id;
        let is_member = chats.get(chat_id).is_some_and(|chat| super::role_in(chat, sender).is_some());
        let problem = if !is_member {
            Some((ErrorCode::NotFound, "no such chat".to_owned()))
        } else if let Err(reason) =
            limits::check_text(text).and(limits::check_client_id(client_msg_id, "client_msg_id"))
        {
            Some((ErrorCode::Invalid, reason))
        } else if reply_to.as_ref().is_some_and(|id| reply_targets.get(id) != Some(chat_id)) {
            Some((ErrorCode::Invalid, "reply_to names no message of this chat".to_owned()))
        } else {
            None
        };
        if let Some((code, reason)) = problem {
            effects.reject(&command.envelope, code, reason);
            continue;
        }
        let key = SendKey { chat_id: chat_id.clone(), sender_id: sender.clone(), client_msg_id: client_msg_id.clone() };
        accepted.push(Accepted { command, key, text, reply_to: reply_to.as_ref() });
    }

    let keys: Vec<SendKey> = accepted.iter().map(|a| a.key.clone()).collect();
    let mut stored: HashMap<SendKey, MessageDoc> =
        store.existing_sends(&keys).await?.into_iter().map(|m| (SendKey::of(&m), m)).collect();

    // Seqs for the sends that are new, per chat, in order; a key repeated inside the
    // batch counts once.
    let mut new_per_chat: HashMap<&str, u64> = HashMap::new();
    let mut seen = HashSet::new();
    for send in &accepted {
        if !stored.contains_key(&send.key) && seen.insert(&send.key) {
            *new_per_chat.entry(send.key.chat_id.as_str()).or_default() += 1;
        }
    }
    let reservations = try_join_all(new_per_chat.iter().map(|(chat_id, count)| async move {
        store.reserve_seqs(chat_id, *count).await.map(|last| (chat_id.to_string(), last.map(|last| last - count + 1)))
    }))
    .await?;
    let mut next_seq: HashMap<String, u64> =
        reservations.into_iter().filter_map(|(chat_id, first)| first.map(|first| (chat_id, first))).collect();

    let now = chrono::Utc::now();
    let mut fresh = Vec::new();
    let mut fresh_keys = HashSet::new();
    for send in &accepted {
        if stored.contains_key(&send.key) {
            continue;
        }
        let Some(seq) = next_seq.get_mut(&send.key.chat_id) else {
            effects.reject(&send.command.envelope, ErrorCode::NotFound, "no such chat");
            continue;
        };
        let doc = MessageDoc {
            id: chat_core::ids::new_id(),
            chat_id: send.key.chat_id.clone(),
            seq: bson_seq(*seq),
            updated_seq: bson_seq(*seq),
            sender_id: send.key.sender_id.clone(),
            client_msg_id: send.key.client_msg_id.clone(),
            text: send.text.to_owned(),
            reply_to: send.reply_to.cloned(),
            created_at: now,
            edited_at: None,
            deleted_at: None,
            last_command: None,
        };
        *seq += 1;
        fresh_keys.insert(send.key.clone());
        stored.insert(send.key.clone(), doc.clone());
        fresh.push(doc);
    }
    store.insert_messages(&fresh).await?;

    // A replayed send may have been stored by a run that crashed before the preview
    // update: it competes for the preview too (the update keeps the newest seq).
    let replayed = accepted
        .iter()
        .filter(|send| send.command.redelivered && !fresh_keys.contains(&send.key))
        .filter_map(|send| stored.get(&send.key));
    let mut newest: HashMap<&str, &MessageDoc> = HashMap::new();
    for doc in fresh.iter().chain(replayed) {
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
        let traceparent = send.command.traceparent.as_deref();
        if created || send.command.redelivered {
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
            &send.command.envelope,
            CommandOutcome::Done { message: Some(Box::new(message)), chat: None, created },
        );
    }
    Ok(())
}
