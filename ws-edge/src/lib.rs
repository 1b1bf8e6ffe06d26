//! The WebSocket edge. It authenticates clients at the upgrade, publishes their
//! commands to `CHAT_CMD`, and fans persisted events out to the local sockets of each
//! chat's members. It never opens MongoDB: memberships come from the api over
//! `chat.rpc.memberships` and stay current through `user.<id>.*` deliveries.
//!
//! Layout, from the socket down:
//! - [`upgrade`]: the `/ws` route (token, origin, memberships, a cap on upgrades), with
//!   [`handshake`], which takes the TCP socket back from hyper after the `101`;
//! - [`connection`]: one socket, one task: reads commands, writes the backlog a full
//!   socket left, limits, heartbeat, token expiry, timeouts, and a panic closes it
//!   with 1011; [`client_stream`]: the socket as tungstenite reads it;
//! - [`commands`]: one file per client command; [`protocol`]: client commands and
//!   every server frame; [`asyncapi`]: the protocol's AsyncAPI document, generated from
//!   them and served at `/asyncapi.json`;
//! - [`outbox`]: a connection's send side: deliveries are written to the socket by the
//!   task that delivers them ([`wire`] frames them), and what the socket does not take
//!   is queued, bounded in frames and bytes;
//! - [`hub`]: keeps [`registry`] (who is connected, each chat's local sockets) and
//!   [`feeds`] (NATS subscriptions into sockets, membership changes in the chat's order;
//!   [`catch_up`] replays a chat to a member this edge heard of late; [`signals`] for
//!   live signals) in step;
//!   [`user_events`]: the edge-wide `user.>` feed;
//! - [`state`]: what connections share; [`config`]: settings; [`lifecycle`]: presence
//!   heartbeats (which also keep the per-user connection count across edges,
//!   `chat_core::user_connections`) and the drain at shutdown; [`session`], [`rate`],
//!   [`close`], [`metrics`].

pub mod asyncapi;
pub mod catch_up;
pub mod client_stream;
pub mod close;
pub mod commands;
pub mod config;
pub mod connection;
pub mod feeds;
pub mod handshake;
pub mod hub;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod outcomes;
pub mod protocol;
pub mod rate;
pub mod registry;
pub mod session;
pub mod signals;
pub mod state;
pub mod upgrade;
pub mod user_events;
pub mod watches;
pub mod wire;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use chat_core::{
    StartupError, auth::TokenVerifier, http_server::HttpSettings, probes::Probe, user_connections::UserConnections,
};
use chat_nats::streams;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use crate::{config::Config, state::EdgeState};
use crate::{hub::Hub, state::CommandHook};

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
    start_with_hook(config, shutdown, None).await
}

/// [`start`], with a hook run before every command (tests make a connection panic).
pub async fn start_with_hook(
    config: Config,
    shutdown: CancellationToken,
    command_hook: Option<CommandHook>,
) -> Result<Running, StartupError> {
    metrics::register();
    let verifier = TokenVerifier::from_args(&config.jwt).map_err(|error| StartupError::Config(error.to_string()))?;
    let nats = chat_core::connect::nats(&config.nats, "ws-edge").await?;
    let js = async_nats::jetstream::new(nats.clone());
    let settings = config.nats.stream_settings();
    streams::ensure_streams_exist(&js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;
    let hub = Hub::new(nats.clone(), config.max_connections_per_user);
    let user_feed = user_events::start(&nats, hub.clone())
        .await
        .map_err(|error| StartupError::dependency("subscribing to user deliveries", error))?;
    let edge_id: Arc<str> = Arc::from(chat_core::ids::new_id());
    let outcome_feed = outcomes::start(&nats, &edge_id, hub.clone())
        .await
        .map_err(|error| StartupError::dependency("subscribing to command outcomes", error))?;
    let presence_feed = feeds::start_presence_feed(&nats, hub.registry().clone())
        .await
        .map_err(|error| StartupError::dependency("subscribing to presence changes", error))?;
    let redis = chat_core::connect::LazyRedis::new(&config.redis)?;
    let message_budget = chat_core::rate_limit::UserBudget::messages(
        redis.clone(),
        config.limits.messages_per_user_per_s,
        config.limits.message_burst(),
    );
    let write_budgets = chat_core::write_budget::WriteBudgets::new(&redis, &config.writes);
    let user_connections = UserConnections::new(redis.clone(), config.max_connections_per_user);
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| StartupError::Bind { addr: config.listen_addr.to_string(), source })?;
    let listen_addr =
        listener.local_addr().map_err(|source| StartupError::Bind { addr: config.listen_addr.to_string(), source })?;
    let admin_addr = config.admin.admin_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9082)));
    let grace = Duration::from_secs(config.shutdown.shutdown_grace_s);
    let http_settings = HttpSettings { nodelay: true, drain_timeout: grace, ..HttpSettings::from(&config.http) };
    let upgrades = Arc::new(Semaphore::new(config.max_pending_upgrades.max(1)));
    let edge = EdgeState {
        config: Arc::new(config),
        hub: hub.clone(),
        nats: nats.clone(),
        js,
        verifier: Arc::new(verifier),
        shutdown: shutdown.clone(),
        message_budget,
        write_budgets,
        user_connections,
        upgrades,
        command_hook,
        edge_id,
    };
    let edge_for_heartbeat = edge.clone();
    let app = upgrade::router(edge);
    let http = tokio::spawn(chat_core::http_server::serve(listener, app, http_settings, shutdown.clone()));
    let drain = tokio::spawn({
        let shutdown = shutdown.clone();
        let nats = nats.clone();
        async move {
            lifecycle::drain_on_shutdown(hub, shutdown, grace, nats).await;
            drop((user_feed, outcome_feed, presence_feed));
        }
    });
    let heartbeat = tokio::spawn(lifecycle::heartbeat_connections(edge_for_heartbeat, shutdown.clone()));
    let probes = vec![Probe::nats(nats), Probe::lazy_redis(redis, false)];
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, shutdown).await?;
    tracing::info!(%listen_addr, %admin_addr, "ws-edge started");
    Ok(Running { listen_addr, admin_addr, tasks: vec![http, drain, heartbeat, admin] })
}
