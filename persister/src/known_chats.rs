//! What a partition pipeline knows of its chats between batches: each chat's `last_seq`
//! and the roles of the members it has checked. One owner at a time handles a
//! partition's commands, and every membership change and seq reservation of a chat
//! goes through its partition, so what the pipeline wrote last is normally what the
//! chat holds.
//!
//! - `last_seq` lets a run of sends reserve its seqs and set the chat's preview in one
//!   compare-and-set update instead of an `$inc` and a second update. The store stays
//!   the judge: the update names the `last_seq` it expects, and a chat whose update
//!   does not match (a previous owner still writing) is read again.
//! - Roles spare a membership lookup per send. Every command of a chat other than a
//!   send or a read mark makes the pipeline forget the chat, so a removal or a role
//!   change is never answered from memory.
//!
//! Everything is dropped with the pipeline, so a partition that changes hands starts
//! from what the store says.

use std::collections::HashMap;

use chat_nats::model::Role;

/// Known chats of one partition pipeline.
#[derive(Debug, Default)]
pub struct KnownChats {
    chats: HashMap<String, Known>,
}

#[derive(Debug, Default)]
struct Known {
    last_seq: Option<u64>,
    roles: HashMap<String, Role>,
}

/// Most chats remembered; beyond it the map starts over (a partition's busy chats come
/// back after one read each).
const MAX_CHATS: usize = 100_000;

impl KnownChats {
    /// The `last_seq` this pipeline believes the chat has.
    pub fn last_seq(&self, chat_id: &str) -> Option<u64> {
        self.chats.get(chat_id).and_then(|known| known.last_seq)
    }

    /// Records what the chat's `last_seq` now is.
    pub fn set_last_seq(&mut self, chat_id: &str, last_seq: u64) {
        self.entry(chat_id).last_seq = Some(last_seq);
    }

    /// A member's role, when it was checked since the chat was last forgotten.
    pub fn role(&self, chat_id: &str, user_id: &str) -> Option<Role> {
        self.chats.get(chat_id).and_then(|known| known.roles.get(user_id)).copied()
    }

    /// Records a member's role, as the store gave it.
    pub fn set_role(&mut self, chat_id: &str, user_id: &str, role: Role) {
        self.entry(chat_id).roles.insert(user_id.to_owned(), role);
    }

    /// Forgets a chat whose `last_seq` or members may have changed.
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

    #[test]
    fn remembers_until_forgotten() {
        let mut known = KnownChats::default();
        assert_eq!(known.last_seq("c1"), None);
        known.set_last_seq("c1", 7);
        known.set_last_seq("c1", 9);
        known.set_role("c1", "u1", Role::Owner);
        assert_eq!(known.last_seq("c1"), Some(9));
        assert_eq!(known.role("c1", "u1"), Some(Role::Owner));
        assert_eq!(known.role("c1", "u2"), None);
        known.forget("c1");
        assert_eq!(known.last_seq("c1"), None);
        assert_eq!(known.role("c1", "u1"), None, "a forgotten chat's members are checked again");
    }

    #[test]
    fn starts_over_when_full() {
        let mut known = KnownChats::default();
        for n in 0..MAX_CHATS {
            known.set_last_seq(&format!("c{n}"), 1);
        }
        known.set_last_seq("c0", 2);
        assert_eq!(known.last_seq("c1"), Some(1), "updating a known chat keeps the rest");
        known.set_role("new", "u1", Role::Member);
        assert_eq!(known.role("new", "u1"), Some(Role::Member));
        assert_eq!(known.last_seq("c1"), None, "a new chat beyond the bound clears the others");
    }
}
