//! What a partition pipeline knows of its chats between batches: each chat's `last_seq`,
//! its moderation mode, and the roles and mutes of the members it has checked. One
//! owner at a time handles a partition's commands, and every membership change,
//! moderation and seq reservation of a chat goes through its partition, so what the
//! pipeline wrote last is normally what the chat holds.
//!
//! - `last_seq` lets a run of sends reserve its seqs and set the chat's preview in one
//!   compare-and-set update instead of an `$inc` and a second update. The store stays
//!   the judge: the update names the `last_seq` it expects, and a chat whose update
//!   does not match (a previous owner still writing) is read again.
//! - Roles, mutes and the mode spare a lookup per send. Every command of a chat other
//!   than a send or a read mark makes the pipeline forget the chat, so a removal, a
//!   role change, a mute or a `chat.moderate` is never answered from memory.
//! - Each member's last accepted send, for slow mode, is kept apart: forgetting a chat
//!   keeps it (a rename does not reset anyone's slow-mode wait).
//!
//! Everything is dropped with the pipeline, so a partition that changes hands starts
//! from what the store says, and slow mode lets each member send once more there.

use std::collections::HashMap;

use chat_nats::model::{ChatMode, Role};
use chrono::{DateTime, Utc};

/// Known chats of one partition pipeline.
#[derive(Debug, Default)]
pub struct KnownChats {
    chats: HashMap<String, Known>,
    last_sends: HashMap<(String, String), DateTime<Utc>>,
}

/// What the pipeline knows of a member: their role and, if muted, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownMember {
    /// Their role in the chat.
    pub role: Role,
    /// Until when a moderator muted them.
    pub muted_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct Known {
    last_seq: Option<u64>,
    mode: Option<ChatMode>,
    members: HashMap<String, KnownMember>,
}

/// Most chats remembered; beyond it the map starts over (a partition's busy chats come
/// back after one read each).
const MAX_CHATS: usize = 100_000;

/// Most last-send times remembered; beyond it the ones older than the longest slow
/// mode go.
const MAX_LAST_SENDS: usize = 200_000;

impl KnownChats {
    /// The `last_seq` this pipeline believes the chat has.
    pub fn last_seq(&self, chat_id: &str) -> Option<u64> {
        self.chats.get(chat_id).and_then(|known| known.last_seq)
    }

    /// Records what the chat's `last_seq` now is.
    pub fn set_last_seq(&mut self, chat_id: &str, last_seq: u64) {
        self.entry(chat_id).last_seq = Some(last_seq);
    }

    /// A member's role and mute, when checked since the chat was last forgotten.
    pub fn member(&self, chat_id: &str, user_id: &str) -> Option<KnownMember> {
        self.chats.get(chat_id).and_then(|known| known.members.get(user_id)).copied()
    }

    /// Records a member's role and mute, as the store gave them.
    pub fn set_member(&mut self, chat_id: &str, user_id: &str, member: KnownMember) {
        self.entry(chat_id).members.insert(user_id.to_owned(), member);
    }

    /// The chat's mode, when read since the chat was last forgotten.
    pub fn mode(&self, chat_id: &str) -> Option<ChatMode> {
        self.chats.get(chat_id).and_then(|known| known.mode)
    }

    /// Records the chat's mode, as the store gave it.
    pub fn set_mode(&mut self, chat_id: &str, mode: ChatMode) {
        self.entry(chat_id).mode = Some(mode);
    }

    /// When this pipeline last stored a message of `user_id` in the chat.
    pub fn last_send(&self, chat_id: &str, user_id: &str) -> Option<DateTime<Utc>> {
        self.last_sends.get(&(chat_id.to_owned(), user_id.to_owned())).copied()
    }

    /// Records a stored message's time, for slow mode.
    pub fn set_last_send(&mut self, chat_id: &str, user_id: &str, at: DateTime<Utc>) {
        if self.last_sends.len() >= MAX_LAST_SENDS {
            let horizon = at - chrono::Duration::seconds(i64::from(chat_nats::commands::MAX_SLOW_MODE_SECONDS));
            self.last_sends.retain(|_, sent| *sent > horizon);
        }
        self.last_sends.insert((chat_id.to_owned(), user_id.to_owned()), at);
    }

    /// Forgets a chat whose `last_seq`, members or mode may have changed.
    pub fn forget(&mut self, chat_id: &str) {
        self.chats.remove(chat_id);
    }

    fn entry(&mut self, chat_id: &str) -> &mut Known {
        if self.chats.len() >= MAX_CHATS && !self.chats.contains_key(chat_id) {
            self.chats.clear();
        }
        self.chats.entry(chat_id.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: KnownMember = KnownMember { role: Role::Owner, muted_until: None };

    #[test]
    fn remembers_until_forgotten() {
        let mut known = KnownChats::default();
        assert_eq!(known.last_seq("c1"), None);
        known.set_last_seq("c1", 7);
        known.set_last_seq("c1", 9);
        known.set_member("c1", "u1", OWNER);
        known.set_mode("c1", ChatMode { frozen: true, ..ChatMode::default() });
        assert_eq!(known.last_seq("c1"), Some(9));
        assert_eq!(known.member("c1", "u1"), Some(OWNER));
        assert_eq!(known.member("c1", "u2"), None);
        assert!(known.mode("c1").is_some_and(|mode| mode.frozen));
        known.forget("c1");
        assert_eq!(known.last_seq("c1"), None);
        assert_eq!(known.member("c1", "u1"), None, "a forgotten chat's members are checked again");
        assert_eq!(known.mode("c1"), None, "a forgotten chat's mode is read again");
    }

    #[test]
    fn last_sends_outlive_forgetting_and_old_ones_go_when_full() {
        let mut known = KnownChats::default();
        let now = Utc::now();
        known.set_last_send("c1", "u1", now);
        known.forget("c1");
        assert_eq!(known.last_send("c1", "u1"), Some(now));
        let old = now - chrono::Duration::hours(2);
        for n in 0..MAX_LAST_SENDS {
            known.set_last_send("c2", &format!("u{n}"), old);
        }
        known.set_last_send("c3", "u1", now);
        assert_eq!(known.last_send("c2", "u0"), None, "sends older than any slow mode go");
        assert_eq!(known.last_send("c1", "u1"), Some(now));
    }

    #[test]
    fn starts_over_when_full() {
        let mut known = KnownChats::default();
        for n in 0..MAX_CHATS {
            known.set_last_seq(&format!("c{n}"), 1);
        }
        known.set_last_seq("c0", 2);
        assert_eq!(known.last_seq("c1"), Some(1), "updating a known chat keeps the rest");
        known.set_member("new", "u1", OWNER);
        assert_eq!(known.member("new", "u1"), Some(OWNER));
        assert_eq!(known.last_seq("c1"), None, "a new chat beyond the bound clears the others");
    }
}
