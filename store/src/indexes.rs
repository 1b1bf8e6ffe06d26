//! Index creation, idempotent: creating an index that exists with the same keys and
//! options does nothing.

use bson::{Document, doc};
use mongodb::{IndexModel, options::IndexOptions};

use crate::{Store, StoreError, collections};

fn index(keys: Document, name: &str, unique: bool) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).unique(unique.then_some(true)).build())
        .build()
}

fn sparse_unique(keys: Document, name: &str, field: &str) -> IndexModel {
    let partial = doc! { field: { "$type": "string" } };
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).unique(true).partial_filter_expression(partial).build())
        .build()
}

/// Every index the queries need, per collection.
pub fn all() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            collections::CHATS,
            vec![
                index(doc! { "participants.user_id": 1 }, "participants_user", false),
                sparse_unique(doc! { "direct_key": 1 }, "direct_key_unique", "direct_key"),
                sparse_unique(doc! { "external_id": 1 }, "external_id_unique", "external_id"),
            ],
        ),
        (
            collections::MESSAGES,
            vec![
                index(doc! { "chat_id": 1, "seq": -1 }, "chat_seq_unique", true),
                index(doc! { "chat_id": 1, "updated_seq": 1 }, "chat_updated_seq", false),
                index(doc! { "chat_id": 1, "sender_id": 1, "client_msg_id": 1 }, "chat_sender_client_msg_unique", true),
            ],
        ),
        (
            collections::PARTICIPANTS,
            vec![
                index(doc! { "user_id": 1, "chat_id": 1 }, "user_chat_unique", true),
                index(doc! { "chat_id": 1 }, "chat", false),
            ],
        ),
        (collections::USERS, vec![index(doc! { "name_key": 1 }, "name_key", false)]),
        (
            collections::REPORTS,
            vec![
                index(doc! { "state": 1, "created_at": 1, "_id": 1 }, "state_created", false),
                index(doc! { "reporter_id": 1 }, "reporter", false),
            ],
        ),
        (
            collections::MESSAGE_HISTORY,
            vec![
                index(doc! { "chat_id": 1, "message_id": 1, "seq": 1 }, "chat_message_seq", false),
                index(doc! { "at": 1 }, "at", false),
            ],
        ),
        (
            collections::AUDIT,
            vec![
                index(doc! { "chat_id": 1, "at": -1 }, "chat_at", false),
                index(doc! { "actor": 1, "at": -1 }, "actor_at", false),
                index(doc! { "target_users": 1, "at": -1 }, "target_at", false),
                index(doc! { "at": -1 }, "at", false),
            ],
        ),
    ]
}

/// Indexes earlier versions created that no query uses: every message insert and
/// chat update paid for them. Dropped at start-up.
pub const OBSOLETE: [(&str, &str); 3] =
    [(collections::CHATS, "created_at"), (collections::MESSAGES, "chat_created_at"), (collections::MESSAGES, "sender")];

impl Store {
    /// Creates every index and drops the obsolete ones.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        for (collection, models) in all() {
            self.db.collection::<Document>(collection).create_indexes(models).await?;
        }
        for (collection, name) in OBSOLETE {
            let existing = self.db.collection::<Document>(collection).list_index_names().await?;
            if existing.iter().any(|index| index == name) {
                self.db.collection::<Document>(collection).drop_index(name).await?;
            }
        }
        Ok(())
    }
}
