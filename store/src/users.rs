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
        self.writes.admit("upsert_user")?;
        let updated = self
            .users()
            .find_one_and_update(
                doc! { "_id": user_id },
                doc! {
                    "$set": {
                        "name": name,
                        "name_key": name_key(name),
                        "roles": roles,
                        "updated_at": bson::DateTime::from_chrono(at),
                    }
                },
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

/// Folds a name for case-insensitive, Unicode-aware prefix search (Cyrillic included).
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl Store {
    /// Users whose name starts with `query` (case-insensitive), or whose id is `query`,
    /// by name.
    pub async fn search_users(&self, query: &str, limit: u32) -> Result<Vec<UserDoc>, StoreError> {
        use futures::TryStreamExt;
        let prefix = name_key(query);
        let upper = format!("{prefix}\u{10FFFF}");
        Ok(self
            .users()
            .find(doc! { "$or": [ { "name_key": { "$gte": &prefix, "$lt": upper } }, { "_id": query } ] })
            .sort(doc! { "name_key": 1, "_id": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::name_key;

    #[test]
    fn names_fold_across_scripts() {
        assert_eq!(name_key("  Ёлкина Анна "), "ёлкина анна");
        assert_eq!(name_key("ÉMILE"), "émile");
        assert!(name_key("Иван").starts_with(&name_key("ИВ")));
    }
}
