//! What every binary of the chat service shares.
//!
//! Layout:
//! - [`config`]: the `CHAT_*` settings common to several binaries, as clap argument groups;
//! - [`auth`]: token verification (and minting, for development and tests);
//! - [`telemetry`]: JSON or pretty logs;
//! - [`trace`]: W3C `traceparent` handling;
//! - [`admin`]: the admin port with `/healthz`, `/readyz` and `/metrics`;
//! - [`http_server`]: the HTTP/1 serving loop of every port (header read timeout,
//!   upgrades, graceful shutdown);
//! - [`probes`]: readiness checks for NATS, MongoDB and Redis;
//! - [`redis_conn`]: one Redis server or a Redis Cluster behind one connection type;
//! - [`redis_keys`]: every Redis key name and which keys share a slot;
//! - [`rate_limit`]: per-user token buckets shared through Redis (the message budget);
//! - [`write_budget`]: the per-user budgets of every other write, on those buckets;
//! - [`user_connections`]: the edges' count of connections per user across edges;
//! - [`presence_state`]: reading users' presence from Redis (the api's presence queries);
//! - [`shutdown`]: SIGINT/SIGTERM turned into a cancellation token;
//! - [`connect`]: connecting to NATS, MongoDB and Redis with the service's settings;
//! - [`ids`]: id generation;
//! - [`policy`]: the platform's messaging policy (`CHAT_POLICY_FILE`) and its decisions.
//! - [`moderation`]: who reviews reported messages (`CHAT_MODERATION_ROLES`).

pub mod admin;
pub mod auth;
pub mod config;
pub mod connect;
pub mod http_server;
pub mod ids;
pub mod moderation;
pub mod policy;
pub mod presence_state;
pub mod probes;
pub mod rate_limit;
pub mod redis_conn;
pub mod redis_keys;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
pub mod user_connections;
pub mod write_budget;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A dependency could not be reached or set up.
    #[error("{what}: {source}")]
    Dependency {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl StartupError {
    /// Wraps a dependency failure with what was being done.
    pub fn dependency(what: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StartupError::Dependency { what, source: source.into() }
    }
}
