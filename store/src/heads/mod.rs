//! Each chat's head (`chat_heads`): its `last_seq` and newest message. Every message and
//! every event of a chat moves it, so it has a small document of its own: the chat
//! document carries every participant (and their multikey index), and the store spends
//! about three times as long updating it as a small document (610 µs against 210 µs
//! with 100 members, `bench/store-op-costs.py`).
//!
//! - The head is the truth. Readers of a chat take its `last_seq`, `last_message` and
//!   the later of the two `updated_at` from the head ([`overlay`]). The chat document
//!   keeps the pinned fields as a copy that the persister refreshes about once a
//!   second per busy chat ([`Store::copy_heads_to_chats`]), for the operators and tools
//!   that read `chats` directly.
//! - A chat stored before heads existed, or whose head a crash kept from being inserted,
//!   has none: the first writer that needs it seeds it from the chat document
//!   ([`Store::head`]); readers use the chat document's fields until then.
//!
//! Layout: [`moves`] (the writes that move heads), [`overlay`] (heads onto chat
//! documents, and copied back into them).

pub mod moves;
pub mod overlay;

pub use moves::HeadMove;

use bson::doc;

use crate::{Store, StoreError, collections, docs::HeadDoc, is_duplicate_key};

impl Store {
    /// A chat's head, seeded from its chat document when it has none yet; `None` when
    /// there is no such chat.
    pub async fn head(&self, chat_id: &str) -> Result<Option<HeadDoc>, StoreError> {
        if let Some(head) = self.heads().find_one(doc! { "_id": chat_id }).await? {
            return Ok(Some(head));
        }
        // The chat document's own fields, read as a head (its `_id` is the chat's).
        let Some(mut seeded) = self
            .db
            .collection::<HeadDoc>(collections::CHATS)
            .find_one(doc! { "_id": chat_id })
            .projection(doc! { "_id": 1, "last_seq": 1, "last_message": 1, "updated_at": 1, "history_visibility": 1 })
            .await?
        else {
            return Ok(None);
        };
        // A chat document without the field predates it and means the default.
        seeded.history_visibility.get_or_insert_default();
        if self.insert_head(&seeded).await? {
            return Ok(Some(seeded));
        }
        // Another writer seeded it first, and may have moved it since.
        Ok(self.heads().find_one(doc! { "_id": chat_id }).await?)
    }

    /// The highest seq reserved in a chat (every message's `seq` and `updated_seq` is
    /// at most this); `None` when there is no such chat.
    pub async fn last_seq(&self, chat_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.head(chat_id).await?.map(|head| u64::try_from(head.last_seq).unwrap_or(0)))
    }

    /// Inserts a head unless the chat has one; true when this call inserted it.
    pub(crate) async fn insert_head(&self, head: &HeadDoc) -> Result<bool, StoreError> {
        self.writes.admit("insert_head")?;
        match self.heads().insert_one(head).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}
