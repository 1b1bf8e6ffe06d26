//! The WebSocket edge. It authenticates clients at the upgrade, publishes their
//! commands to `CHAT_CMD`, and fans persisted events out to the local sockets of each
//! chat's members. It never opens MongoDB: memberships come from the api over
//! `chat.rpc.memberships` and stay current through `user.<id>.*` deliveries.
//!
//! Layout: [`upgrade`] (the `/ws` route: token, origin, memberships), [`connection`]
//! (one socket: reader, writer, limits), [`protocol`] (client frames), [`commands`]
//! (one file per command), [`hub`] (local registry and NATS subscriptions),
//! [`user_events`], [`rate`], [`close`] (close codes), [`metrics`].

pub mod close;
pub mod commands;
pub mod connection;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod rate;
pub mod upgrade;
pub mod user_events;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use chat_core::{
    StartupError,
    auth::TokenVerifier,
    config::{AdminArgs, HttpArgs, JwtArgs, LogArgs, NatsArgs, RedisArgs, ShutdownArgs, UserLimitArgs},
    http_server::HttpSettings,
    probes::Probe,
};
use chat_nats::{
    publish::Outgoing,
    rpc::{MembershipsReply, MembershipsRequest},
    streams::{self, StreamSettings},
};
use clap::Parser;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{connection::Session, hub::Hub};

/// The edge's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "ws-edge", about = "WebSocket edge of the chat service")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Redis (the per-user message budget; optional).
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Per-user limits.
    #[command(flatten)]
    pub limits: UserLimitArgs,
    /// Tokens.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// HTTP connections (until the upgrade).
    #[command(flatten)]
    pub http: HttpArgs,
    /// Where `/ws` listens.
    #[arg(long = "listen-addr", env = "CHAT_LISTEN_ADDR", default_value = "0.0.0.0:8082")]
    pub listen_addr: SocketAddr,
    /// Browser origins allowed to open a socket (comma-separated). Requests without an
    /// `Origin` header (native apps, servers) are not affected.
    #[arg(long = "allowed-origins", env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub allowed_origins: Vec<String>,
    /// How often clients are asked to ping.
    #[arg(long = "heartbeat-ms", env = "CHAT_WS_HEARTBEAT_MS", default_value_t = 25_000)]
    pub heartbeat_ms: u64,
    /// Silence after which a connection is closed.
    #[arg(long = "idle-timeout-ms", env = "CHAT_WS_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Frames queued per connection before it counts as a slow consumer.
    #[arg(long = "queue-frames", env = "CHAT_WS_QUEUE_FRAMES", default_value_t = 1024)]
    pub queue_frames: usize,
    /// Largest accepted frame, bytes.
    #[arg(long = "max-frame-bytes", env = "CHAT_WS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Commands per second per connection.
    #[arg(long = "commands-per-s", env = "CHAT_WS_COMMANDS_PER_S", default_value_t = 20)]
    pub commands_per_s: u32,
    /// Command burst per connection.
    #[arg(long = "commands-burst", env = "CHAT_WS_COMMANDS_BURST", default_value_t = 40)]
    pub commands_burst: u32,
    /// Connections per user on this edge.
    #[arg(long = "max-connections-per-user", env = "CHAT_WS_MAX_CONNECTIONS_PER_USER", default_value_t = 10)]
    pub max_connections_per_user: usize,
}

/// What every connection shares. Cheap to clone.
#[derive(Clone)]
pub struct EdgeState {
    /// Settings.
    pub config: Arc<Config>,
    /// Local registry.
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
    pub message_budget: chat_core::rate_limit::UserMessageBudget,
}

/// Why memberships could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("memberships unavailable: {0}")]
pub struct MembershipError(String);

impl EdgeState {
    /// The limits announced in `hello`.
    pub fn limits(&self) -> protocol::Limits {
        protocol::Limits {
            max_frame_bytes: self.config.max_frame_bytes,
            max_text_chars: chat_nats::limits::MAX_TEXT_CHARS,
            commands_per_s: self.config.commands_per_s,
            commands_burst: self.config.commands_burst,
            max_connections_per_user: self.config.max_connections_per_user,
            idle_timeout_ms: self.config.idle_timeout_ms,
        }
    }

    /// Asks the api which chats a user belongs to.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<String>, MembershipError> {
        let request = serde_json::to_vec(&MembershipsRequest { user_id: user_id.to_owned() })
            .map_err(|error| MembershipError(error.to_string()))?;
        let subject = chat_nats::subjects::rpc(chat_nats::rpc::MEMBERSHIPS);
        let reply = tokio::time::timeout(Duration::from_secs(3), self.nats.request(subject, request.into()))
            .await
            .map_err(|_| MembershipError("timed out".into()))?
            .map_err(|error| MembershipError(error.to_string()))?;
        let reply: MembershipsReply = serde_json::from_slice(&reply.payload)
            .map_err(|_| MembershipError(String::from_utf8_lossy(&reply.payload).into()))?;
        Ok(reply.chats.into_iter().map(|m| m.chat_id).collect())
    }

    /// True when the user belongs to the chat. A chat this edge does not know yet is
    /// checked with the api once (the join may not have reached this edge).
    pub async fn is_member(&self, session: &Session, chat_id: &str) -> bool {
        if self.hub.is_member(&session.user_id, chat_id) {
            return true;
        }
        match self.memberships(&session.user_id).await {
            Ok(chats) if chats.iter().any(|c| c == chat_id) => {
                self.hub.join(&session.user_id, chat_id).await;
                true
            }
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

/// A started edge.
pub struct Running {
    /// Where `/ws` listens.
    pub listen_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until the edge has drained.
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Connects, binds and serves until `shutdown`.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    metrics::register();
    let verifier = TokenVerifier::from_args(&config.jwt).map_err(|error| StartupError::Config(error.to_string()))?;
    let nats = chat_core::connect::nats(&config.nats, "ws-edge").await?;
    let js = async_nats::jetstream::new(nats.clone());
    let settings = StreamSettings { replicas: config.nats.stream_replicas, ..Default::default() };
    streams::ensure_all_streams(&js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;
    let hub = Hub::new(nats.clone(), config.max_connections_per_user);
    let redis = chat_core::connect::LazyRedis::new(&config.redis)?;
    let message_budget =
        chat_core::rate_limit::UserMessageBudget::new(redis.clone(), config.limits.messages_per_user_per_s);
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| StartupError::Bind { addr: config.listen_addr.to_string(), source })?;
    let listen_addr =
        listener.local_addr().map_err(|source| StartupError::Bind { addr: config.listen_addr.to_string(), source })?;
    let admin_addr = config.admin.admin_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9082)));
    let grace = Duration::from_secs(config.shutdown.shutdown_grace_s);
    let http_settings = HttpSettings { nodelay: true, drain_timeout: grace, ..HttpSettings::from(&config.http) };
    let edge = EdgeState {
        config: Arc::new(config),
        hub: hub.clone(),
        nats: nats.clone(),
        js,
        verifier: Arc::new(verifier),
        shutdown: shutdown.clone(),
        message_budget,
    };
    let edge_for_heartbeat = edge.clone();
    let app = upgrade::router(edge);
    let http = tokio::spawn(chat_core::http_server::serve(listener, app, http_settings, shutdown.clone()));
    let drain = tokio::spawn(drain_on_shutdown(hub, shutdown.clone(), grace, nats.clone()));
    let heartbeat = tokio::spawn(heartbeat_connections(edge_for_heartbeat, shutdown.clone()));
    let probes = vec![Probe::nats(nats), Probe::lazy_redis(redis, false)];
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, shutdown).await?;
    tracing::info!(%listen_addr, %admin_addr, "ws-edge started");
    Ok(Running { listen_addr, admin_addr, tasks: vec![http, drain, heartbeat, admin] })
}

/// Confirms every open connection to the presence worker, so that connections of an
/// edge that dies without goodbye expire.
async fn heartbeat_connections(edge: EdgeState, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(chat_nats::presence::CONN_HEARTBEAT_S));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        for (user_id, conns) in edge.hub.connections_by_user() {
            for conn_id in conns {
                edge.report_connection(&user_id, &conn_id, chat_nats::presence::ConnEvent::Alive).await;
            }
        }
    }
}

/// At shutdown every client is told to reconnect elsewhere after a jittered delay,
/// then its socket is closed with 1001.
async fn drain_on_shutdown(hub: Hub, shutdown: CancellationToken, grace: Duration, nats: async_nats::Client) {
    shutdown.cancelled().await;
    let conns = hub.all_connections();
    tracing::info!(connections = conns.len(), "draining connections");
    for (i, conn) in conns.iter().enumerate() {
        let after_ms = 500 + (i as u64 * 7919) % 4500;
        let frame = format!(r#"{{"type":"reconnect","after_ms":{after_ms}}}"#);
        conn.offer(connection::Outbound::Frame(frame.into()));
        conn.close_code.store(close::GOING_AWAY, std::sync::atomic::Ordering::Relaxed);
        conn.close.cancel();
    }
    let deadline = tokio::time::Instant::now() + grace;
    while hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = nats.flush().await;
}
