//! Seqs for the new messages of a run of sends, per chat, and the chat's preview, in
//! one compare-and-set per chat from the `last_seq` the pipeline remembers. The chats
//! whose `last_seq` is remembered move together in one command, merged with the other
//! partitions' ([`SendWrites::advance_heads`]); a chat that is not remembered, or whose
//! `last_seq` was moved by another writer, is read and moved on its own.

use std::collections::HashMap;

use chat_store::{
    Store, StoreError,
    docs::{LastMessageDoc, MessageDoc, bson_seq},
    heads::HeadMove,
};
use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use crate::{group_commit::SendWrites, known_chats::KnownChats, metrics};

/// Compare-and-set tries per chat before falling back to an atomic increment.
const HEAD_TRIES: usize = 3;

/// Numbers each chat's new messages (in order) after its `last_seq` and records the
/// newest as its preview; returns each chat with its new `last_seq` (`None` when there
/// is no such chat) and its numbered messages.
pub async fn reserve_runs(
    store: &Store,
    writes: &SendWrites,
    known: &KnownChats,
    new_per_chat: HashMap<String, Vec<MessageDoc>>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Option<u64>, Vec<MessageDoc>)>, StoreError> {
    // Each remembered chat's move is built next to its numbered messages, so that the
    // answers of the merged command pair with the right chats.
    let mut remembered = Vec::new();
    let mut moves = Vec::new();
    let mut unknown = Vec::new();
    for (chat_id, mut docs) in new_per_chat {
        let Some(current) = known.last_seq(&chat_id) else {
            unknown.push((chat_id, docs));
            continue;
        };
        number(&mut docs, current + 1);
        let Some(newest) = docs.last() else {
            unknown.push((chat_id, docs));
            continue;
        };
        moves.push(HeadMove { chat_id: chat_id.clone(), expected: current, last: LastMessageDoc::of(newest) });
        remembered.push((chat_id, current, docs));
    }
    let applied = writes.advance_heads(moves, now).await?;
    let mut reserved = Vec::new();
    for ((chat_id, current, docs), applied) in remembered.into_iter().zip(applied) {
        if applied {
            let last_seq = current + docs.len() as u64;
            reserved.push((chat_id, Some(last_seq), docs));
        } else {
            metrics::HEAD_CONFLICTS.inc();
            unknown.push((chat_id, docs));
        }
    }
    let read_again = try_join_all(unknown.into_iter().map(|(chat_id, mut docs)| async move {
        let last_seq = reserve(store, &chat_id, &mut docs, now).await?;
        Ok::<_, StoreError>((chat_id, last_seq, docs))
    }))
    .await?;
    reserved.extend(read_again);
    Ok(reserved)
}

/// Gives a chat's new messages (in order) their seqs and records the newest as the
/// chat's preview, in one compare-and-set from the `last_seq` it reads; returns the
/// chat's new `last_seq`, or `None` when there is no such chat.
/// The preview is written before the messages: a crash in between leaves a preview
/// whose message the replay stores under a newer seq, which then replaces it.
async fn reserve(
    store: &Store,
    chat_id: &str,
    docs: &mut [MessageDoc],
    now: DateTime<Utc>,
) -> Result<Option<u64>, StoreError> {
    let count = docs.len() as u64;
    for _ in 0..HEAD_TRIES {
        let Some(current) = store.last_seq(chat_id).await? else { return Ok(None) };
        number(docs, current + 1);
        let Some(newest) = docs.last() else { return Ok(Some(current)) };
        if store.advance_head(chat_id, current, &LastMessageDoc::of(newest), now).await? {
            return Ok(Some(current + count));
        }
        metrics::HEAD_CONFLICTS.inc();
    }
    // Something else keeps moving this chat's `last_seq`: the atomic increment always
    // succeeds, at the price of a second update for the preview.
    let Some(last) = store.reserve_seqs(chat_id, count).await? else { return Ok(None) };
    number(docs, last + 1 - count);
    if let Some(newest) = docs.last() {
        store.set_last_message(chat_id, &LastMessageDoc::of(newest), now).await?;
    }
    Ok(Some(last))
}

/// Numbers messages from `first` on.
fn number(docs: &mut [MessageDoc], first: u64) {
    for (offset, doc) in docs.iter_mut().enumerate() {
        doc.seq = bson_seq(first + offset as u64);
        doc.updated_seq = doc.seq;
    }
}
