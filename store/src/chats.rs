//! Queries on `chats`.

use std::collections::HashMap;

use bson::doc;
use chat_nats::model::ChatKind;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use serde::Deserialize;

use crate::{
    Store, StoreError,
    docs::{ChangeMark, ChatDoc, HeadDoc, MemberDoc, RemovalMark},
};

/// What a head says of a chat's [`ReadBounds`].
#[derive(Debug, Deserialize)]
struct HeadBounds {
    last_seq: i64,
    #[serde(default)]
    history_visibility: Option<chat_nats::model::HistoryVisibility>,
}

/// A chat's id and latest activity, from its chat document or its head.
#[derive(Debug, Deserialize)]
struct Activity {
    #[serde(rename = "_id")]
    id: String,
    #[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]
    updated_at: DateTime<Utc>,
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
        self.with_head(self.chats().find_one(doc! { "_id": chat_id }).await?).await
    }

    /// A chat's [`ReadBounds`]; `None` when there is no such chat. One point read of its
    /// head, which knows both; the chat document is read too only when there is no head
    /// yet, or the head predates keeping the visibility and the reader needs it (a member
    /// who joined after the first message).
    pub(crate) async fn read_bounds(
        &self,
        chat_id: &str,
        needs_visibility: bool,
    ) -> Result<Option<ReadBounds>, StoreError> {
        let head = self
            .db
            .collection::<HeadBounds>(crate::collections::CHAT_HEADS)
            .find_one(doc! { "_id": chat_id })
            .projection(doc! { "_id": 0, "last_seq": 1, "history_visibility": 1 })
            .await?;
        match head {
            Some(HeadBounds { last_seq, history_visibility: Some(history_visibility) }) => {
                return Ok(Some(ReadBounds { last_seq, history_visibility }));
            }
            Some(HeadBounds { last_seq, history_visibility: None }) if !needs_visibility => {
                return Ok(Some(ReadBounds { last_seq, history_visibility: Default::default() }));
            }
            _ => {}
        }
        let chat = self
            .db
            .collection::<ReadBounds>(crate::collections::CHATS)
            .find_one(doc! { "_id": chat_id })
            .projection(doc! { "_id": 0, "last_seq": 1, "history_visibility": 1 })
            .await?;
        Ok(chat.map(|mut bounds| {
            bounds.last_seq = bounds.last_seq.max(head.map_or(0, |head| head.last_seq));
            bounds
        }))
    }

    /// Several chats at once.
    pub async fn chats_by_ids(&self, chat_ids: &[String]) -> Result<Vec<ChatDoc>, StoreError> {
        self.with_heads(self.chats().find(doc! { "_id": { "$in": chat_ids } }).await?.try_collect().await?).await
    }

    /// The direct chat of a pair, if any.
    pub async fn direct_chat(&self, direct_key: &str) -> Result<Option<ChatDoc>, StoreError> {
        self.with_head(self.chats().find_one(doc! { "direct_key": direct_key }).await?).await
    }

    /// The chat with this external id, if any.
    pub async fn chat_by_external_id(&self, external_id: &str) -> Result<Option<ChatDoc>, StoreError> {
        self.with_head(self.chats().find_one(doc! { "external_id": external_id }).await?).await
    }

    /// Inserts a new chat and its head. A crash in between leaves a chat without a head,
    /// which its first write seeds ([`crate::heads`]).
    pub async fn insert_chat(&self, chat: &ChatDoc) -> Result<(), StoreError> {
        self.writes.admit("insert_chat")?;
        self.chats().insert_one(chat).await?;
        self.insert_head(&HeadDoc::of(chat)).await?;
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
    /// A chat's activity is the later of its head's and its chat document's
    /// `updated_at`, which are in two collections: the user's chats are ranked here
    /// from both (two projections of every chat of theirs, as the store's sort on the
    /// membership index read every one of them too), and only the page is read whole.
    pub async fn chats_of_user(
        &self,
        user_id: &str,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<ChatDoc>, StoreError> {
        let activity = doc! { "_id": 1, "updated_at": 1 };
        let mine: Vec<Activity> = self
            .db
            .collection::<Activity>(crate::collections::CHATS)
            .find(doc! { "participants.user_id": user_id })
            .projection(activity.clone())
            .await?
            .try_collect()
            .await?;
        let ids: Vec<&str> = mine.iter().map(|chat| chat.id.as_str()).collect();
        let heads: HashMap<String, DateTime<Utc>> = self
            .db
            .collection::<Activity>(crate::collections::CHAT_HEADS)
            .find(doc! { "_id": { "$in": ids } })
            .projection(activity)
            .await?
            .map_ok(|head| (head.id, head.updated_at))
            .try_collect()
            .await?;
        let mut ranked: Vec<(DateTime<Utc>, String)> = mine
            .into_iter()
            .map(|chat| {
                let at = heads.get(&chat.id).map_or(chat.updated_at, |head| chat.updated_at.max(*head));
                (at, chat.id)
            })
            .filter(|position| after.as_ref().is_none_or(|after| position < after))
            .collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        ranked.truncate(limit as usize);
        let page: Vec<String> = ranked.into_iter().map(|(_, id)| id).collect();
        let mut chats: HashMap<String, ChatDoc> =
            self.chats_by_ids(&page).await?.into_iter().map(|chat| (chat.id.clone(), chat)).collect();
        Ok(page.iter().filter_map(|id| chats.remove(id)).collect())
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
            // The head first: readers take the visibility from it, and a crash before the
            // chat document records `mark` makes the replay write both again.
            self.set_head_visibility(chat_id, visibility).await?;
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
        let updated = self
            .chats()
            .find_one_and_update(doc! { "_id": chat_id }, update)
            .return_document(ReturnDocument::After)
            .await?;
        self.with_head(updated).await
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
