//! The presence worker. In this first step it only starts: it connects to NATS and
//! Redis, reports both on `/readyz` (Redis as non-critical: chat works without it),
//! exports `chat_presence_online_users`, and exits cleanly on SIGTERM. Online/offline
//! tracking and typing are the next step and are not claimed here.

use std::{net::SocketAddr, sync::LazyLock};

use chat_core::{
    StartupError,
    config::{AdminArgs, LogArgs, NatsArgs, RedisArgs},
    probes::Probe,
};
use clap::Parser;
use prometheus::{IntGauge, opts, register_int_gauge};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Users online on any edge (pinned metric; stays 0 until tracking lands).
pub static ONLINE_USERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(opts!("chat_presence_online_users", "Users with at least one connection"))
        .unwrap_or_else(|error| panic!("metric registration: {error}"))
});

/// The presence worker's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "presence", about = "Presence and typing worker")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// A started presence worker.
pub struct Running {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    admin: JoinHandle<()>,
}

impl Running {
    /// Waits until it has stopped.
    pub async fn wait(self) {
        let _ = self.admin.await;
    }
}

/// Connects and serves the admin port until `shutdown`.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    LazyLock::force(&ONLINE_USERS);
    let nats = chat_core::connect::nats(&config.nats, "presence").await?;
    let redis = chat_core::connect::redis(&config.redis).await?;
    let admin_addr = config.admin.admin_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9103)));
    let probes = vec![Probe::nats(nats), Probe::redis(redis, false)];
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, shutdown).await?;
    tracing::info!(%admin_addr, "presence started");
    Ok(Running { admin_addr, admin })
}
