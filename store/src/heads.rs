//! Many chats' heads moved in one command. A run of sends moves its chat's `last_seq`
//! and preview by a compare-and-set ([`Store::advance_head`]); when several partitions'
//! runs are ready at once, their compare-and-sets travel as the statements of one
//! `update` command, which costs the store one command's overhead instead of one each.

use bson::{Bson, doc};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::{
    Store, StoreError, collections,
    docs::{LastMessageDoc, bson_seq},
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
    /// Applies every move whose chat still has its expected `last_seq`, in one
    /// command; says for each whether it was applied (false: the chat is gone or
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
        let mut command = doc! { "update": collections::CHATS, "updates": updates, "ordered": false };
        if let Some(concern) = self.db.write_concern() {
            let concern = bson::to_document(concern).map_err(|e| StoreError::Bson(e.to_string()))?;
            command.insert("writeConcern", concern);
        }
        let reply = self.db.run_command(command).await?;
        if let Some(Bson::Array(errors)) = reply.get("writeErrors")
            && let Some(Bson::Document(first)) = errors.first()
        {
            return Err(StoreError::Bson(format!("head update refused: {first}")));
        }
        let matched = reply.get("n").and_then(number).unwrap_or(0);
        if matched == moves.len() as i64 {
            return Ok(vec![true; moves.len()]);
        }
        // Some did not match: a chat's preview names the message its move set exactly
        // when that move was applied (message ids are unique).
        let ids: Vec<&str> = moves.iter().map(|head| head.chat_id.as_str()).collect();
        let previews: Vec<Preview> = self
            .db
            .collection::<Preview>(collections::CHATS)
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
}

fn number(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}
