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

#[derive(Default)]
struct State {
    users: HashMap<String, UserEntry>,
    chats: HashMap<String, ChatEntry>,
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

    /// Adds a connection with the chats its user belongs to.
    pub fn register(&self, user_id: &str, conn: ConnHandle, chats: Vec<String>) -> Result<(), RegisterError> {
        let mut state = self.write();
        let user = state.users.entry(user_id.to_owned()).or_default();
        if user.conns.len() >= self.max_conns_per_user {
            return Err(RegisterError::TooManyConnections);
        }
        user.conns.insert(conn.conn_id.clone(), conn);
        if user.subscription.is_none() {
            user.subscription = Some(self.spawn_user_subscription(user_id));
        }
        let known: Vec<String> = chats.into_iter().filter(|chat| !user.chats.contains(chat)).collect();
        for chat_id in known {
            self.join_locked(&mut state, user_id, &chat_id);
        }
        Ok(())
    }

    /// Removes a connection; the last one of a user drops the user's chats.
    pub fn unregister(&self, user_id: &str, conn_id: &str) {
        let mut state = self.write();
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
            let empty = state.chats.get_mut(&chat_id).is_some_and(|chat| {
                chat.users.remove(user_id);
                chat.users.is_empty()
            });
            if empty && let Some(chat) = state.chats.remove(&chat_id) {
                chat.subscription.abort();
            }
        }
    }

    /// A local user joined a chat: deliver it to them from now on.
    pub fn join(&self, user_id: &str, chat_id: &str) {
        let mut state = self.write();
        if state.users.contains_key(user_id) {
            self.join_locked(&mut state, user_id, chat_id);
        }
    }

    fn join_locked(&self, state: &mut State, user_id: &str, chat_id: &str) {
        if let Some(user) = state.users.get_mut(user_id) {
            user.chats.insert(chat_id.to_owned());
        }
        if let Some(chat) = state.chats.get_mut(chat_id) {
            chat.users.insert(user_id.to_owned());
            return;
        }
        let subscription = self.spawn_chat_subscription(chat_id);
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
            let subscriber = hub.nats.subscribe(chat_nats::subjects::chat_events(&chat_id)).await;
            let mut subscriber = match subscriber {
                Ok(subscriber) => subscriber,
                Err(error) => {
                    tracing::error!(%error, chat_id, "cannot subscribe to chat events");
                    return;
                }
            };
            while let Some(message) = subscriber.next().await {
                let Some(frame) = utf8(message.payload) else { continue };
                let kind = chat_nats::subjects::tail_after_chat(&message.subject).unwrap_or("unknown");
                let persisted_at = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(chat_nats::headers::PERSISTED_AT_MICROS))
                    .and_then(|v| v.as_str().parse::<i64>().ok());
                hub.deliver_to_chat(&chat_id, &frame, kind, persisted_at);
            }
        })
    }

    fn spawn_user_subscription(&self, user_id: &str) -> JoinHandle<()> {
        let hub = self.clone();
        let user_id = user_id.to_owned();
        tokio::spawn(async move {
            let subscriber = hub.nats.subscribe(chat_nats::subjects::user_all(&user_id)).await;
            let mut subscriber = match subscriber {
                Ok(subscriber) => subscriber,
                Err(error) => {
                    tracing::error!(%error, user_id, "cannot subscribe to user deliveries");
                    return;
                }
            };
            while let Some(message) = subscriber.next().await {
                crate::user_events::handle(&hub, &user_id, &message.subject, message.payload);
            }
        })
    }
}

/// The payload as a text frame, if it is UTF-8 (everything on the bus is JSON).
pub fn utf8(payload: Bytes) -> Option<Utf8Bytes> {
    Utf8Bytes::try_from(payload).ok()
}
