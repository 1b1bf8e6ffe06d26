//! Queries on `users`.

use bson::doc;
use chrono::{DateTime, Utc};
use mongodb::options::ReturnDocument;

use crate::{Store, StoreError, docs::UserDoc};

impl Store {
    /// Creates or refreshes a user from what a token or the platform says.
    pub async fn upsert_user(
        &self,
        user_id: &str,
        name: &str,
        roles: &[String],
        at: DateTime<Utc>,
    ) -> Result<UserDoc, StoreError> {
        let updated = self
            .users()
            .find_one_and_update(
                doc! { "_id": user_id },
                doc! { "$set": { "name": name, "roles": roles, "updated_at": bson::DateTime::from_chrono(at) } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await?;
        updated.ok_or_else(|| StoreError::Bson("upsert returned no document".into()))
    }

    /// One user.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserDoc>, StoreError> {
        Ok(self.users().find_one(doc! { "_id": user_id }).await?)
    }
}
