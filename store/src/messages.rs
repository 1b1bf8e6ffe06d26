//! Queries on `messages`.

use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::InsertManyOptions;

use crate::{
    Store, StoreError,
    chats::ReadBounds,
    docs::{MessageDoc, bson_seq},
};

/// The idempotency key of a send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SendKey {
    /// Chat.
    pub chat_id: String,
    /// Sender.
    pub sender_id: String,
    /// The sender's key.
    pub client_msg_id: String,
}

impl SendKey {
    /// The key of a stored message.
    pub fn of(message: &MessageDoc) -> Self {
        SendKey {
            chat_id: message.chat_id.clone(),
            sender_id: message.sender_id.clone(),
            client_msg_id: message.client_msg_id.clone(),
        }
    }
}

/// The seq windows `[lo, hi)` a paged read queries, one after the other, walking away
/// from where the page starts.
///
/// The MongoDB-compatible store walks the whole index range of a query bounded on one
/// side only, even under a limit (`{chat_id, seq: {$lt: X}}` sorted by seq: seconds in a
/// chat of a million messages), and scans all of a range bounded on both sides even
/// under a limit, so it costs what the range spans. So a page is read as windows about
/// the size of the page, bounded on both sides: the first `2 × limit` seqs wide (edits,
/// deletes and membership events consume seqs too, so `limit` seqs rarely hold `limit`
/// messages), each next one twice as wide as the one before, the
/// last one cut at the end of the range: seq 1 going back, the chat's `last_seq` going
/// forward. A page of a chat without gaps is one query; a gap of `g` seqs costs about
/// `log2(g / limit)` more; the seqs visited are never more than about twice those the
/// page spans. On MongoDB, where a one-sided bound is cheap already, the same windows
/// return the same page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Windows {
    /// Newest first (windows move down towards seq 1) or oldest first (up towards the end).
    descending: bool,
    /// Where the next window starts: its exclusive upper bound going down, its inclusive
    /// lower bound going up.
    edge: i64,
    /// Where the windows stop: the lowest seq (1) going down, one above the highest going up.
    end: i64,
    /// The next window's width in seqs.
    width: i64,
}

impl Windows {
    /// Windows below `below` (exclusive), down to seq 1.
    #[cfg(test)]
    fn descending(below: i64, limit: u32) -> Self {
        Self::descending_to(below, 1, limit)
    }

    /// Windows below `below` (exclusive), down to `lowest` (inclusive).
    fn descending_to(below: i64, lowest: i64, limit: u32) -> Self {
        Windows { descending: true, edge: below, end: lowest, width: Self::first_width(limit) }
    }

    /// Windows from `from` (inclusive) up to `above` (exclusive).
    fn ascending(from: i64, above: i64, limit: u32) -> Self {
        Windows { descending: false, edge: from, end: above, width: Self::first_width(limit) }
    }

    fn first_width(limit: u32) -> i64 {
        i64::from(limit.max(1)) * 2
    }
}

impl Iterator for Windows {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<(i64, i64)> {
        let window = if self.descending {
            if self.edge <= self.end {
                return None;
            }
            let lo = self.edge.saturating_sub(self.width).max(self.end);
            let window = (lo, self.edge);
            self.edge = lo;
            window
        } else {
            if self.edge >= self.end {
                return None;
            }
            let hi = self.edge.saturating_add(self.width).min(self.end);
            let window = (self.edge, hi);
            self.edge = hi;
            window
        };
        self.width = self.width.saturating_mul(2);
        Some(window)
    }
}

/// Which page of history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// Newest first, optionally strictly older than a seq.
    Before(Option<u64>),
    /// Oldest first, strictly newer than a seq.
    After(u64),
}

impl Store {
    /// Messages that already exist for these `(chat, sender, client_msg_id)` keys, in
    /// one round trip.
    pub async fn existing_sends(&self, keys: &[SendKey]) -> Result<Vec<MessageDoc>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let alternatives: Vec<Document> = keys
            .iter()
            .map(|key| {
                doc! { "chat_id": &key.chat_id, "sender_id": &key.sender_id, "client_msg_id": &key.client_msg_id }
            })
            .collect();
        Ok(self.messages().find(doc! { "$or": alternatives }).await?.try_collect().await?)
    }

    /// Inserts messages in one round trip; returns the positions of those refused
    /// because a message with the same send key is stored (a client sending a key again,
    /// or a redelivered command), which are skipped while everything else is written.
    pub async fn insert_messages(&self, messages: &[MessageDoc]) -> Result<Vec<usize>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        self.writes.admit("insert_messages")?;
        let options = InsertManyOptions::builder().ordered(false).build();
        match self.messages().insert_many(messages).with_options(options).await {
            Ok(_) => Ok(Vec::new()),
            Err(error) => send_key_clashes(&error).ok_or_else(|| error.into()),
        }
    }

    /// One message of a chat.
    pub async fn message(&self, chat_id: &str, message_id: &str) -> Result<Option<MessageDoc>, StoreError> {
        Ok(self.messages().find_one(doc! { "_id": message_id, "chat_id": chat_id }).await?)
    }

    /// A page of history, with tombstones: newest first before a seq (or from the newest
    /// message), or oldest first after one. Reads the chat's `last_seq` (a projection),
    /// then bounded [`Windows`] of `seq`; no chat, no page.
    pub async fn history(&self, chat_id: &str, page: HistoryPage, limit: u32) -> Result<Vec<MessageDoc>, StoreError> {
        let Some(bounds) = self.read_bounds(chat_id, false).await? else { return Ok(Vec::new()) };
        self.history_within(chat_id, &bounds, page, limit, None).await
    }

    /// [`Store::history`] as `user_id` reads it; `None` when they are not a member. In a
    /// `since_join` chat, nothing from before they joined. Their membership and the
    /// chat's `last_seq` and visibility are point reads made at the same time, so a page
    /// waits for two round trips to the store, not three.
    pub async fn member_history(
        &self,
        chat_id: &str,
        user_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> Result<Option<Vec<MessageDoc>>, StoreError> {
        let (member, bounds) = futures::try_join!(self.participant(chat_id, user_id), self.read_bounds(chat_id, true))?;
        let Some(member) = member else { return Ok(None) };
        let joined_seq = u64::try_from(member.joined_seq).unwrap_or(0);
        let Some(bounds) = bounds else { return Ok(Some(Vec::new())) };
        Ok(Some(self.history_within(chat_id, &bounds, page, limit, Some(joined_seq)).await?))
    }

    async fn history_within(
        &self,
        chat_id: &str,
        bounds: &ReadBounds,
        page: HistoryPage,
        limit: u32,
        joined_seq: Option<u64>,
    ) -> Result<Vec<MessageDoc>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let first_seq = joined_seq.map_or(1, |joined| bounds.history_visibility.first_readable_seq(joined));
        let above_last = bounds.last_seq.max(0).saturating_add(1);
        let first = bson_seq(first_seq).max(1);
        let windows = match page {
            HistoryPage::Before(before) => {
                Windows::descending_to(before.map_or(above_last, |seq| bson_seq(seq).min(above_last)), first, limit)
            }
            HistoryPage::After(seq) => {
                Windows::ascending(bson_seq(seq).saturating_add(1).max(first), above_last, limit)
            }
        };
        self.read_windows(chat_id, "seq", windows, limit, first).await
    }

    /// Up to `limit` messages of a chat in `field` order (`seq` or `updated_seq`) whose
    /// `seq` is at least `first_seq`, read window by window until the page is full or the
    /// windows run out.
    async fn read_windows(
        &self,
        chat_id: &str,
        field: &str,
        windows: Windows,
        limit: u32,
        first_seq: i64,
    ) -> Result<Vec<MessageDoc>, StoreError> {
        let order = if windows.descending { -1 } else { 1 };
        let limit = limit as usize;
        let mut page = Vec::new();
        for (lo, hi) in windows {
            let wanted = i64::try_from(limit - page.len()).unwrap_or(i64::MAX);
            let mut filter = doc! { "chat_id": chat_id, field: { "$gte": lo, "$lt": hi } };
            // A change window of `updated_seq` also holds edits of older messages.
            if field != "seq" && first_seq > 1 {
                filter.insert("seq", doc! { "$gte": first_seq });
            }
            let found: Vec<MessageDoc> =
                self.messages().find(filter).sort(doc! { field: order }).limit(wanted).await?.try_collect().await?;
            page.extend(found);
            if page.len() >= limit {
                break;
            }
        }
        Ok(page)
    }

    /// Messages others sent after `after_seq` up to the chat's `last_seq` that are not
    /// deleted: the unread count.
    ///
    /// The seq range sits in a one-branch `$or`: with the range and the other conditions
    /// side by side the MongoDB-compatible store walks the whole chat (4.5 s in a chat of a
    /// million messages for five unread), with the range in its own branch it scans the
    /// range alone (about a millisecond); MongoDB reads both forms the same way.
    pub async fn count_unread(
        &self,
        chat_id: &str,
        user_id: &str,
        after_seq: u64,
        last_seq: u64,
    ) -> Result<u64, StoreError> {
        if after_seq >= last_seq {
            return Ok(0);
        }
        Ok(self
            .messages()
            .count_documents(doc! {
                "$or": [ { "chat_id": chat_id, "seq": { "$gt": bson_seq(after_seq), "$lte": bson_seq(last_seq) } } ],
                "sender_id": { "$ne": user_id },
                "deleted_at": null,
            })
            .await?)
    }
}

impl Store {
    /// The chat of each of these messages that exists.
    pub async fn chats_of_messages(&self, message_ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<MessageDoc> =
            self.messages().find(doc! { "_id": { "$in": message_ids } }).await?.try_collect().await?;
        Ok(found.into_iter().map(|m| (m.id, m.chat_id)).collect())
    }
}

impl Store {
    /// Edits a message's text at change `seq`, recording the command that did it;
    /// returns the message after.
    pub async fn edit_message(
        &self,
        chat_id: &str,
        message_id: &str,
        text: &str,
        seq: u64,
        command_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<MessageDoc>, StoreError> {
        let set = doc! {
            "text": text,
            "edited_at": bson::DateTime::from_chrono(at),
            "updated_seq": crate::docs::bson_seq(seq),
            "last_command": command_id,
        };
        self.update_message(chat_id, message_id, set).await
    }

    /// Deletes a message, leaving its tombstone (no text) at change `seq`, recording the
    /// command that did it; returns the tombstone.
    pub async fn delete_message(
        &self,
        chat_id: &str,
        message_id: &str,
        seq: u64,
        command_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<MessageDoc>, StoreError> {
        let set = doc! {
            "text": "",
            "deleted_at": bson::DateTime::from_chrono(at),
            "updated_seq": crate::docs::bson_seq(seq),
            "last_command": command_id,
        };
        self.update_message(chat_id, message_id, set).await
    }

    /// Applies a `$set` to a message (the typed operations above, and tests that write
    /// what a crash leaves).
    pub async fn update_message(
        &self,
        chat_id: &str,
        message_id: &str,
        set: bson::Document,
    ) -> Result<Option<MessageDoc>, StoreError> {
        self.writes.admit("update_message")?;
        Ok(self
            .messages()
            .find_one_and_update(doc! { "_id": message_id, "chat_id": chat_id }, doc! { "$set": set })
            .return_document(mongodb::options::ReturnDocument::After)
            .await?)
    }

    /// Changes after `after_seq` up to the chat's `last_seq` (created, edited or
    /// deleted), oldest change first, read in bounded [`Windows`] of `updated_seq`.
    pub async fn changes_since(
        &self,
        chat_id: &str,
        after_seq: u64,
        last_seq: u64,
        limit: u32,
    ) -> Result<Vec<MessageDoc>, StoreError> {
        self.changes_since_from(chat_id, after_seq, last_seq, limit, 1).await
    }

    /// [`Store::changes_since`] of the messages from `first_seq` on only (a change is
    /// at or after its message, so the windows start there too): what a member of a
    /// `since_join` chat syncs.
    pub async fn changes_since_from(
        &self,
        chat_id: &str,
        after_seq: u64,
        last_seq: u64,
        limit: u32,
        first_seq: u64,
    ) -> Result<Vec<MessageDoc>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let first = bson_seq(first_seq).max(1);
        let windows = Windows::ascending(
            bson_seq(after_seq).saturating_add(1).max(first),
            bson_seq(last_seq).saturating_add(1),
            limit,
        );
        self.read_windows(chat_id, "updated_seq", windows, limit, first).await
    }
}

/// The positions of the documents an unordered insert refused for their send key alone;
/// `None` when anything else failed (a clash on the seq index would lose a message).
fn send_key_clashes(error: &mongodb::error::Error) -> Option<Vec<usize>> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            let refused = failure.write_errors.as_ref()?;
            refused
                .iter()
                .map(|refusal| {
                    (refusal.code == 11000 && !refusal.message.contains("chat_seq_unique")).then_some(refusal.index)
                })
                .collect()
        }
        ErrorKind::Write(WriteFailure::WriteError(refusal))
            if refusal.code == 11000 && !refusal.message.contains("chat_seq_unique") =>
        {
            Some(vec![0])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Windows;

    #[test]
    fn windows_going_back_double_and_stop_at_seq_1() {
        let windows: Vec<_> = Windows::descending(1_000, 50).collect();
        assert_eq!(windows, [(900, 1_000), (700, 900), (300, 700), (1, 300)]);
    }

    #[test]
    fn windows_going_forward_double_and_stop_at_the_end() {
        let windows: Vec<_> = Windows::ascending(11, 500, 25).collect();
        assert_eq!(windows, [(11, 61), (61, 161), (161, 361), (361, 500)]);
    }

    #[test]
    fn windows_going_back_stop_at_the_first_readable_seq() {
        let windows: Vec<_> = Windows::descending_to(1_000, 650, 50).collect();
        assert_eq!(windows, [(900, 1_000), (700, 900), (650, 700)]);
        assert_eq!(Windows::descending_to(650, 650, 50).next(), None, "nothing below the floor");
    }

    #[test]
    fn an_empty_range_has_no_window() {
        assert_eq!(Windows::descending(1, 50).next(), None);
        assert_eq!(Windows::descending(0, 50).next(), None);
        assert_eq!(Windows::ascending(8, 8, 50).next(), None);
        assert_eq!(Windows::ascending(9, 8, 50).next(), None);
    }

    #[test]
    fn huge_bounds_saturate_instead_of_overflowing() {
        let windows: Vec<_> = Windows::ascending(i64::MAX - 10, i64::MAX, 50).collect();
        assert_eq!(windows, [(i64::MAX - 10, i64::MAX)]);
        let back: Vec<_> = Windows::descending(i64::MAX, u32::MAX).collect();
        assert!(back.len() < 64, "{back:?}");
        assert_eq!(back.last().map(|window| window.0), Some(1));
        assert!(back.windows(2).all(|pair| pair[1].1 == pair[0].0), "contiguous: {back:?}");
    }
}
