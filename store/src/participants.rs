//! Queries on `participants`.

use bson::doc;
use futures::TryStreamExt;
use mongodb::options::InsertManyOptions;

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
        let options = InsertManyOptions::builder().ordered(false).build();
        match self.participants().insert_many(participants).with_options(options).await {
            Ok(_) => Ok(()),
            Err(error) if crate::is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

impl Store {
    /// A user's memberships in the given chats.
    pub async fn memberships_in(&self, user_id: &str, chat_ids: &[String]) -> Result<Vec<ParticipantDoc>, StoreError> {
        let ids: Vec<String> = chat_ids.iter().map(|chat_id| ParticipantDoc::key(chat_id, user_id)).collect();
        Ok(self.participants().find(doc! { "_id": { "$in": ids } }).await?.try_collect().await?)
    }
}
