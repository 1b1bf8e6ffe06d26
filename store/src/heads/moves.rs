//! The writes that move heads. A run of sends moves its chat's `last_seq` and preview by
//! a compare-and-set ([`Store::advance_head`]); when several partitions' runs are ready
//! at once, their compare-and-sets travel as the statements of one `update` command
//! ([`Store::advance_heads`]), which costs the store one command's overhead instead of
//! one each. Every other event reserves its seq with an atomic increment
//! ([`Store::reserve_seqs`]).

use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use serde::Deserialize;

use crate::{
    Store, StoreError, collections,
    docs::{LastMessageDoc, bson_seq},
    messages::HistoryPage,
};

/// One chat's compare-and-set: from `expected` to `last.seq`, with `last` as preview.
#[derive(Debug, Clone)]
pub struct HeadMove {
    /// The chat.
    pub chat_id: String,
    /// The `last_seq` the chat must still have.
    pub expected: u64,
    /// Its newest message, whose seq becomes the chat's `last_seq`.
    pub last: LastMessageDoc,
}

#[derive(Debug, Deserialize)]
struct LastSeq {
    last_seq: i64,
}

#[derive(Debug, Deserialize)]
struct Preview {
    #[serde(rename = "_id")]
    chat_id: String,
    #[serde(default)]
    last_message: Option<PreviewId>,
}

#[derive(Debug, Deserialize)]
struct PreviewId {
    id: String,
}

impl Store {
    /// Reserves `count` sequence numbers; returns the last of them, or `None` when there
    /// is no such chat. The reservation is durable before anything uses it, so a crash
    /// leaves a gap, never a reuse.
    pub async fn reserve_seqs(&self, chat_id: &str, count: u64) -> Result<Option<u64>, StoreError> {
        for _ in 0..2 {
            self.writes.admit("reserve_seqs")?;
            let updated = self
                .db
                .collection::<LastSeq>(collections::CHAT_HEADS)
                .find_one_and_update(doc! { "_id": chat_id }, doc! { "$inc": { "last_seq": bson_seq(count) } })
                .projection(doc! { "_id": 0, "last_seq": 1 })
                .return_document(ReturnDocument::After)
                .await?;
            if let Some(head) = updated {
                return Ok(Some(u64::try_from(head.last_seq).unwrap_or(0)));
            }
            // No head yet: seed it from the chat, then increment it.
            if self.head(chat_id).await?.is_none() {
                return Ok(None);
            }
        }
        Err(StoreError::Bson(format!("chat {chat_id}'s head vanished while seqs were reserved")))
    }

    /// Records a chat's new `history_visibility` in its head (seeded first when missing);
    /// nothing when there is no such chat.
    pub(crate) async fn set_head_visibility(
        &self,
        chat_id: &str,
        visibility: chat_nats::model::HistoryVisibility,
    ) -> Result<(), StoreError> {
        for _ in 0..2 {
            self.writes.admit("set_head_visibility")?;
            let updated = self
                .heads()
                .update_one(doc! { "_id": chat_id }, doc! { "$set": { "history_visibility": visibility.as_str() } })
                .await?;
            if updated.matched_count > 0 || self.head(chat_id).await?.is_none() {
                return Ok(());
            }
        }
        Err(StoreError::Bson(format!("chat {chat_id}'s head vanished while its visibility was set")))
    }

    /// Moves a chat's `last_seq` from `expected` to `last_seq` and records `last` as its
    /// newest message, in one write, only while `last_seq` still is `expected`: the
    /// reservation and the preview of a run of sends cost one update instead of two.
    /// False when the chat has no head or another writer moved it first (the caller
    /// reads it again, with [`Store::last_seq`], which seeds a missing head).
    pub async fn advance_head(
        &self,
        chat_id: &str,
        expected: u64,
        last: &LastMessageDoc,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.writes.admit("advance_head")?;
        let last_doc = bson::to_bson(last).map_err(|e| StoreError::Bson(e.to_string()))?;
        let result = self
            .heads()
            .update_one(
                doc! { "_id": chat_id, "last_seq": bson_seq(expected) },
                doc! { "$set": {
                    "last_seq": last.seq,
                    "last_message": last_doc,
                    "updated_at": bson::DateTime::from_chrono(at),
                } },
            )
            .await?;
        Ok(result.matched_count == 1)
    }

    /// Records the newest message, unless a newer one is already recorded.
    pub async fn set_last_message(
        &self,
        chat_id: &str,
        last: &LastMessageDoc,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A replayed send may find a chat whose head was never seeded.
        if self.head(chat_id).await?.is_none() {
            return Ok(());
        }
        self.writes.admit("set_last_message")?;
        let last_doc = bson::to_bson(last).map_err(|e| StoreError::Bson(e.to_string()))?;
        self.heads()
            .update_one(
                doc! {
                    "_id": chat_id,
                    "$or": [ { "last_message": null }, { "last_message.seq": { "$lt": last.seq } } ],
                },
                doc! { "$set": { "last_message": last_doc, "updated_at": bson::DateTime::from_chrono(at) } },
            )
            .await?;
        Ok(())
    }

    /// Keeps the chat list's preview in step with an edit or delete of the newest
    /// message (whose event reserved a seq first, so the chat has a head).
    pub async fn refresh_last_message_text(
        &self,
        chat_id: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        self.writes.admit("refresh_last_message_text")?;
        let preview: String = text.chars().take(crate::docs::PREVIEW_CHARS).collect();
        self.heads()
            .update_one(
                doc! { "_id": chat_id, "last_message.id": message_id },
                doc! { "$set": { "last_message.text": preview } },
            )
            .await?;
        Ok(())
    }

    /// Gives a head whose preview names `never_stored` (a send whose key was taken, found
    /// only by its insert) the chat's newest stored message back.
    pub async fn repair_preview(&self, chat_id: &str, never_stored: &str) -> Result<(), StoreError> {
        let newest = self.history(chat_id, HistoryPage::Before(None), 1).await?;
        let preview = newest.first().map(LastMessageDoc::of);
        let preview = bson::to_bson(&preview).map_err(|e| StoreError::Bson(e.to_string()))?;
        self.writes.admit("repair_preview")?;
        self.heads()
            .update_one(
                doc! { "_id": chat_id, "last_message.id": never_stored },
                doc! { "$set": { "last_message": preview } },
            )
            .await?;
        Ok(())
    }

    /// Applies every move whose chat still has its expected `last_seq`, in one
    /// command; says for each whether it was applied (false: the chat has no head or
    /// another writer moved it first, and the caller reads it again).
    pub async fn advance_heads(&self, moves: &[HeadMove], at: DateTime<Utc>) -> Result<Vec<bool>, StoreError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        self.writes.admit("advance_heads")?;
        let at = bson::DateTime::from_chrono(at);
        let mut updates = Vec::with_capacity(moves.len());
        for head in moves {
            let last = bson::to_bson(&head.last).map_err(|e| StoreError::Bson(e.to_string()))?;
            updates.push(doc! {
                "q": { "_id": &head.chat_id, "last_seq": bson_seq(head.expected) },
                "u": { "$set": { "last_seq": head.last.seq, "last_message": last, "updated_at": at } },
            });
        }
        let matched = self.update_many_statements(collections::CHAT_HEADS, updates).await?;
        if matched == moves.len() as i64 {
            return Ok(vec![true; moves.len()]);
        }
        // Some did not match: a head's preview names the message its move set exactly
        // when that move was applied (message ids are unique).
        let ids: Vec<&str> = moves.iter().map(|head| head.chat_id.as_str()).collect();
        let previews: Vec<Preview> = self
            .db
            .collection::<Preview>(collections::CHAT_HEADS)
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "_id": 1, "last_message.id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(moves
            .iter()
            .map(|head| {
                previews.iter().any(|preview| {
                    preview.chat_id == head.chat_id
                        && preview.last_message.as_ref().is_some_and(|last| last.id == head.last.id)
                })
            })
            .collect())
    }

    /// Runs `updates` (each `{q, u}`) as the statements of one unordered `update`
    /// command with the handle's write concern; returns how many documents matched.
    pub(crate) async fn update_many_statements(
        &self,
        collection: &str,
        updates: Vec<Document>,
    ) -> Result<i64, StoreError> {
        let mut command = doc! { "update": collection, "updates": updates, "ordered": false };
        if let Some(concern) = self.db.write_concern() {
            let concern = bson::to_document(concern).map_err(|e| StoreError::Bson(e.to_string()))?;
            command.insert("writeConcern", concern);
        }
        let reply = self.db.run_command(command).await?;
        if let Some(Bson::Array(errors)) = reply.get("writeErrors")
            && let Some(Bson::Document(first)) = errors.first()
        {
            return Err(StoreError::Bson(format!("update of {collection} refused: {first}")));
        }
        Ok(reply.get("n").and_then(number).unwrap_or(0))
    }
}

fn number(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}
