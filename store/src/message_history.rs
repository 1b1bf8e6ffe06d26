//! `message_history`: append-only, one record per edit or delete (`_id` is the command
//! id, so a redelivered command appends nothing), holding the text before and after.
//! Members never read it; platform admins do, and retention ([`Store::purge_history`])
//! removes records older than the configured days.

use bson::{doc, serde_helpers::chrono_datetime_as_bson_datetime as bson_time};
use chat_nats::moderation::HistoryEntry;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError, collections};

/// One change of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryDoc {
    /// The command that made the change.
    #[serde(rename = "_id")]
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// The message.
    pub message_id: String,
    /// The seq of the change.
    pub seq: i64,
    /// Who changed it.
    pub actor: String,
    /// When.
    #[serde(with = "bson_time")]
    pub at: DateTime<Utc>,
    /// The text before.
    pub before: String,
    /// The text after; `None` for a delete.
    pub after: Option<String>,
}

impl From<HistoryDoc> for HistoryEntry {
    fn from(doc: HistoryDoc) -> Self {
        HistoryEntry {
            id: doc.id,
            chat_id: doc.chat_id,
            message_id: doc.message_id,
            seq: u64::try_from(doc.seq).unwrap_or(0),
            actor: doc.actor,
            at: doc.at,
            before: doc.before,
            after: doc.after,
        }
    }
}

/// What one retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// `message_history` records deleted.
    pub history_records: u64,
    /// Deleted messages whose text was still kept, blanked.
    pub deleted_texts: u64,
}

impl Store {
    /// `message_history`.
    pub fn message_history(&self) -> mongodb::Collection<HistoryDoc> {
        self.db.collection(collections::MESSAGE_HISTORY)
    }

    /// Appends a record; one that is there already (a redelivered command) stays.
    pub async fn append_history(&self, record: &HistoryDoc) -> Result<(), StoreError> {
        self.writes.admit("append_history")?;
        match self.message_history().insert_one(record).await {
            Ok(_) => Ok(()),
            Err(error) if crate::is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// A message's records, oldest first.
    pub async fn history_of(&self, chat_id: &str, message_id: &str) -> Result<Vec<HistoryDoc>, StoreError> {
        Ok(self
            .message_history()
            .find(doc! { "chat_id": chat_id, "message_id": message_id })
            .sort(doc! { "seq": 1 })
            .await?
            .try_collect()
            .await?)
    }

    /// Retention: deletes history records from before `cutoff`, and blanks the text
    /// of messages deleted before `cutoff` that still hold one (a tombstone keeps no
    /// text; this catches any that do).
    pub async fn purge_history(&self, cutoff: DateTime<Utc>) -> Result<Purged, StoreError> {
        let cutoff = bson::DateTime::from_chrono(cutoff);
        self.writes.admit("purge_history")?;
        let records = self.message_history().delete_many(doc! { "at": { "$lt": cutoff } }).await?;
        self.writes.admit("blank_deleted_texts")?;
        let texts = self
            .messages()
            .update_many(
                doc! { "deleted_at": { "$lt": cutoff }, "text": { "$ne": "" } },
                doc! { "$set": { "text": "" } },
            )
            .await?;
        Ok(Purged { history_records: records.deleted_count, deleted_texts: texts.modified_count })
    }
}
