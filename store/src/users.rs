//! Queries on `users`.

use bson::doc;
use chrono::{DateTime, Utc};
use mongodb::options::ReturnDocument;
use unicode_normalization::UnicodeNormalization;

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

/// Folds a name for prefix search that ignores case and Unicode normalisation: NFKC
/// (so the composed and decomposed "É", and full-width letters, are one), lowercase
/// in every script, then the two foldings lowercasing leaves apart (`ß` and `ss`, the
/// final and the ordinary sigma), and NFKC again because lowercasing can decompose.
pub fn name_key(name: &str) -> String {
    let lower: String = name.trim().nfkc().collect::<String>().to_lowercase();
    let folded = lower.replace('ß', "ss").replace('ς', "σ");
    folded.nfkc().collect()
}

/// Where a page of a directory search continues: after this user in (name key, id)
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// The last user's folded name.
    pub name_key: String,
    /// The last user's id.
    pub id: String,
}

impl Store {
    /// Up to `limit` users whose folded name starts with the folded `query`, in (name
    /// key, id) order, after `after` when given: one page of a directory search.
    pub async fn search_users(
        &self,
        query: &str,
        after: Option<&After>,
        limit: u32,
    ) -> Result<Vec<UserDoc>, StoreError> {
        use futures::TryStreamExt;
        let prefix = name_key(query);
        let upper = format!("{prefix}\u{10FFFF}");
        let range = doc! { "name_key": { "$gte": &prefix, "$lt": &upper } };
        let filter = match after {
            None => range,
            Some(after) => doc! {
                "$and": [
                    range,
                    { "$or": [
                        { "name_key": { "$gt": &after.name_key } },
                        { "name_key": &after.name_key, "_id": { "$gt": &after.id } },
                    ] },
                ]
            },
        };
        Ok(self
            .users()
            .find(filter)
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

    #[test]
    fn composed_and_decomposed_forms_fold_to_one_key() {
        let composed = "\u{c9}mile";
        let decomposed = "E\u{301}mile";
        assert_ne!(composed, decomposed);
        assert_eq!(name_key(composed), name_key(decomposed));
        assert!(name_key(decomposed).starts_with(&name_key("\u{e9}m")));
        assert_eq!(name_key("Ｅｍｉｌｅ"), "emile", "full-width letters");
    }

    #[test]
    fn case_folds_in_every_script() {
        assert_eq!(name_key("STRASSE"), name_key("Straße"));
        assert_eq!(name_key("ΟΔΥΣΣΕΥΣ"), name_key("οδυσσευς"));
        assert_eq!(name_key("ԱՐԱՄ"), name_key("արամ"), "Armenian");
        assert_eq!(name_key("ᏣᎳᎩ"), name_key("ꮳꮃꭹ"), "Cherokee");
        assert_eq!(name_key("日本語"), "日本語", "scripts without case are unchanged");
    }
}
