//! What every connection shares: settings, the hub, NATS, token verification, the
//! per-user message budget, and the requests the edge makes on the bus.

use std::{sync::Arc, time::Duration};

use chat_core::auth::TokenVerifier;
use chat_nats::{
    publish::Outgoing,
    rpc::{MembershipsReply, MembershipsRequest},
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    hub::Hub,
    outbox::QueueLimits,
    protocol::{ClientCommand, Limits},
    session::Session,
};

/// Called before every command is run; tests use it to make a connection panic.
pub type CommandHook = Arc<dyn Fn(&ClientCommand) + Send + Sync>;

/// What every connection shares. Cheap to clone, but about 1.2 KB: the connections hold
/// one copy behind an `Arc` (`upgrade::router`).
#[derive(Clone)]
pub struct EdgeState {
    /// Settings.
    pub config: Arc<Config>,
    /// Local registry and feeds.
    pub hub: Hub,
    /// Core NATS.
    pub nats: async_nats::Client,
    /// JetStream.
    pub js: async_nats::jetstream::Context,
    /// Token verification.
    pub verifier: Arc<TokenVerifier>,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Messages per user across connections and replicas.
    pub message_budget: chat_core::rate_limit::UserBudget,
    /// Edits, deletes and read marks per user across connections and replicas.
    pub write_budgets: chat_core::write_budget::WriteBudgets,
    /// Connections per user across edges.
    pub user_connections: chat_core::user_connections::UserConnections,
    /// Upgrades in progress.
    pub upgrades: Arc<Semaphore>,
    /// See [`CommandHook`].
    pub command_hook: Option<CommandHook>,
    /// This edge's name on the bus: the persister answers its connections' commands on
    /// `edge.<edge_id>.outcome.<user_id>.<conn_id>`.
    pub edge_id: Arc<str>,
}

/// Why memberships could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("memberships unavailable: {0}")]
pub struct MembershipError(String);

impl EdgeState {
    /// The limits announced in `hello`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.config.max_frame_bytes,
            max_text_chars: chat_nats::limits::MAX_TEXT_CHARS,
            commands_per_s: self.config.commands_per_s,
            commands_burst: self.config.commands_burst,
            max_connections_per_user: self.config.max_connections_per_user,
            idle_timeout_ms: self.config.idle_timeout_ms,
        }
    }

    /// How much one connection may queue.
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits { max_frames: self.config.queue_frames.max(1), max_bytes: self.config.queue_bytes.max(1) }
    }

    /// Asks the api which chats a user belongs to, page after page: each chat with the
    /// user's `joined_seq` there.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<(String, u64)>, MembershipError> {
        let mut chats = Vec::new();
        let mut after = None;
        loop {
            let page = self.memberships_page(MembershipsRequest { user_id: user_id.to_owned(), after }).await?;
            chats.extend(page.chats.into_iter().map(|m| (m.chat_id, m.joined_seq)));
            // A cursor that does not move on would ask for the same page forever.
            match page.next {
                Some(next) if chats.last().is_some_and(|(last, _)| *last == next) => after = Some(next),
                Some(_) => return Err(MembershipError("a page's cursor is not its last chat".into())),
                None => return Ok(chats),
            }
        }
    }

    async fn memberships_page(&self, request: MembershipsRequest) -> Result<MembershipsReply, MembershipError> {
        let request = serde_json::to_vec(&request).map_err(|error| MembershipError(error.to_string()))?;
        let subject = chat_nats::subjects::rpc(chat_nats::rpc::MEMBERSHIPS);
        let reply = tokio::time::timeout(Duration::from_secs(3), self.nats.request(subject, request.into()))
            .await
            .map_err(|_| MembershipError("timed out".into()))?
            .map_err(|error| MembershipError(error.to_string()))?;
        serde_json::from_slice(&reply.payload)
            .map_err(|_| MembershipError(String::from_utf8_lossy(&reply.payload).into()))
    }

    /// True when the user belongs to the chat. A chat this edge does not know yet is
    /// checked with the api once (the join may not have reached this edge).
    pub async fn is_member(&self, session: &Session, chat_id: &str) -> bool {
        if self.hub.is_member(&session.user_id, chat_id) {
            return true;
        }
        match self.memberships(&session.user_id).await {
            Ok(chats) => match chats.into_iter().find(|(c, _)| c == chat_id) {
                Some((_, joined_seq)) => {
                    self.hub.join(&session.user_id, chat_id, joined_seq).await;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Tells the presence worker about a connection.
    pub async fn report_connection(&self, user_id: &str, conn_id: &str, event: chat_nats::presence::ConnEvent) {
        let report = chat_nats::presence::ConnReport {
            v: chat_nats::PAYLOAD_VERSION,
            user_id: user_id.to_owned(),
            conn_id: conn_id.to_owned(),
            event,
        };
        let Ok(body) = serde_json::to_vec(&report) else { return };
        if let Err(error) = self.nats.publish(chat_nats::subjects::presence_conn(user_id), body.into()).await {
            tracing::debug!(%error, "connection report not published");
        }
    }

    /// Publishes a command; the returned future resolves when JetStream stored it.
    pub async fn publish_command(
        &self,
        message: Outgoing,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, async_nats::jetstream::context::PublishError> {
        chat_nats::publish::send(&self.js, message).await
    }
}
