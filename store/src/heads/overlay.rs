//! Heads onto chat documents: what every reader of a chat sees, and the copy the chat
//! document keeps of its head.

use std::collections::HashMap;

use bson::doc;
use futures::TryStreamExt;

use crate::{
    Store, StoreError, collections,
    docs::{ChatDoc, HeadDoc},
};

impl Store {
    /// Each chat with its head's `last_seq` and `last_message`, and the later of the
    /// two `updated_at` (renames and membership changes date the chat document).
    pub(crate) async fn with_heads(&self, mut chats: Vec<ChatDoc>) -> Result<Vec<ChatDoc>, StoreError> {
        if chats.is_empty() {
            return Ok(chats);
        }
        let ids: Vec<&str> = chats.iter().map(|chat| chat.id.as_str()).collect();
        let heads: HashMap<String, HeadDoc> = self
            .heads()
            .find(doc! { "_id": { "$in": ids } })
            .await?
            .map_ok(|head| (head.chat_id.clone(), head))
            .try_collect()
            .await?;
        for chat in &mut chats {
            if let Some(head) = heads.get(&chat.id) {
                apply(chat, head);
            }
        }
        Ok(chats)
    }

    /// [`Store::with_heads`] for at most one chat.
    pub(crate) async fn with_head(&self, chat: Option<ChatDoc>) -> Result<Option<ChatDoc>, StoreError> {
        let Some(mut chat) = chat else { return Ok(None) };
        if let Some(head) = self.heads().find_one(doc! { "_id": &chat.id }).await? {
            apply(&mut chat, &head);
        }
        Ok(Some(chat))
    }

    /// Copies each chat's head into its chat document, in one command; a copy never
    /// replaces a newer one (two replicas may copy the same chat), and a chat document
    /// that already holds its head is not written again.
    pub async fn copy_heads_to_chats(&self, chat_ids: &[String]) -> Result<(), StoreError> {
        if chat_ids.is_empty() {
            return Ok(());
        }
        let heads: Vec<HeadDoc> = self.heads().find(doc! { "_id": { "$in": chat_ids } }).await?.try_collect().await?;
        if heads.is_empty() {
            return Ok(());
        }
        self.writes.admit("copy_heads_to_chats")?;
        let mut updates = Vec::with_capacity(heads.len());
        for head in &heads {
            let last = bson::to_bson(&head.last_message).map_err(|e| StoreError::Bson(e.to_string()))?;
            updates.push(doc! {
                "q": { "_id": &head.chat_id, "$or": [
                    { "last_seq": { "$lt": head.last_seq } },
                    // An edit of the newest message changes the preview's text only.
                    { "last_seq": head.last_seq, "last_message.text": { "$ne": preview_text(head) } },
                ] },
                "u": {
                    "$set": { "last_seq": head.last_seq, "last_message": last },
                    "$max": { "updated_at": bson::DateTime::from_chrono(head.updated_at) },
                },
            });
        }
        self.update_many_statements(collections::CHATS, updates).await?;
        Ok(())
    }
}

fn preview_text(head: &HeadDoc) -> bson::Bson {
    head.last_message.as_ref().map_or(bson::Bson::Null, |last| bson::Bson::String(last.text.clone()))
}

/// What the head says, over what the chat document says.
fn apply(chat: &mut ChatDoc, head: &HeadDoc) {
    if head.last_seq >= chat.last_seq {
        chat.last_seq = head.last_seq;
        chat.last_message = head.last_message.clone();
    }
    chat.updated_at = chat.updated_at.max(head.updated_at);
    if let Some(visibility) = head.history_visibility {
        chat.history_visibility = visibility;
    }
}
