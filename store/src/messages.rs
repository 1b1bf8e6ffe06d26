//! Queries on `messages`.

use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::options::InsertManyOptions;

use crate::{
    Store, StoreError,
    docs::{MessageDoc, bson_seq},
};

/// The idempotency key of a send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SendKey {
    /// Chat.
    pub chat_id: String,
    /// Sender.
    pub sender_id: String,
    /// The sender's key.
    pub client_msg_id: String,
}

impl SendKey {
    /// The key of a stored message.
    pub fn of(message: &MessageDoc) -> Self {
        SendKey {
            chat_id: message.chat_id.clone(),
            sender_id: message.sender_id.clone(),
            client_msg_id: message.client_msg_id.clone(),
        }
    }
}

/// Which page of history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// Newest first, optionally strictly older than a seq.
    Before(Option<u64>),
    /// Oldest first, strictly newer than a seq.
    After(u64),
}

impl Store {
    /// Messages that already exist for these `(chat, sender, client_msg_id)` keys, in
    /// one round trip.
    pub async fn existing_sends(&self, keys: &[SendKey]) -> Result<Vec<MessageDoc>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let alternatives: Vec<Document> = keys
            .iter()
            .map(|key| {
                doc! { "chat_id": &key.chat_id, "sender_id": &key.sender_id, "client_msg_id": &key.client_msg_id }
            })
            .collect();
        Ok(self.messages().find(doc! { "$or": alternatives }).await?.try_collect().await?)
    }

    /// Inserts messages in one round trip; documents already present (a redelivered
    /// command) are skipped, everything else is written.
    pub async fn insert_messages(&self, messages: &[MessageDoc]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let options = InsertManyOptions::builder().ordered(false).build();
        match self.messages().insert_many(messages).with_options(options).await {
            Ok(_) => Ok(()),
            // A message already stored under its send key is a redelivery; a clash on
            // the seq index would lose a message, so it is an error.
            Err(error) if crate::is_duplicate_key(&error) && !error.to_string().contains("chat_seq_unique") => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// One message of a chat.
    pub async fn message(&self, chat_id: &str, message_id: &str) -> Result<Option<MessageDoc>, StoreError> {
        Ok(self.messages().find_one(doc! { "_id": message_id, "chat_id": chat_id }).await?)
    }

    /// A page of history, with tombstones.
    pub async fn history(&self, chat_id: &str, page: HistoryPage, limit: u32) -> Result<Vec<MessageDoc>, StoreError> {
        let (filter, sort) = match page {
            HistoryPage::Before(None) => (doc! { "chat_id": chat_id }, doc! { "seq": -1 }),
            HistoryPage::Before(Some(seq)) => {
                (doc! { "chat_id": chat_id, "seq": { "$lt": bson_seq(seq) } }, doc! { "seq": -1 })
            }
            HistoryPage::After(seq) => {
                (doc! { "chat_id": chat_id, "seq": { "$gt": bson_seq(seq) } }, doc! { "seq": 1 })
            }
        };
        Ok(self.messages().find(filter).sort(sort).limit(i64::from(limit)).await?.try_collect().await?)
    }

    /// Messages others sent after `after_seq` that are not deleted: the unread count.
    pub async fn count_unread(&self, chat_id: &str, user_id: &str, after_seq: u64) -> Result<u64, StoreError> {
        Ok(self
            .messages()
            .count_documents(doc! {
                "chat_id": chat_id,
                "seq": { "$gt": bson_seq(after_seq) },
                "sender_id": { "$ne": user_id },
                "deleted_at": null,
            })
            .await?)
    }
}

impl Store {
    /// The chat of each of these messages that exists.
    pub async fn chats_of_messages(&self, message_ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<MessageDoc> =
            self.messages().find(doc! { "_id": { "$in": message_ids } }).await?.try_collect().await?;
        Ok(found.into_iter().map(|m| (m.id, m.chat_id)).collect())
    }
}

impl Store {
    /// Applies an edit or delete to a message, recording the command that did it.
    pub async fn update_message(
        &self,
        chat_id: &str,
        message_id: &str,
        set: bson::Document,
    ) -> Result<Option<MessageDoc>, StoreError> {
        Ok(self
            .messages()
            .find_one_and_update(doc! { "_id": message_id, "chat_id": chat_id }, doc! { "$set": set })
            .return_document(mongodb::options::ReturnDocument::After)
            .await?)
    }

    /// Changes since `after_seq` (created, edited or deleted), oldest change first.
    pub async fn changes_since(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<MessageDoc>, StoreError> {
        Ok(self
            .messages()
            .find(doc! { "chat_id": chat_id, "updated_seq": { "$gt": bson_seq(after_seq) } })
            .sort(doc! { "updated_seq": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?)
    }
}

impl Store {
    /// A user's unread messages across all their chats: the push badge.
    pub async fn count_unread_total(&self, user_id: &str) -> Result<u64, StoreError> {
        let memberships = self.memberships(user_id).await?;
        if memberships.is_empty() {
            return Ok(0);
        }
        let per_chat: Vec<bson::Document> =
            memberships.iter().map(|p| doc! { "chat_id": &p.chat_id, "seq": { "$gt": p.last_read_seq } }).collect();
        Ok(self
            .messages()
            .count_documents(doc! { "$or": per_chat, "sender_id": { "$ne": user_id }, "deleted_at": null })
            .await?)
    }
}
