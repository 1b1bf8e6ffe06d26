//! Queries for chat moderation: a chat's mode (read beside the roles on the send path)
//! and the writes of `chat.moderate` and `member.mute`.

use bson::doc;
use chat_nats::model::ChatMode;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use serde::Deserialize;

use crate::{
    Store, StoreError,
    docs::{ChangeMark, ChatDoc, ParticipantDoc},
};

/// A chat's id and mode, from its chat document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatModeRow {
    /// The chat.
    #[serde(rename = "_id")]
    pub chat_id: String,
    /// Its mode; absent in chats stored before moderation.
    #[serde(default)]
    pub mode: ChatMode,
}

fn to_bson<T: serde::Serialize>(value: &T) -> Result<bson::Bson, StoreError> {
    bson::to_bson(value).map_err(|e| StoreError::Bson(e.to_string()))
}

impl Store {
    /// The modes of these chats, in one round trip reading one field of each; a chat
    /// that does not exist is left out.
    pub async fn chat_modes(&self, chat_ids: &[&str]) -> Result<Vec<ChatModeRow>, StoreError> {
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .db
            .collection::<ChatModeRow>(crate::collections::CHATS)
            .find(doc! { "_id": { "$in": chat_ids } })
            .projection(doc! { "_id": 1, "mode": 1 })
            .await?
            .try_collect()
            .await?)
    }

    /// Sets a chat's whole mode, recording the command that did it; returns the chat
    /// after.
    pub async fn moderate_chat(
        &self,
        chat_id: &str,
        mode: &ChatMode,
        mark: &ChangeMark,
        at: DateTime<Utc>,
    ) -> Result<Option<ChatDoc>, StoreError> {
        let set = doc! { "mode": to_bson(mode)?, "last_moderation": to_bson(mark)?, "updated_at": bson::DateTime::from_chrono(at) };
        self.update_chat(chat_id, doc! { "$set": set }).await
    }

    /// Mutes a member until `until` (`None` unmutes) on their membership, which the
    /// send path reads with the role, and then in the chat's embedded list, recording
    /// the command; returns the chat after (`None` when the chat or the member is gone).
    pub async fn mute_member(
        &self,
        chat_id: &str,
        user_id: &str,
        until: Option<DateTime<Utc>>,
        mark: &ChangeMark,
        at: DateTime<Utc>,
    ) -> Result<Option<ChatDoc>, StoreError> {
        self.writes.admit("mute_member")?;
        let until = until.map(bson::DateTime::from_chrono);
        let membership = match until {
            Some(until) => doc! { "$set": { "muted_until": until } },
            None => doc! { "$unset": { "muted_until": "" } },
        };
        self.participants().update_one(doc! { "_id": ParticipantDoc::key(chat_id, user_id) }, membership).await?;
        let mut set = doc! { "last_moderation": to_bson(mark)?, "updated_at": bson::DateTime::from_chrono(at) };
        let update = match until {
            Some(until) => {
                set.insert("participants.$.muted_until", until);
                doc! { "$set": set }
            }
            None => doc! { "$set": set, "$unset": { "participants.$.muted_until": "" } },
        };
        let updated = self
            .chats()
            .find_one_and_update(doc! { "_id": chat_id, "participants.user_id": user_id }, update)
            .return_document(ReturnDocument::After)
            .await?;
        self.with_head(updated).await
    }
}
