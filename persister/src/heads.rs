//! The `last_seq` of each chat a partition pipeline has written, remembered between
//! batches. One owner at a time handles a partition's commands, so what it wrote last
//! is normally what the chat holds, and a run of sends can reserve its seqs and set the
//! chat's preview in one compare-and-set update instead of an `$inc` and a second
//! update. The store stays the judge: the update names the `last_seq` it expects, and
//! a chat whose update does not match (a previous owner still writing, a command that
//! reserved seqs another way) is read again.

use std::collections::HashMap;

/// Known `last_seq` per chat; dropped with its pipeline, so a partition that changes
/// hands starts from what the store says.
#[derive(Debug, Default)]
pub struct ChatHeads {
    last_seq: HashMap<String, u64>,
}

/// Most chats remembered; beyond it the map starts over (a partition's busy chats come
/// back after one read each).
const MAX_CHATS: usize = 100_000;

impl ChatHeads {
    /// The `last_seq` this pipeline believes the chat has.
    pub fn get(&self, chat_id: &str) -> Option<u64> {
        self.last_seq.get(chat_id).copied()
    }

    /// Records what the chat now holds.
    pub fn set(&mut self, chat_id: &str, last_seq: u64) {
        if self.last_seq.len() >= MAX_CHATS && !self.last_seq.contains_key(chat_id) {
            self.last_seq.clear();
        }
        self.last_seq.insert(chat_id.to_owned(), last_seq);
    }

    /// Forgets a chat whose `last_seq` may have moved without this pipeline's knowing.
    pub fn forget(&mut self, chat_id: &str) {
        self.last_seq.remove(chat_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_forgotten() {
        let mut heads = ChatHeads::default();
        assert_eq!(heads.get("c1"), None);
        heads.set("c1", 7);
        heads.set("c1", 9);
        assert_eq!(heads.get("c1"), Some(9));
        heads.forget("c1");
        assert_eq!(heads.get("c1"), None);
    }

    #[test]
    fn starts_over_when_full() {
        let mut heads = ChatHeads::default();
        for n in 0..MAX_CHATS {
            heads.set(&format!("c{n}"), 1);
        }
        heads.set("c0", 2);
        assert_eq!(heads.get("c1"), Some(1), "updating a known chat keeps the rest");
        heads.set("new", 3);
        assert_eq!(heads.get("new"), Some(3));
        assert_eq!(heads.get("c1"), None, "a new chat beyond the bound clears the others");
    }
}
