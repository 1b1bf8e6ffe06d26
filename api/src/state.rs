//! What every handler shares.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chat_core::auth::TokenVerifier;
use chat_store::Store;
use tokio::sync::Mutex;

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The shared part.
    pub inner: Arc<Inner>,
}

/// The shared part of [`AppState`].
pub struct Inner {
    /// MongoDB.
    pub store: Store,
    /// Core NATS (reply subjects).
    pub nats: async_nats::Client,
    /// JetStream (commands).
    pub js: async_nats::jetstream::Context,
    /// Redis (presence reads).
    pub redis: chat_core::connect::LazyRedis,
    /// The per-user message budget.
    pub message_budget: chat_core::rate_limit::UserBudget,
    /// The per-user budgets of every other write.
    pub write_budgets: chat_core::write_budget::WriteBudgets,
    /// Token verification.
    pub verifier: TokenVerifier,
    /// How long a write waits for the persister.
    pub command_timeout: Duration,
    /// When each user was last upserted from token claims, with the name and roles
    /// written then, so a busy user costs one write per interval, not one per request.
    pub known_users: Mutex<HashMap<String, KnownUser>>,
    /// Who sees whose presence and roles; the directory's budget.
    pub privacy: crate::privacy::PrivacyArgs,
    /// Limits of a chat (participants), checked before the persister does.
    pub chat_limits: chat_core::config::ChatLimitArgs,
    /// The messaging policy, checked before the persister does.
    pub policy: chat_core::policy::Policy,
    /// Who sees the review queue and resolves reports.
    pub moderation: chat_core::moderation::ModerationArgs,
}

/// When a user was last written to the directory, and with which name and roles.
pub type KnownUser = (std::time::Instant, String, Vec<String>);
