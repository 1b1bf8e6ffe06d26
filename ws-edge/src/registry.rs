//! Who is connected to this edge (the seed's ConnectionManager): each local user's
//! connections and chats, each chat's local sockets, and who watches whose presence.
//!
//! Only connects, disconnects, joins and leaves take the registry's lock for writing.
//! Deliveries do not take it at all: each chat with local members has its own list of
//! sockets ([`ChatSockets`]), read by that chat's feed alone, so fan-outs of different
//! chats run on both cores without meeting.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::outbox::ConnHandle;

/// A task that stops when its handle is dropped (a chat feed without local members).
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A chat's feed: its task, and the queue of membership changes it is to make in order
/// with the events it has received.
#[derive(Debug)]
pub struct ChatFeed {
    /// Stops the feed when dropped.
    pub task: AbortOnDrop,
    /// Users who became members before this edge delivered the chat to them, and users
    /// who left.
    pub catch_ups: mpsc::UnboundedSender<FeedRequest>,
}

/// A membership change a chat's feed makes after the events it already received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedRequest {
    /// Replay the chat to a new member, then add them to the fan-out.
    CatchUp(CatchUp),
    /// A user left (told by the notifier): take them out of the fan-out after the
    /// events already received, so the feed delivers their `member.removed` first.
    Leave(String),
}

/// A local user who became a member of a chat through the event stored at
/// `stream_seq` in `CHAT_EVT`: the feed replays from there to their sockets, then adds
/// them to the fan-out, so they get that event and everything after it in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// The new member.
    pub user_id: String,
    /// Where the event that made them a member is stored.
    pub stream_seq: u64,
}

/// The `joined_seq` of a member this edge learnt of without it: edits and deletions
/// in `since_join` chats are withheld from them until they connect again, rather than
/// risk showing what they may not read.
pub const JOINED_SEQ_UNKNOWN: u64 = u64::MAX;

/// One socket a chat's events go to.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// Its user (typing skips its author's sockets).
    pub user_id: Arc<str>,
    /// The connection.
    pub conn: ConnHandle,
    /// The seq of the event that made the user a member: in a `since_join` chat the
    /// edits and deletions of older messages are not theirs to see.
    pub joined_seq: u64,
}

/// The local sockets of one chat.
#[derive(Debug, Default)]
pub struct ChatSockets(Mutex<Vec<Recipient>>);

impl ChatSockets {
    /// The list, locked for one fan-out.
    pub fn lock(&self) -> MutexGuard<'_, Vec<Recipient>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, user_id: &Arc<str>, conn: &ConnHandle, joined_seq: u64) {
        self.lock().push(Recipient { user_id: user_id.clone(), conn: conn.clone(), joined_seq });
    }

    fn remove_conn(&self, conn_id: &str) {
        self.lock().retain(|r| &*r.conn.conn_id != conn_id);
    }

    fn remove_user(&self, user_id: &str) {
        self.lock().retain(|r| &*r.user_id != user_id);
    }

    /// True when some socket of the user receives the chat.
    pub fn has_user(&self, user_id: &str) -> bool {
        self.lock().iter().any(|r| &*r.user_id == user_id)
    }
}

/// Starts the feed of a chat that just got its first local member.
pub type StartFeed<'a> = &'a mut dyn FnMut(&str, Arc<ChatSockets>) -> ChatFeed;

/// Why a connection could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// The user already has the maximum number of connections.
    TooManyConnections,
}

#[derive(Debug, Default)]
struct UserEntry {
    conns: Vec<ConnHandle>,
    /// Chat → the user's `joined_seq` there.
    chats: HashMap<Arc<str>, u64>,
}

#[derive(Debug)]
struct ChatEntry {
    users: HashSet<Arc<str>>,
    sockets: Arc<ChatSockets>,
    feed: ChatFeed,
}

#[derive(Debug, Default)]
struct Maps {
    users: HashMap<Arc<str>, UserEntry>,
    chats: HashMap<Arc<str>, ChatEntry>,
    /// Watched user → the connections watching them.
    watchers: HashMap<Arc<str>, Vec<ConnHandle>>,
    /// Connection → the users it watches.
    watching: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Connection → what it asked to watch, visible or not: checked again when a
    /// membership change may make someone visible or hidden.
    watches: HashMap<Arc<str>, (ConnHandle, Watch)>,
    /// User → the connections whose watch names them (visible or not), so that a
    /// membership change finds the watches it touches without scanning them all.
    named_in: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// The generation of the latest [`Watch`].
    generation: u64,
}

/// A `presence.watch` as its connection asked it; the users followed are those of
/// `user_ids` the api says `viewer` may see.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Who watches.
    pub viewer: chat_nats::commands::Actor,
    /// Everyone named, sorted.
    pub user_ids: Vec<String>,
    /// Tells a later watch of the same connection from this one, so that an answer
    /// for a replaced watch changes nothing.
    pub generation: u64,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    maps: RwLock<Maps>,
    max_conns_per_user: usize,
}

impl Registry {
    /// An empty registry.
    pub fn new(max_conns_per_user: usize) -> Self {
        Registry { maps: RwLock::default(), max_conns_per_user }
    }

    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The chats of `chats` that have no feed on this edge yet.
    pub fn chats_without_feed(&self, chats: &[String]) -> Vec<String> {
        let maps = self.read();
        chats.iter().filter(|chat| !maps.chats.contains_key(chat.as_str())).cloned().collect()
    }

    /// True when the chat has a feed on this edge.
    pub fn has_feed(&self, chat_id: &str) -> bool {
        self.read().chats.contains_key(chat_id)
    }

    /// Adds a connection and its user's chats, each with the user's `joined_seq`.
    pub fn add_connection(
        &self,
        user_id: &str,
        conn: ConnHandle,
        chats: Vec<(String, u64)>,
        start_feed: StartFeed<'_>,
    ) -> Result<(), RegisterError> {
        let mut maps = self.write();
        let (user_key, known) = match maps.users.get_key_value(user_id) {
            Some((_, user)) if user.conns.len() >= self.max_conns_per_user => {
                return Err(RegisterError::TooManyConnections);
            }
            Some((key, user)) => {
                (key.clone(), user.chats.iter().map(|(chat, seq)| (chat.clone(), *seq)).collect::<Vec<_>>())
            }
            None if self.max_conns_per_user == 0 => return Err(RegisterError::TooManyConnections),
            None => (Arc::from(user_id), Vec::new()),
        };
        for (chat_id, joined_seq) in &known {
            if let Some(chat) = maps.chats.get(chat_id) {
                chat.sockets.add(&user_key, &conn, *joined_seq);
            }
        }
        maps.users.entry(user_key.clone()).or_default().conns.push(conn);
        for (chat_id, joined_seq) in chats {
            Self::join_locked(&mut maps, &user_key, &chat_id, joined_seq, start_feed);
        }
        Ok(())
    }

    /// Removes a connection; the last one of a user drops the user's chats.
    pub fn remove_connection(&self, user_id: &str, conn_id: &str) {
        let mut maps = self.write();
        Self::unwatch_locked(&mut maps, conn_id);
        Self::forget_watch_locked(&mut maps, conn_id);
        let Some(user) = maps.users.get_mut(user_id) else { return };
        user.conns.retain(|conn| &*conn.conn_id != conn_id);
        let last = user.conns.is_empty();
        let chats: Vec<Arc<str>> = user.chats.keys().cloned().collect();
        if !last {
            for chat_id in &chats {
                if let Some(chat) = maps.chats.get(chat_id) {
                    chat.sockets.remove_conn(conn_id);
                }
            }
            return;
        }
        maps.users.remove(user_id);
        for chat_id in chats {
            Self::drop_member_locked(&mut maps, user_id, &chat_id);
        }
    }

    /// A local user joined a chat at `joined_seq`. Returns false when the user has no
    /// connection here.
    pub fn join(&self, user_id: &str, chat_id: &str, joined_seq: u64, start_feed: StartFeed<'_>) -> bool {
        let mut maps = self.write();
        let Some((user_key, _)) = maps.users.get_key_value(user_id) else { return false };
        let user_key = user_key.clone();
        Self::join_locked(&mut maps, &user_key, chat_id, joined_seq, start_feed);
        true
    }

    fn join_locked(maps: &mut Maps, user_id: &Arc<str>, chat_id: &str, joined_seq: u64, start_feed: StartFeed<'_>) {
        if let Some((chat, conns)) = Self::add_member_locked(maps, user_id, chat_id, joined_seq, start_feed) {
            for conn in &conns {
                chat.sockets.add(user_id, conn, joined_seq);
            }
        }
    }

    /// Records the membership and returns the chat with the user's connections, or
    /// nothing when the user is not here or already a member.
    fn add_member_locked<'m>(
        maps: &'m mut Maps,
        user_id: &Arc<str>,
        chat_id: &str,
        joined_seq: u64,
        start_feed: StartFeed<'_>,
    ) -> Option<(&'m mut ChatEntry, Vec<ConnHandle>)> {
        let user = maps.users.get_mut(user_id)?;
        if user.chats.contains_key(chat_id) {
            return None;
        }
        let conns = user.conns.clone();
        let chat_key: Arc<str> = match maps.chats.get_key_value(chat_id) {
            Some((key, _)) => key.clone(),
            None => Arc::from(chat_id),
        };
        user.chats.insert(chat_key.clone(), joined_seq);
        let chat = maps.chats.entry(chat_key).or_insert_with_key(|key| {
            let sockets = Arc::new(ChatSockets::default());
            let feed = start_feed(key, sockets.clone());
            ChatEntry { users: HashSet::new(), sockets, feed }
        });
        chat.users.insert(user_id.clone());
        Some((chat, conns))
    }

    /// A local user became a member through an event this edge may not have delivered
    /// to them: the membership counts at once (their commands are accepted), and the
    /// chat's feed replays from `catch_up.stream_seq` to their sockets before it adds
    /// them to the fan-out. Returns false when the user is not here or already a member.
    pub fn join_from(&self, chat_id: &str, catch_up: CatchUp, start_feed: StartFeed<'_>) -> bool {
        let mut maps = self.write();
        let Some((user_key, _)) = maps.users.get_key_value(catch_up.user_id.as_str()) else { return false };
        let user_key = user_key.clone();
        // The feed learns the `joined_seq` from the event it replays first.
        let Some((chat, _)) = Self::add_member_locked(&mut maps, &user_key, chat_id, JOINED_SEQ_UNKNOWN, start_feed)
        else {
            return false;
        };
        // The feed's end of the queue lives as long as its entry; a send fails only for
        // a feed that has stopped, and then nothing is delivered anyway.
        let _ = chat.feed.catch_ups.send(FeedRequest::CatchUp(catch_up));
        true
    }

    /// Adds every connection of a local user to the sockets of a chat this edge
    /// delivers, recording the membership if it was not known; called by the chat's
    /// feed right before the event that makes the user a member (at `joined_seq`), or
    /// after replaying to them. A user whose sockets receive the chat already keeps
    /// their `joined_seq`: a role change is not a new join. Returns false when the user
    /// is not here or the chat has no feed.
    pub fn attach(&self, user_id: &str, chat_id: &str, joined_seq: u64) -> bool {
        let mut maps = self.write();
        let Some((user_key, user)) = maps.users.get_key_value(user_id) else { return false };
        let (user_key, conns) = (user_key.clone(), user.conns.clone());
        let Some((chat_key, chat)) = maps.chats.get_key_value(chat_id) else { return false };
        let chat_key = chat_key.clone();
        let attached: Vec<Recipient> = {
            let mut sockets = chat.sockets.lock();
            // A replay that found no joining event left the seq unknown; the event,
            // delivered live right after, tells it.
            for recipient in sockets.iter_mut().filter(|r| r.user_id == user_key && r.joined_seq == JOINED_SEQ_UNKNOWN)
            {
                recipient.joined_seq = joined_seq;
            }
            sockets.iter().filter(|r| r.user_id == user_key).cloned().collect()
        };
        let joined_seq = attached.first().map_or(joined_seq, |r| r.joined_seq);
        for conn in conns.iter().filter(|conn| attached.iter().all(|r| r.conn.conn_id != conn.conn_id)) {
            chat.sockets.add(&user_key, conn, joined_seq);
        }
        if let Some(chat) = maps.chats.get_mut(chat_id) {
            chat.users.insert(user_key.clone());
        }
        if let Some(user) = maps.users.get_mut(user_id) {
            user.chats.insert(chat_key, joined_seq);
        }
        true
    }

    /// A local user left a chat, as told apart from the chat's own events (by the
    /// notifier): the chat's feed takes them out once it has handled the events it
    /// already received (the removal among them: NATS delivered it to this edge before
    /// the notice), or at once when this edge has no feed of the chat.
    pub fn leave_after_feed(&self, user_id: &str, chat_id: &str) {
        let queued = self
            .read()
            .chats
            .get(chat_id)
            .is_some_and(|chat| chat.feed.catch_ups.send(FeedRequest::Leave(user_id.to_owned())).is_ok());
        if !queued {
            self.leave(user_id, chat_id);
        }
    }

    /// A local user left a chat: nothing more of it reaches their sockets.
    pub fn leave(&self, user_id: &str, chat_id: &str) {
        let mut maps = self.write();
        if let Some(user) = maps.users.get_mut(user_id) {
            user.chats.remove(chat_id);
        }
        Self::drop_member_locked(&mut maps, user_id, chat_id);
    }

    fn drop_member_locked(maps: &mut Maps, user_id: &str, chat_id: &str) {
        let empty = maps.chats.get_mut(chat_id).is_some_and(|chat| {
            chat.users.remove(user_id);
            chat.sockets.remove_user(user_id);
            chat.users.is_empty()
        });
        if empty {
            maps.chats.remove(chat_id);
        }
    }

    /// True when the user belongs to the chat, as far as this edge knows.
    pub fn is_member(&self, user_id: &str, chat_id: &str) -> bool {
        self.read().users.get(user_id).is_some_and(|user| user.chats.contains_key(chat_id))
    }

    /// True when the user has a connection here.
    pub fn has_user(&self, user_id: &str) -> bool {
        self.read().users.contains_key(user_id)
    }

    /// The connections of one user.
    pub fn connections_of(&self, user_id: &str) -> Vec<ConnHandle> {
        self.read().users.get(user_id).map(|user| user.conns.clone()).unwrap_or_default()
    }

    /// One connection of a user.
    pub fn connection(&self, user_id: &str, conn_id: &str) -> Option<ConnHandle> {
        let maps = self.read();
        maps.users.get(user_id)?.conns.iter().find(|conn| &*conn.conn_id == conn_id).cloned()
    }

    /// Replaces what a connection watches with `user_ids` (sorted), following nobody
    /// until [`Registry::follow`] says whom; `None` when the connection is gone.
    pub fn request_watch(
        &self,
        viewer: chat_nats::commands::Actor,
        conn_id: &str,
        user_ids: Vec<String>,
    ) -> Option<Watch> {
        let mut maps = self.write();
        Self::unwatch_locked(&mut maps, conn_id);
        Self::forget_watch_locked(&mut maps, conn_id);
        let conn = maps.users.get(viewer.user_id.as_str())?.conns.iter().find(|c| &*c.conn_id == conn_id)?.clone();
        maps.generation += 1;
        let watch = Watch { viewer, user_ids, generation: maps.generation };
        if !watch.user_ids.is_empty() {
            for user_id in &watch.user_ids {
                maps.named_in.entry(Arc::from(user_id.as_str())).or_default().insert(conn.conn_id.clone());
            }
            maps.watches.insert(conn.conn_id.clone(), (conn, watch.clone()));
        }
        Some(watch)
    }

    fn forget_watch_locked(maps: &mut Maps, conn_id: &str) {
        let Some((_, watch)) = maps.watches.remove(conn_id) else { return };
        for user_id in &watch.user_ids {
            let empty = maps.named_in.get_mut(user_id.as_str()).is_some_and(|conns| {
                conns.remove(conn_id);
                conns.is_empty()
            });
            if empty {
                maps.named_in.remove(user_id.as_str());
            }
        }
    }

    /// The watches a membership change of `user_ids` may change: those of the users
    /// themselves, and those naming one of them.
    pub fn watches_touched_by(&self, user_ids: &[&str]) -> Vec<(ConnHandle, Watch)> {
        let maps = self.read();
        let mut conns: HashSet<&Arc<str>> = HashSet::new();
        for user_id in user_ids {
            conns.extend(maps.named_in.get(*user_id).into_iter().flatten());
            let own = maps.users.get(*user_id).into_iter().flat_map(|user| &user.conns);
            conns.extend(own.map(|conn| &conn.conn_id).filter(|conn_id| maps.watches.contains_key(*conn_id)));
        }
        conns.into_iter().filter_map(|conn_id| maps.watches.get(conn_id).cloned()).collect()
    }

    /// Follows `watched` for the connection that asked `watch`, unless it has asked
    /// another since; returns whom it followed before (nobody for a new watch), or
    /// `None` when it asked another watch or is gone.
    pub fn follow(&self, conn_id: &str, watch: &Watch, watched: Vec<String>) -> Option<Vec<Arc<str>>> {
        let mut maps = self.write();
        if maps.watches.get(conn_id).is_none_or(|(_, current)| current.generation != watch.generation) {
            return None;
        }
        let before = maps.watching.get(conn_id).cloned().unwrap_or_default();
        Self::unwatch_locked(&mut maps, conn_id);
        let conn = maps
            .users
            .get(watch.viewer.user_id.as_str())
            .and_then(|u| u.conns.iter().find(|c| &*c.conn_id == conn_id))?;
        let conn = conn.clone();
        let watched: Vec<Arc<str>> = watched.into_iter().map(Arc::from).collect();
        for target in &watched {
            maps.watchers.entry(target.clone()).or_default().push(conn.clone());
        }
        maps.watching.insert(conn.conn_id.clone(), watched);
        Some(before)
    }

    fn unwatch_locked(maps: &mut Maps, conn_id: &str) {
        let Some(previous) = maps.watching.remove(conn_id) else { return };
        for target in previous {
            let empty = maps.watchers.get_mut(&target).is_some_and(|watchers| {
                watchers.retain(|conn| &*conn.conn_id != conn_id);
                watchers.is_empty()
            });
            if empty {
                maps.watchers.remove(&target);
            }
        }
    }

    /// The connections watching a user's presence.
    pub fn watchers_of(&self, watched_user: &str) -> Vec<ConnHandle> {
        self.read().watchers.get(watched_user).cloned().unwrap_or_default()
    }

    /// Every local user with the ids of their connections, for presence heartbeats.
    pub fn connections_by_user(&self) -> Vec<(Arc<str>, Vec<Arc<str>>)> {
        let maps = self.read();
        maps.users
            .iter()
            .map(|(user, entry)| (user.clone(), entry.conns.iter().map(|c| c.conn_id.clone()).collect()))
            .collect()
    }

    /// Local connections.
    pub fn connection_count(&self) -> usize {
        self.read().users.values().map(|user| user.conns.len()).sum()
    }

    /// Every local connection, for shutdown.
    pub fn all_connections(&self) -> Vec<ConnHandle> {
        self.read().users.values().flat_map(|user| user.conns.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, QueueLimits};

    fn conn(id: &str) -> ConnHandle {
        ConnHandle {
            conn_id: Arc::from(id),
            outbox: Arc::new(Outbox::unattached(QueueLimits { max_frames: 10, max_bytes: 1000 })),
        }
    }

    fn idle_feed() -> ChatFeed {
        ChatFeed { task: AbortOnDrop(tokio::spawn(async {})), catch_ups: mpsc::unbounded_channel().0 }
    }

    fn recipients(registry: &Registry, chat_id: &str) -> Vec<String> {
        let maps = registry.read();
        let Some(chat) = maps.chats.get(chat_id) else { return Vec::new() };
        let mut ids: Vec<String> = chat.sockets.lock().iter().map(|r| r.conn.conn_id.to_string()).collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn sockets_follow_connections_joins_and_leaves() {
        let registry = Registry::new(2);
        let mut started = Vec::new();
        let mut start = |chat: &str, _: Arc<ChatSockets>| {
            started.push(chat.to_owned());
            idle_feed()
        };
        registry
            .add_connection("u1", conn("a"), vec![("c1".into(), 1)], &mut start)
            .unwrap_or_else(|e| panic!("{e:?}"));
        registry
            .add_connection("u1", conn("b"), vec![("c1".into(), 1)], &mut start)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            registry.add_connection("u1", conn("c"), vec![], &mut start),
            Err(RegisterError::TooManyConnections)
        );
        registry
            .add_connection("u2", conn("d"), vec![("c1".into(), 1), ("c2".into(), 1)], &mut start)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(recipients(&registry, "c1"), ["a", "b", "d"]);
        assert!(registry.join("u1", "c2", 1, &mut start));
        assert_eq!(recipients(&registry, "c2"), ["a", "b", "d"]);
        registry.remove_connection("u1", "a");
        assert_eq!(recipients(&registry, "c1"), ["b", "d"]);
        registry.leave("u2", "c1");
        assert_eq!(recipients(&registry, "c1"), ["b"]);
        assert!(!registry.is_member("u2", "c1"));
        registry.remove_connection("u1", "b");
        assert!(!registry.has_feed("c1"), "a chat without local members loses its feed");
        assert_eq!(recipients(&registry, "c2"), ["d"]);
        assert!(!registry.join("nobody", "c1", 1, &mut start));
        assert_eq!(started, ["c1", "c2"]);
    }

    #[tokio::test]
    async fn a_leave_told_by_the_notifier_waits_for_the_chats_feed() {
        let registry = Registry::new(10);
        let (requests, mut queued) = mpsc::unbounded_channel();
        let mut start = |_: &str, _: Arc<ChatSockets>| ChatFeed {
            task: AbortOnDrop(tokio::spawn(async {})),
            catch_ups: requests.clone(),
        };
        registry
            .add_connection("u1", conn("a"), vec![("c1".into(), 1)], &mut start)
            .unwrap_or_else(|e| panic!("{e:?}"));
        registry.leave_after_feed("u1", "c1");
        assert_eq!(recipients(&registry, "c1"), ["a"], "still delivered until the feed gets to it");
        assert_eq!(queued.try_recv().ok(), Some(FeedRequest::Leave("u1".into())));
        registry.leave("u1", "c1");
        assert!(recipients(&registry, "c1").is_empty());
        // Without a feed of the chat there is nothing to wait for.
        registry.leave_after_feed("u1", "c9");
        assert!(!registry.is_member("u1", "c9"));
    }

    #[tokio::test]
    async fn a_member_joined_from_an_event_gets_sockets_only_when_the_feed_attaches_them() {
        let registry = Registry::new(10);
        let (catch_ups, mut queued) = mpsc::unbounded_channel();
        let mut start = |_: &str, _: Arc<ChatSockets>| ChatFeed {
            task: AbortOnDrop(tokio::spawn(async {})),
            catch_ups: catch_ups.clone(),
        };
        registry.add_connection("u1", conn("a"), vec![], &mut start).unwrap_or_else(|e| panic!("{e:?}"));
        let catch_up = CatchUp { user_id: "u1".into(), stream_seq: 7 };
        assert!(registry.join_from("c1", catch_up.clone(), &mut start));
        assert!(registry.is_member("u1", "c1"), "commands are accepted at once");
        assert!(recipients(&registry, "c1").is_empty(), "nothing is delivered before the replay");
        assert_eq!(queued.try_recv().ok(), Some(FeedRequest::CatchUp(catch_up.clone())));
        assert!(!registry.join_from("c1", catch_up, &mut start), "a member is not caught up twice");
        assert!(registry.attach("u1", "c1", 1));
        assert!(registry.attach("u1", "c1", 1), "attaching again adds nothing");
        assert_eq!(recipients(&registry, "c1"), ["a"]);
        assert!(!registry.attach("stranger", "c1", 1));
    }

    #[tokio::test]
    async fn a_joined_seq_a_replay_left_unknown_is_learnt_from_the_joining_event() {
        let registry = Registry::new(10);
        let (catch_ups, _queued) = mpsc::unbounded_channel();
        let mut start = |_: &str, _: Arc<ChatSockets>| ChatFeed {
            task: AbortOnDrop(tokio::spawn(async {})),
            catch_ups: catch_ups.clone(),
        };
        registry.add_connection("u1", conn("a"), vec![], &mut start).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(registry.join_from("c1", CatchUp { user_id: "u1".into(), stream_seq: 7 }, &mut start));
        let joined_seqs = |registry: &Registry| -> Vec<u64> {
            let maps = registry.read();
            maps.chats
                .get("c1")
                .map(|chat| chat.sockets.lock().iter().map(|r| r.joined_seq).collect())
                .unwrap_or_default()
        };
        assert!(registry.attach("u1", "c1", JOINED_SEQ_UNKNOWN));
        assert_eq!(joined_seqs(&registry), [JOINED_SEQ_UNKNOWN]);
        assert!(registry.attach("u1", "c1", 5), "the joining event, delivered live");
        assert_eq!(joined_seqs(&registry), [5]);
        assert!(registry.attach("u1", "c1", 9), "a later role change");
        assert_eq!(joined_seqs(&registry), [5], "a known joined_seq stays");
    }

    #[test]
    fn watchers_are_replaced_and_removed_with_their_connection() {
        let registry = Registry::new(10);
        let mut start = |_: &str, _: Arc<ChatSockets>| -> ChatFeed { panic!("no chats here") };
        registry.add_connection("u1", conn("a"), vec![], &mut start).unwrap_or_else(|e| panic!("{e:?}"));
        let viewer = chat_nats::commands::Actor { user_id: "u1".into(), roles: Vec::new() };
        let first = registry.request_watch(viewer.clone(), "a", vec!["x".into(), "y".into(), "z".into()]);
        let first = first.unwrap_or_else(|| panic!("connected"));
        assert_eq!(registry.follow("a", &first, vec!["x".into(), "y".into()]), Some(vec![]));
        assert_eq!(registry.watchers_of("x").len(), 1);
        assert_eq!(registry.watches_touched_by(&["z"]).len(), 1, "a hidden user named in the watch");
        assert_eq!(registry.watches_touched_by(&["u1"]).len(), 1, "the watcher's own membership");
        assert!(registry.watches_touched_by(&["w"]).is_empty());
        let second = registry.request_watch(viewer, "a", vec!["y".into()]).unwrap_or_else(|| panic!("connected"));
        assert_eq!(registry.follow("a", &first, vec!["x".into()]), None, "a replaced watch's answer changes nothing");
        assert!(registry.watchers_of("x").is_empty());
        assert!(registry.follow("a", &second, vec!["y".into()]).is_some());
        registry.remove_connection("u1", "a");
        assert!(registry.watchers_of("y").is_empty());
        assert!(registry.watches_touched_by(&["y"]).is_empty());
    }
}
