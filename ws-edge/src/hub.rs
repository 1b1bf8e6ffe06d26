//! The hub (the seed's HubManager): keeps the [`Registry`] and the NATS feeds in step.
//! A chat gets its subscriptions when its first local member arrives and loses them
//! with its last one; the subscriptions a connection or a join needs are in place at
//! the server before the call returns (so before `hello`, or before the join takes
//! effect), and a message published afterwards cannot slip past.

use std::{collections::HashMap, sync::Arc};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{
    feeds::{self, ChatSubscribers, FeedContext},
    metrics,
    outbox::{ConnHandle, Outbound},
    registry::{CatchUp, RegisterError, Registry},
};

/// The hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    registry: Arc<Registry>,
    nats: async_nats::Client,
    feeds: FeedContext,
}

impl Hub {
    /// An empty hub.
    pub fn new(nats: async_nats::Client, max_conns_per_user: usize) -> Self {
        let registry = Arc::new(Registry::new(max_conns_per_user));
        let feeds = FeedContext {
            nats: nats.clone(),
            js: async_nats::jetstream::new(nats.clone()),
            registry: Arc::downgrade(&registry),
        };
        Hub { registry, nats, feeds }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    async fn subscribe_missing(&self, chats: &[String]) -> HashMap<String, ChatSubscribers> {
        let mut prepared = HashMap::new();
        for chat_id in self.registry.chats_without_feed(chats) {
            if let Some(subscribers) = feeds::subscribe_chat(&self.nats, &chat_id).await {
                prepared.insert(chat_id, subscribers);
            }
        }
        if !prepared.is_empty()
            && let Err(error) = self.nats.flush().await
        {
            tracing::warn!(%error, "flush after subscribing failed");
        }
        prepared
    }

    /// Adds a connection with the chats its user belongs to, each with the user's
    /// `joined_seq`.
    pub async fn register(
        &self,
        user_id: &str,
        conn: ConnHandle,
        chats: Vec<(String, u64)>,
    ) -> Result<(), RegisterError> {
        let ids: Vec<String> = chats.iter().map(|(chat_id, _)| chat_id.clone()).collect();
        let mut prepared = self.subscribe_missing(&ids).await;
        let feeds = &self.feeds;
        self.registry.add_connection(user_id, conn, chats, &mut |chat_id, sockets| {
            feeds::start_chat_feed(feeds, chat_id, sockets, prepared.remove(chat_id))
        })
    }

    /// Removes a connection.
    pub fn unregister(&self, user_id: &str, conn_id: &str) {
        self.registry.remove_connection(user_id, conn_id);
    }

    /// A local user joined a chat at `joined_seq`: deliver it to them from now on.
    pub async fn join(&self, user_id: &str, chat_id: &str, joined_seq: u64) {
        let mut prepared = self.subscribe_missing(&[chat_id.to_owned()]).await;
        let feeds = &self.feeds;
        self.registry.join(user_id, chat_id, joined_seq, &mut |chat_id, sockets| {
            feeds::start_chat_feed(feeds, chat_id, sockets, prepared.remove(chat_id))
        });
    }

    /// A local user joined a chat through the event stored at `stream_seq` in
    /// `CHAT_EVT`: deliver it to them from that event on. The chat's subscriptions are
    /// in place before its feed replays the stream, so nothing published in between
    /// is missed.
    pub async fn join_from(&self, user_id: &str, chat_id: &str, stream_seq: u64) {
        if self.registry.is_member(user_id, chat_id) {
            return;
        }
        let mut prepared = self.subscribe_missing(&[chat_id.to_owned()]).await;
        let feeds = &self.feeds;
        let catch_up = CatchUp { user_id: user_id.to_owned(), stream_seq };
        self.registry.join_from(chat_id, catch_up, &mut |chat_id, sockets| {
            feeds::start_chat_feed(feeds, chat_id, sockets, prepared.remove(chat_id))
        });
    }

    /// A local user left a chat: stop delivering it to them once the chat's feed has
    /// delivered the events it already received.
    pub fn leave(&self, user_id: &str, chat_id: &str) {
        self.registry.leave_after_feed(user_id, chat_id);
    }

    /// True when the user belongs to the chat, as far as this edge knows.
    pub fn is_member(&self, user_id: &str, chat_id: &str) -> bool {
        self.registry.is_member(user_id, chat_id)
    }

    /// Hands a frame to every local socket of one user.
    pub fn deliver_to_user(&self, user_id: &str, frame: &Utf8Bytes, kind: &str) {
        let mut queued = 0;
        for conn in self.registry.connections_of(user_id) {
            let outbound = Outbound::Event { frame: frame.clone(), persisted_at_micros: None, droppable: false };
            if conn.offer(outbound) {
                queued += 1;
            }
        }
        metrics::events_sent(kind).inc_by(queued);
    }

    /// Hands a frame to one connection of a user.
    pub fn deliver_to_conn(&self, user_id: &str, conn_id: &str, frame: Utf8Bytes) {
        if let Some(conn) = self.registry.connection(user_id, conn_id) {
            conn.offer(Outbound::Frame(frame));
        }
    }
}
