//! Queries on `participants`.

use bson::doc;
use futures::TryStreamExt;
use mongodb::options::InsertManyOptions;

use chat_nats::model::Role;
use serde::Deserialize;

use crate::{Store, StoreError, docs::ParticipantDoc};

impl Store {
    /// Every membership of a user.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<ParticipantDoc>, StoreError> {
        Ok(self.participants().find(doc! { "user_id": user_id }).await?.try_collect().await?)
    }

    /// One membership.
    pub async fn participant(&self, chat_id: &str, user_id: &str) -> Result<Option<ParticipantDoc>, StoreError> {
        Ok(self.participants().find_one(doc! { "_id": ParticipantDoc::key(chat_id, user_id) }).await?)
    }

    /// Inserts memberships; ones that already exist are left as they are.
    pub async fn insert_participants(&self, participants: &[ParticipantDoc]) -> Result<(), StoreError> {
        if participants.is_empty() {
            return Ok(());
        }
        self.writes.admit("insert_participants")?;
        let options = InsertManyOptions::builder().ordered(false).build();
        match self.participants().insert_many(participants).with_options(options).await {
            Ok(_) => Ok(()),
            Err(error) if crate::is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// The part of a membership that decides a push.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberFlags {
    /// Member.
    pub user_id: String,
    /// Push notifications off.
    pub muted: bool,
}

/// The part of a membership that authorises a command.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberRole {
    /// Chat.
    pub chat_id: String,
    /// Member.
    pub user_id: String,
    /// Their role.
    pub role: Role,
    /// Until when a moderator muted them.
    #[serde(with = "crate::docs::bson_time_opt", default)]
    pub muted_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Store {
    /// The roles of these `(chat, user)` pairs that are memberships, by point lookups
    /// in one round trip, reading four fields of each.
    pub async fn member_roles(&self, pairs: &[(&str, &str)]) -> Result<Vec<MemberRole>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = pairs.iter().map(|(chat_id, user_id)| ParticipantDoc::key(chat_id, user_id)).collect();
        Ok(self
            .db
            .collection::<MemberRole>(crate::collections::PARTICIPANTS)
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "_id": 0, "chat_id": 1, "user_id": 1, "role": 1, "muted_until": 1 })
            .await?
            .try_collect()
            .await?)
    }

    /// Every member of a chat with their mute flag, reading two fields of each.
    pub async fn member_flags(&self, chat_id: &str) -> Result<Vec<MemberFlags>, StoreError> {
        Ok(self
            .db
            .collection::<MemberFlags>(crate::collections::PARTICIPANTS)
            .find(doc! { "chat_id": chat_id })
            .projection(doc! { "_id": 0, "user_id": 1, "muted": 1 })
            .await?
            .try_collect()
            .await?)
    }

    /// Those of `others` who share at least one chat with `user_id`: whose presence a
    /// user sees. Reads the user's chat ids, then the memberships of `others` in them.
    pub async fn users_sharing_a_chat(
        &self,
        user_id: &str,
        others: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if others.is_empty() {
            return Ok(Default::default());
        }
        let chat_ids: Vec<String> = self.memberships(user_id).await?.into_iter().map(|p| p.chat_id).collect();
        if chat_ids.is_empty() {
            return Ok(Default::default());
        }
        let found: Vec<MemberFlags> = self
            .db
            .collection::<MemberFlags>(crate::collections::PARTICIPANTS)
            .find(doc! { "user_id": { "$in": others }, "chat_id": { "$in": chat_ids } })
            .projection(doc! { "_id": 0, "user_id": 1, "muted": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(found.into_iter().map(|m| m.user_id).collect())
    }

    /// A user's memberships in the given chats.
    pub async fn memberships_in(&self, user_id: &str, chat_ids: &[String]) -> Result<Vec<ParticipantDoc>, StoreError> {
        let ids: Vec<String> = chat_ids.iter().map(|chat_id| ParticipantDoc::key(chat_id, user_id)).collect();
        Ok(self.participants().find(doc! { "_id": { "$in": ids } }).await?.try_collect().await?)
    }
}

impl Store {
    /// Moves a read mark forward only; true when it moved.
    pub async fn advance_read_mark(&self, chat_id: &str, user_id: &str, up_to_seq: u64) -> Result<bool, StoreError> {
        self.writes.admit("advance_read_mark")?;
        let seq = crate::docs::bson_seq(up_to_seq);
        let result = self
            .participants()
            .update_one(
                doc! { "_id": ParticipantDoc::key(chat_id, user_id), "last_read_seq": { "$lt": seq } },
                doc! { "$set": { "last_read_seq": seq } },
            )
            .await?;
        Ok(result.modified_count > 0)
    }

    /// Changes a member's role, recording the command and the event's seq.
    pub async fn set_participant_role(
        &self,
        chat_id: &str,
        user_id: &str,
        role: chat_nats::model::Role,
        seq: u64,
        command_id: &str,
    ) -> Result<(), StoreError> {
        self.writes.admit("set_participant_role")?;
        self.participants()
            .update_one(
                doc! { "_id": ParticipantDoc::key(chat_id, user_id) },
                doc! { "$set": { "role": role.as_str(), "role_seq": crate::docs::bson_seq(seq), "added_by": command_id } },
            )
            .await?;
        Ok(())
    }

    /// Removes a membership.
    pub async fn delete_participant(&self, chat_id: &str, user_id: &str) -> Result<(), StoreError> {
        self.writes.admit("delete_participant")?;
        self.participants().delete_one(doc! { "_id": ParticipantDoc::key(chat_id, user_id) }).await?;
        Ok(())
    }
}

/// Where a member's reading stands in one chat: what an unread count starts from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReadPosition {
    /// The chat.
    pub chat_id: String,
    /// The member.
    pub user_id: String,
    /// Their read mark.
    #[serde(deserialize_with = "non_negative_seq")]
    pub last_read_seq: u64,
}

/// A seq as BSON holds it (a signed integer), as the `u64` the rest of the code uses.
fn non_negative_seq<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Ok(u64::try_from(i64::deserialize(deserializer)?).unwrap_or(0))
}

impl Store {
    /// The read position of each of `user_ids` in each of their chats, in one query
    /// (what the unread counts of a push's badges start from).
    pub async fn read_positions(&self, user_ids: &[String]) -> Result<Vec<ReadPosition>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .participants()
            .clone_with_type::<ReadPosition>()
            .find(doc! { "user_id": { "$in": user_ids } })
            .projection(doc! { "_id": 0, "chat_id": 1, "user_id": 1, "last_read_seq": 1 })
            .await?
            .try_collect()
            .await?)
    }
}
