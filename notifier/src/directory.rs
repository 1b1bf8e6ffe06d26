//! Chat members, titles and sender names for push requests, remembered for a while:
//! they change rarely and every new message needs them. What is known of a chat is
//! forgotten as soon as an event that can change it is seen (see [`Invalidations`]);
//! names change only through the directory, which announces nothing, so everything
//! also expires after [`TTL`].

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_store::{Store, StoreError, chats::ChatLabel, participants::MemberFlags};
use futures::{FutureExt, StreamExt, stream::SelectAll};

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

/// Members, titles and names, read through.
#[derive(Debug)]
pub struct Directory {
    members: Remembered<Vec<MemberFlags>>,
    labels: Remembered<ChatLabel>,
    names: Remembered<String>,
    /// False once invalidations can no longer be trusted: members are then read every
    /// time.
    keeps_members: bool,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            members: Remembered::new(),
            labels: Remembered::new(),
            names: Remembered::new(),
            keeps_members: true,
        }
    }
}

impl Directory {
    /// A chat's members with their mute flags.
    pub async fn members(&mut self, store: &Store, chat_id: &str) -> Result<Vec<MemberFlags>, StoreError> {
        let now = Instant::now();
        if let Some(members) = self.members.get(chat_id, now) {
            return Ok(members);
        }
        let members = store.member_flags(chat_id).await?;
        // A chat without members is one whose creation may not be visible yet.
        if self.keeps_members && !members.is_empty() {
            self.members.put(chat_id, members.clone(), now);
        }
        Ok(members)
    }

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
        self.members.forget(chat_id);
        self.labels.forget(chat_id);
    }

    /// Forgets every chat.
    pub fn forget_all(&mut self) {
        self.members.entries.clear();
        self.labels.entries.clear();
    }
}

/// Membership and chat events, heard on core NATS by every notifier replica, whichever
/// replica's consumer handles them: an entry of a chat whose members changed is dropped
/// before the next `CHAT_EVT` message is handled. The persister publishes a chat's
/// `member.*` event and gets it stored before it publishes the chat's next message, and
/// one server writes both to this connection in that order, so the invalidation is
/// already queued when the message arrives. Across a cluster the two travel different
/// routes; an overtaken invalidation leaves an entry stale for at most [`TTL`]. A
/// reconnect (anything may have been missed) forgets everything.
pub struct Invalidations {
    client: async_nats::Client,
    events: SelectAll<async_nats::Subscriber>,
    connects: u64,
}

impl Invalidations {
    /// Subscribes to the events that change a chat's members or title.
    pub async fn subscribe(client: &async_nats::Client) -> Result<Self, async_nats::SubscribeError> {
        let members = client.subscribe(chat_nats::subjects::EVT_MEMBERS_ALL).await?;
        let chats = client.subscribe(chat_nats::subjects::EVT_CHATS_ALL).await?;
        let connects = client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Invalidations { client: client.clone(), events: futures::stream::select_all([members, chats]), connects })
    }

    /// Applies every invalidation received so far.
    pub fn apply(&mut self, directory: &mut Directory) {
        let connects = self.client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed);
        if connects != self.connects {
            self.connects = connects;
            directory.forget_all();
        }
        loop {
            match self.events.next().now_or_never() {
                Some(Some(event)) => match chat_nats::subjects::chat_id_of(&event.subject) {
                    Some(chat_id) => directory.forget_chat(chat_id),
                    None => directory.forget_all(),
                },
                Some(None) => {
                    tracing::warn!("membership invalidations ended; reading members for every message");
                    directory.keeps_members = false;
                    directory.forget_all();
                    return;
                }
                None => return,
            }
        }
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
