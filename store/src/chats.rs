//! Queries on `chats`.

use bson::doc;
use chat_nats::model::ChatKind;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use serde::Deserialize;

use crate::{
    Store, StoreError,
    docs::{ChangeMark, ChatDoc, LastMessageDoc, MemberDoc, RemovalMark, bson_seq},
};

/// The part of a chat document that bounds paged reads.
#[derive(Debug, Deserialize)]
struct LastSeq {
    last_seq: i64,
}

/// The part of a chat document that bounds a member's paged reads: where the chat
/// ends, and which history later members read.
#[derive(Debug, Deserialize)]
pub(crate) struct ReadBounds {
    pub(crate) last_seq: i64,
    #[serde(default)]
    pub(crate) history_visibility: chat_nats::model::HistoryVisibility,
}

/// What a chat is called, without its participants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatLabel {
    /// Direct or group.
    #[serde(rename = "type")]
    pub kind: ChatKind,
    /// A group's title.
    #[serde(default)]
    pub title: Option<String>,
}

impl Store {
    /// A chat's kind and title, read with a projection; `None` when there is no such chat.
    pub async fn chat_label(&self, chat_id: &str) -> Result<Option<ChatLabel>, StoreError> {
        Ok(self
            .db
            .collection::<ChatLabel>(crate::collections::CHATS)
            .find_one(doc! { "_id": chat_id })
            .projection(doc! { "_id": 0, "type": 1, "title": 1 })
            .await?)
    }

    /// One chat.
    pub async fn chat(&self, chat_id: &str) -> Result<Option<ChatDoc>, StoreError> {
        Ok(self.chats().find_one(doc! { "_id": chat_id }).await?)
    }

    /// The highest seq reserved in a chat (every message's `seq` and `updated_seq` is
    /// at most this), read with a projection; `None` when there is no such chat.
    pub async fn last_seq(&self, chat_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.read_bounds(chat_id).await?.map(|chat| u64::try_from(chat.last_seq).unwrap_or(0)))
    }

    /// A chat's [`ReadBounds`], read with a projection; `None` when there is no such
    /// chat.
    pub(crate) async fn read_bounds(&self, chat_id: &str) -> Result<Option<ReadBounds>, StoreError> {
        Ok(self
            .db
            .collection::<ReadBounds>(crate::collections::CHATS)
            .find_one(doc! { "_id": chat_id })
            .projection(doc! { "_id": 0, "last_seq": 1, "history_visibility": 1 })
            .await?)
    }

    /// Several chats at once.
    pub async fn chats_by_ids(&self, chat_ids: &[String]) -> Result<Vec<ChatDoc>, StoreError> {
        Ok(self.chats().find(doc! { "_id": { "$in": chat_ids } }).await?.try_collect().await?)
    }

    /// The direct chat of a pair, if any.
    pub async fn direct_chat(&self, direct_key: &str) -> Result<Option<ChatDoc>, StoreError> {
        Ok(self.chats().find_one(doc! { "direct_key": direct_key }).await?)
    }

    /// The chat with this external id, if any.
    pub async fn chat_by_external_id(&self, external_id: &str) -> Result<Option<ChatDoc>, StoreError> {
        Ok(self.chats().find_one(doc! { "external_id": external_id }).await?)
    }

    /// Inserts a new chat.
    pub async fn insert_chat(&self, chat: &ChatDoc) -> Result<(), StoreError> {
        self.writes.admit("insert_chat")?;
        self.chats().insert_one(chat).await?;
        Ok(())
    }

    /// Reserves `count` sequence numbers; returns the last of them. The reservation is
    /// durable before anything uses it, so a crash leaves a gap, never a reuse. Only
    /// `last_seq` comes back: a chat document carries every participant.
    pub async fn reserve_seqs(&self, chat_id: &str, count: u64) -> Result<Option<u64>, StoreError> {
        self.writes.admit("reserve_seqs")?;
        let updated = self
            .db
            .collection::<LastSeq>(crate::collections::CHATS)
            .find_one_and_update(doc! { "_id": chat_id }, doc! { "$inc": { "last_seq": bson_seq(count) } })
            .projection(doc! { "_id": 0, "last_seq": 1 })
            .return_document(ReturnDocument::After)
            .await?;
        Ok(updated.map(|chat| u64::try_from(chat.last_seq).unwrap_or(0)))
    }

    /// Moves a chat's `last_seq` from `expected` to `last_seq` and records `last` as its
    /// newest message, in one write, only while `last_seq` still is `expected`: the
    /// reservation and the preview of a run of sends cost one update of the (large)
    /// chat document instead of two. False when the chat is gone or another writer
    /// moved `last_seq` first (the caller reads it again).
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
            .chats()
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
        self.writes.admit("set_last_message")?;
        let last_doc = bson::to_bson(last).map_err(|e| StoreError::Bson(e.to_string()))?;
        self.chats()
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

    /// Adds members not already present to the embedded list.
    pub async fn add_chat_members(
        &self,
        chat_id: &str,
        members: &[MemberDoc],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for member in members {
            self.writes.admit("add_chat_members")?;
            let member_doc = bson::to_bson(member).map_err(|e| StoreError::Bson(e.to_string()))?;
            self.chats()
                .update_one(
                    doc! { "_id": chat_id, "participants.user_id": { "$ne": &member.user_id } },
                    doc! {
                        "$push": { "participants": member_doc },
                        "$set": { "updated_at": bson::DateTime::from_chrono(at) },
                    },
                )
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// A user's chats, most recent activity first, strictly after `(updated_at, id)`.
    pub async fn chats_of_user(
        &self,
        user_id: &str,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<ChatDoc>, StoreError> {
        let mut filter = doc! { "participants.user_id": user_id };
        if let Some((updated_at, id)) = after {
            let at = bson::DateTime::from_chrono(updated_at);
            filter.insert(
                "$or",
                vec![doc! { "updated_at": { "$lt": at } }, doc! { "updated_at": at, "_id": { "$lt": id } }],
            );
        }
        Ok(self
            .chats()
            .find(filter)
            .sort(doc! { "updated_at": -1, "_id": -1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?)
    }
}

impl Store {
    /// Renames a group and/or changes its history visibility, recording the command
    /// that did it; returns the chat after.
    pub async fn rename_chat(
        &self,
        chat_id: &str,
        title: Option<&str>,
        history_visibility: Option<chat_nats::model::HistoryVisibility>,
        mark: &ChangeMark,
        at: DateTime<Utc>,
    ) -> Result<Option<ChatDoc>, StoreError> {
        let mark = bson::to_bson(mark).map_err(|e| StoreError::Bson(e.to_string()))?;
        let at = bson::DateTime::from_chrono(at);
        let mut set = doc! { "updated_at": at, "last_update": mark };
        if let Some(title) = title {
            set.insert("title", title);
        }
        if let Some(visibility) = history_visibility {
            set.insert("history_visibility", visibility.as_str());
        }
        self.update_chat(chat_id, doc! { "$set": set }).await
    }

    /// Takes a member out of the chat's embedded list, recording the removal (the record
    /// a replay recognises); returns the chat after. The membership document goes
    /// separately, with [`Store::delete_participant`].
    pub async fn remove_chat_member(
        &self,
        chat_id: &str,
        mark: &RemovalMark,
        at: DateTime<Utc>,
    ) -> Result<Option<ChatDoc>, StoreError> {
        let user_id = mark.user_id.clone();
        let mark = bson::to_bson(mark).map_err(|e| StoreError::Bson(e.to_string()))?;
        let update = doc! {
            "$pull": { "participants": { "user_id": user_id } },
            "$set": { "updated_at": bson::DateTime::from_chrono(at), "last_removal": mark },
        };
        self.update_chat(chat_id, update).await
    }

    /// Applies a `$set` (and optional `$pull`) to a chat; returns it after the change.
    pub async fn update_chat(&self, chat_id: &str, update: bson::Document) -> Result<Option<ChatDoc>, StoreError> {
        self.writes.admit("update_chat")?;
        Ok(self
            .chats()
            .find_one_and_update(doc! { "_id": chat_id }, update)
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Keeps the chat list's preview in step with an edit or delete of the newest message.
    pub async fn refresh_last_message_text(
        &self,
        chat_id: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        self.writes.admit("refresh_last_message_text")?;
        let preview: String = text.chars().take(crate::docs::PREVIEW_CHARS).collect();
        self.chats()
            .update_one(
                doc! { "_id": chat_id, "last_message.id": message_id },
                doc! { "$set": { "last_message.text": preview } },
            )
            .await?;
        Ok(())
    }

    /// Sets a member's role in the embedded list.
    pub async fn set_chat_member_role(
        &self,
        chat_id: &str,
        user_id: &str,
        role: chat_nats::model::Role,
    ) -> Result<(), StoreError> {
        self.writes.admit("set_chat_member_role")?;
        self.chats()
            .update_one(
                doc! { "_id": chat_id, "participants.user_id": user_id },
                doc! { "$set": { "participants.$.role": role.as_str() } },
            )
            .await?;
        Ok(())
    }
}
