//! Chat titles and sender names for push requests, remembered for a while: they change
//! rarely and every new message needs them. A chat's title is forgotten as soon as an
//! event that can change it arrives (`chat.updated`, membership events); names change
//! only through the directory, which announces nothing, so they expire after
//! [`TTL`]. Memberships are not kept here: who gets a push is read with every message,
//! because another replica may have handled the removal of a member.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_store::{Store, StoreError, chats::ChatLabel};

/// How long a title or a name is used before it is read again.
pub const TTL: Duration = Duration::from_secs(30);

/// Most entries of each kind; beyond it the map starts over.
const MAX_ENTRIES: usize = 50_000;

/// Remembered values, each with the time it was read.
#[derive(Debug)]
struct Remembered<V> {
    entries: HashMap<String, (V, Instant)>,
}

impl<V: Clone> Remembered<V> {
    fn new() -> Self {
        Remembered { entries: HashMap::new() }
    }

    fn get(&self, key: &str, now: Instant) -> Option<V> {
        self.entries.get(key).filter(|(_, at)| now.duration_since(*at) < TTL).map(|(value, _)| value.clone())
    }

    fn put(&mut self, key: &str, value: V, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
            self.entries.clear();
        }
        self.entries.insert(key.to_owned(), (value, now));
    }

    fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// Titles and names, read through.
#[derive(Debug)]
pub struct Directory {
    labels: Remembered<ChatLabel>,
    names: Remembered<String>,
}

impl Default for Directory {
    fn default() -> Self {
        Directory { labels: Remembered::new(), names: Remembered::new() }
    }
}

impl Directory {
    /// A chat's kind and title; `None` when there is no such chat.
    pub async fn label(&mut self, store: &Store, chat_id: &str) -> Result<Option<ChatLabel>, StoreError> {
        let now = Instant::now();
        if let Some(label) = self.labels.get(chat_id, now) {
            return Ok(Some(label));
        }
        let Some(label) = store.chat_label(chat_id).await? else { return Ok(None) };
        self.labels.put(chat_id, label.clone(), now);
        Ok(Some(label))
    }

    /// A user's display name, or their id when the directory has none.
    pub async fn name(&mut self, store: &Store, user_id: &str) -> Result<String, StoreError> {
        let now = Instant::now();
        if let Some(name) = self.names.get(user_id, now) {
            return Ok(name);
        }
        let name = store.user(user_id).await?.map(|user| user.name).unwrap_or_else(|| user_id.to_owned());
        self.names.put(user_id, name.clone(), now);
        Ok(name)
    }

    /// Forgets what is known of a chat whose title or members may have changed.
    pub fn forget_chat(&mut self, chat_id: &str) {
        self.labels.forget(chat_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let mut remembered = Remembered::new();
        let start = Instant::now();
        remembered.put("c1", 1, start);
        assert_eq!(remembered.get("c1", start + TTL / 2), Some(1));
        assert_eq!(remembered.get("c1", start + TTL), None, "expired");
        remembered.put("c1", 2, start);
        remembered.forget("c1");
        assert_eq!(remembered.get("c1", start), None, "forgotten");
    }

    #[test]
    fn a_full_map_starts_over() {
        let mut remembered = Remembered::new();
        let now = Instant::now();
        for n in 0..MAX_ENTRIES {
            remembered.put(&format!("k{n}"), n, now);
        }
        remembered.put("k0", 0, now);
        assert_eq!(remembered.get("k1", now), Some(1));
        remembered.put("new", 7, now);
        assert_eq!(remembered.get("new", now), Some(7));
        assert_eq!(remembered.get("k1", now), None);
    }
}
