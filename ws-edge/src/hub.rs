//! The local registry of connections (the seed's ConnectionManager and HubManager):
//! which users and chats have sockets on this edge, and one NATS subscription per chat
//! with local members and per connected user. An event is serialised once (by the
//! persister) and the same bytes go to every local socket of the chat.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures::StreamExt;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{connection::Outbound, metrics};

/// One connection as the hub sees it.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id.
    pub conn_id: Arc<str>,
    /// The send queue.
    pub tx: mpsc::Sender<Outbound>,
    /// Cancelled to close the connection (slow consumer).
    pub close: CancellationToken,
    /// Why it was closed, when the hub closed it.
    pub close_code: Arc<std::sync::atomic::AtomicU16>,
}

impl ConnHandle {
    /// Queues a frame; a full queue drops droppable frames and closes the connection
    /// for the others (close code 4009).
    pub fn offer(&self, frame: Outbound) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(frame)) => {
                if frame.droppable() {
                    metrics::DROPPED.with_label_values(&["queue_full"]).inc();
                } else {
                    metrics::DROPPED.with_label_values(&["slow_consumer"]).inc();
                    self.close_code.store(crate::close::SLOW_CONSUMER, std::sync::atomic::Ordering::Relaxed);
                    self.close.cancel();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Default)]
struct UserEntry {
    conns: HashMap<Arc<str>, ConnHandle>,
    chats: HashSet<String>,
    subscription: Option<JoinHandle<()>>,
}

struct ChatEntry {
    users: HashSet<String>,
    subscription: JoinHandle<()>,
}

struct WatchEntry {
    /// Watching connections: (user id, conn id).
    watchers: HashSet<(String, Arc<str>)>,
    subscription: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, UserEntry>,
    chats: HashMap<String, ChatEntry>,
    /// Watched user → who watches them and the `presence.changed` subscription.
    watched: HashMap<String, WatchEntry>,
    /// Connection → the users it watches.
    watching: HashMap<Arc<str>, Vec<String>>,
}

/// Why a connection could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// The user already has the maximum number of connections.
    TooManyConnections,
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    state: Arc<RwLock<State>>,
    nats: async_nats::Client,
    max_conns_per_user: usize,
}

impl Hub {
    /// An empty hub.
    pub fn new(nats: async_nats::Client, max_conns_per_user: usize) -> Self {
        Hub { state: Arc::default(), nats, max_conns_per_user }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a connection with the chats its user belongs to. The subscriptions it needs
    /// are in place at the server before this returns (so before `hello`): a join or a
    /// message published afterwards cannot slip past the new connection.
    pub async fn register(&self, user_id: &str, conn: ConnHandle, chats: Vec<String>) -> Result<(), RegisterError> {
        let (needs_user, missing) = {
            let state = self.read();
            let needs_user = state.users.get(user_id).is_none_or(|user| user.subscription.is_none());
            let missing: Vec<String> = chats.iter().filter(|c| !state.chats.contains_key(*c)).cloned().collect();
            (needs_user, missing)
        };
        let user_subscriber = match needs_user {
            true => self.nats.subscribe(chat_nats::subjects::user_all(user_id)).await.ok(),
            false => None,
        };
        let mut prepared = HashMap::new();
        for chat_id in missing {
            if let Some(subscribers) = subscribe_chat(&self.nats, &chat_id).await {
                prepared.insert(chat_id, subscribers);
            }
        }
        if let Err(error) = self.nats.flush().await {
            tracing::warn!(%error, "flush after subscribing failed");
        }

        let mut state = self.write();
        let user = state.users.entry(user_id.to_owned()).or_default();
        if user.conns.len() >= self.max_conns_per_user {
            return Err(RegisterError::TooManyConnections);
        }
        user.conns.insert(conn.conn_id.clone(), conn);
        if user.subscription.is_none() {
            user.subscription = Some(match user_subscriber {
                Some(subscriber) => self.spawn_user_loop(user_id, subscriber),
                None => self.spawn_user_subscription(user_id),
            });
        }
        let known: Vec<String> = chats.into_iter().filter(|chat| !user.chats.contains(chat)).collect();
        for chat_id in known {
            let subscribers = prepared.remove(&chat_id);
            self.join_locked(&mut state, user_id, &chat_id, subscribers);
        }
        Ok(())
    }

    /// Removes a connection; the last one of a user drops the user's chats.
    pub fn unregister(&self, user_id: &str, conn_id: &str) {
        let mut state = self.write();
        self.unwatch_locked(&mut state, user_id, conn_id);
        let Some(user) = state.users.get_mut(user_id) else { return };
        user.conns.remove(conn_id);
        if !user.conns.is_empty() {
            return;
        }
        let Some(user) = state.users.remove(user_id) else { return };
        if let Some(task) = user.subscription {
            task.abort();
        }
        for chat_id in user.chats {
            Self::drop_chat_member(&mut state, user_id, &chat_id);
        }
    }

    fn drop_chat_member(state: &mut State, user_id: &str, chat_id: &str) {
        let empty = state.chats.get_mut(chat_id).is_some_and(|chat| {
            chat.users.remove(user_id);
            chat.users.is_empty()
        });
        if empty && let Some(chat) = state.chats.remove(chat_id) {
            chat.subscription.abort();
        }
    }

    /// A local user left a chat: stop delivering it to them at once.
    pub fn leave(&self, user_id: &str, chat_id: &str) {
        let mut state = self.write();
        if let Some(user) = state.users.get_mut(user_id) {
            user.chats.remove(chat_id);
        }
        Self::drop_chat_member(&mut state, user_id, chat_id);
    }

    /// Replaces the set of users a connection watches.
    pub fn watch(&self, user_id: &str, conn_id: &Arc<str>, watched: Vec<String>) {
        let mut state = self.write();
        self.unwatch_locked(&mut state, user_id, conn_id);
        for target in &watched {
            let key = (user_id.to_owned(), conn_id.clone());
            match state.watched.get_mut(target) {
                Some(entry) => {
                    entry.watchers.insert(key);
                }
                None => {
                    let subscription = self.spawn_presence_subscription(target);
                    state.watched.insert(target.clone(), WatchEntry { watchers: HashSet::from([key]), subscription });
                }
            }
        }
        state.watching.insert(conn_id.clone(), watched);
    }

    fn unwatch_locked(&self, state: &mut State, user_id: &str, conn_id: &str) {
        let Some(previous) = state.watching.remove(conn_id) else { return };
        for target in previous {
            let empty = state.watched.get_mut(&target).is_some_and(|entry| {
                entry.watchers.retain(|(u, c)| !(u == user_id && &**c == conn_id));
                entry.watchers.is_empty()
            });
            if empty && let Some(entry) = state.watched.remove(&target) {
                entry.subscription.abort();
            }
        }
    }

    /// Every local user with the ids of their connections, for presence heartbeats.
    pub fn connections_by_user(&self) -> Vec<(String, Vec<Arc<str>>)> {
        self.read().users.iter().map(|(user, entry)| (user.clone(), entry.conns.keys().cloned().collect())).collect()
    }

    /// A local user joined a chat: deliver it to them from now on.
    /// The chat's subscriptions are in place at the server before this returns.
    pub async fn join(&self, user_id: &str, chat_id: &str) {
        let subscribed = self.read().chats.contains_key(chat_id);
        let subscribers = match subscribed {
            true => None,
            false => {
                let subscribers = subscribe_chat(&self.nats, chat_id).await;
                let _ = self.nats.flush().await;
                subscribers
            }
        };
        let mut state = self.write();
        if state.users.contains_key(user_id) {
            self.join_locked(&mut state, user_id, chat_id, subscribers);
        }
    }

    fn join_locked(&self, state: &mut State, user_id: &str, chat_id: &str, subscribers: Option<ChatSubscribers>) {
        if let Some(user) = state.users.get_mut(user_id) {
            user.chats.insert(chat_id.to_owned());
        }
        if let Some(chat) = state.chats.get_mut(chat_id) {
            chat.users.insert(user_id.to_owned());
            return;
        }
        let subscription = match subscribers {
            Some(subscribers) => self.spawn_chat_loop(chat_id, subscribers),
            None => self.spawn_chat_subscription(chat_id),
        };
        state.chats.insert(chat_id.to_owned(), ChatEntry { users: HashSet::from([user_id.to_owned()]), subscription });
    }

    /// True when the user belongs to the chat, as far as this edge knows.
    pub fn is_member(&self, user_id: &str, chat_id: &str) -> bool {
        self.read().users.get(user_id).is_some_and(|user| user.chats.contains(chat_id))
    }

    /// Local connections.
    pub fn connection_count(&self) -> usize {
        self.read().users.values().map(|user| user.conns.len()).sum()
    }

    /// Every local connection, for shutdown.
    pub fn all_connections(&self) -> Vec<ConnHandle> {
        self.read().users.values().flat_map(|user| user.conns.values().cloned()).collect()
    }

    /// Hands the same bytes to every local socket of the chat's members.
    pub fn deliver_to_chat(&self, chat_id: &str, frame: &Utf8Bytes, kind: &str, persisted_at_micros: Option<i64>) {
        let state = self.read();
        let Some(chat) = state.chats.get(chat_id) else { return };
        for user_id in &chat.users {
            if let Some(user) = state.users.get(user_id) {
                for conn in user.conns.values() {
                    if conn.offer(Outbound::Event { frame: frame.clone(), persisted_at_micros, droppable: false }) {
                        metrics::EVENTS_SENT.with_label_values(&[kind]).inc();
                    }
                }
            }
        }
    }

    /// Hands a live signal to the chat's local sockets; typing is droppable and skips
    /// its author's own sockets.
    pub fn deliver_live(&self, chat_id: &str, frame: &Utf8Bytes, kind: &str, author: Option<&str>, droppable: bool) {
        let state = self.read();
        let Some(chat) = state.chats.get(chat_id) else { return };
        for user_id in &chat.users {
            if author == Some(user_id.as_str()) {
                continue;
            }
            if let Some(user) = state.users.get(user_id) {
                for conn in user.conns.values() {
                    let outbound = Outbound::Event { frame: frame.clone(), persisted_at_micros: None, droppable };
                    if conn.offer(outbound) {
                        metrics::EVENTS_SENT.with_label_values(&[kind]).inc();
                    }
                }
            }
        }
    }

    /// Hands a presence change to every connection watching that user.
    pub fn deliver_presence(&self, watched_user: &str, frame: &Utf8Bytes) {
        let state = self.read();
        let Some(entry) = state.watched.get(watched_user) else { return };
        for (user_id, conn_id) in &entry.watchers {
            if let Some(conn) = state.users.get(user_id).and_then(|user| user.conns.get(conn_id)) {
                let outbound = Outbound::Event { frame: frame.clone(), persisted_at_micros: None, droppable: true };
                if conn.offer(outbound) {
                    metrics::EVENTS_SENT.with_label_values(&["presence"]).inc();
                }
            }
        }
    }

    /// Hands a frame to every local socket of one user.
    pub fn deliver_to_user(&self, user_id: &str, frame: &Utf8Bytes, kind: &str) {
        let state = self.read();
        let Some(user) = state.users.get(user_id) else { return };
        for conn in user.conns.values() {
            if conn.offer(Outbound::Event { frame: frame.clone(), persisted_at_micros: None, droppable: false }) {
                metrics::EVENTS_SENT.with_label_values(&[kind]).inc();
            }
        }
    }

    /// Hands a frame to one connection of a user.
    pub fn deliver_to_conn(&self, user_id: &str, conn_id: &str, frame: Utf8Bytes) {
        let state = self.read();
        if let Some(conn) = state.users.get(user_id).and_then(|user| user.conns.get(conn_id)) {
            conn.offer(Outbound::Frame(frame));
        }
    }

    fn spawn_chat_subscription(&self, chat_id: &str) -> JoinHandle<()> {
        let hub = self.clone();
        let chat_id = chat_id.to_owned();
        tokio::spawn(async move {
            if let Some(subscribers) = subscribe_chat(&hub.nats, &chat_id).await {
                hub.chat_loop(&chat_id, subscribers).await;
            }
        })
    }

    fn spawn_chat_loop(&self, chat_id: &str, subscribers: ChatSubscribers) -> JoinHandle<()> {
        let hub = self.clone();
        let chat_id = chat_id.to_owned();
        tokio::spawn(async move { hub.chat_loop(&chat_id, subscribers).await })
    }

    async fn chat_loop(&self, chat_id: &str, (events, live): ChatSubscribers) {
        let mut both = futures::stream::select(events, live);
        while let Some(message) = both.next().await {
            let Some(frame) = utf8(message.payload.clone()) else { continue };
            let kind = chat_nats::subjects::tail_after_chat(&message.subject).unwrap_or("unknown");
            if message.subject.starts_with("chat.live.") {
                // Only typing skips its author, so only typing is parsed.
                let typing = kind == "typing";
                let author = match typing {
                    true => serde_json::from_slice::<chat_nats::events::LiveSignal>(&message.payload).ok(),
                    false => None,
                };
                self.deliver_live(chat_id, &frame, kind, author.as_ref().map(|signal| signal.user_id()), typing);
                continue;
            }
            let persisted_at = message
                .headers
                .as_ref()
                .and_then(|h| h.get(chat_nats::headers::PERSISTED_AT_MICROS))
                .and_then(|v| v.as_str().parse::<i64>().ok());
            self.deliver_to_chat(chat_id, &frame, kind, persisted_at);
        }
    }

    fn spawn_presence_subscription(&self, watched_user: &str) -> JoinHandle<()> {
        let hub = self.clone();
        let watched_user = watched_user.to_owned();
        tokio::spawn(async move {
            let subscriber = hub.nats.subscribe(chat_nats::subjects::presence_changed(&watched_user)).await;
            let mut subscriber = match subscriber {
                Ok(subscriber) => subscriber,
                Err(error) => {
                    tracing::error!(%error, watched_user, "cannot subscribe to presence changes");
                    return;
                }
            };
            while let Some(message) = subscriber.next().await {
                if let Some(frame) = utf8(message.payload) {
                    hub.deliver_presence(&watched_user, &frame);
                }
            }
        })
    }

    fn spawn_user_subscription(&self, user_id: &str) -> JoinHandle<()> {
        let hub = self.clone();
        let user_id = user_id.to_owned();
        tokio::spawn(async move {
            match hub.nats.subscribe(chat_nats::subjects::user_all(&user_id)).await {
                Ok(subscriber) => hub.user_loop(&user_id, subscriber).await,
                Err(error) => tracing::error!(%error, user_id, "cannot subscribe to user deliveries"),
            }
        })
    }

    fn spawn_user_loop(&self, user_id: &str, subscriber: async_nats::Subscriber) -> JoinHandle<()> {
        let hub = self.clone();
        let user_id = user_id.to_owned();
        tokio::spawn(async move { hub.user_loop(&user_id, subscriber).await })
    }

    async fn user_loop(&self, user_id: &str, mut subscriber: async_nats::Subscriber) {
        while let Some(message) = subscriber.next().await {
            crate::user_events::handle(self, user_id, &message.subject, message.payload).await;
        }
    }
}

/// A chat's event and live-signal subscriptions.
type ChatSubscribers = (async_nats::Subscriber, async_nats::Subscriber);

async fn subscribe_chat(nats: &async_nats::Client, chat_id: &str) -> Option<ChatSubscribers> {
    let events = nats.subscribe(chat_nats::subjects::chat_events(chat_id)).await;
    let live = nats.subscribe(chat_nats::subjects::chat_live(chat_id)).await;
    match (events, live) {
        (Ok(events), Ok(live)) => Some((events, live)),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, chat_id, "cannot subscribe to a chat");
            None
        }
    }
}

/// The payload as a text frame, if it is UTF-8 (everything on the bus is JSON).
pub fn utf8(payload: Bytes) -> Option<Utf8Bytes> {
    Utf8Bytes::try_from(payload).ok()
}
