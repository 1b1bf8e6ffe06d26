//! The presence worker: who is online, since when they were last seen, and who is
//! typing, all in Redis with expiries.
//!
//! - Connection reports from the edges (`presence.conn.<user_id>`, queue group
//!   `presence`) keep each user's open connections in Redis, each expiring
//!   `CHAT_PRESENCE_CONN_EXPIRY_S` after its last heartbeat. The first connection of an
//!   offline user announces `{"type":"presence","status":"online",…}` on
//!   `presence.changed.<user_id>`.
//! - A sweeper drops expired connections (an edge that died without goodbye) and
//!   announces offline the users with none left, once `CHAT_PRESENCE_OFFLINE_GRACE_MS`
//!   has passed since their last connection: a quick reconnect is no offline/online
//!   flap. Each transition is decided atomically on the user's keys, so several
//!   replicas announce it once. It also sets `chat_presence_online_users`.
//! - Typing signals (`chat.signal.<chat_id>.typing`, queue group `presence`) are
//!   throttled to one per chat, user and second (a `stop` after a `start` always
//!   passes), kept in Redis for six seconds, and forwarded to
//!   `chat.live.<chat_id>.typing`.
//! - Without Redis the worker keeps running and reports degraded on `/readyz`: connection
//!   reports are dropped (heartbeats restore the state once Redis is back), typing is
//!   forwarded unthrottled. Readers use [`chat_core::presence_state`].
//!
//! Layout: [`consumers`] (one file per subscription), [`conn_state`] (the per-user Redis
//! steps), [`sweeper`], [`announce`], [`lanes`] (per-key ordering), [`redis_link`]
//! (Redis as an optional dependency), [`metrics`].

pub mod announce;
pub mod conn_state;
pub mod consumers;
pub mod lanes;
pub mod metrics;
pub mod redis_link;
pub mod sweeper;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use chat_core::{
    StartupError,
    config::{AdminArgs, LogArgs, NatsArgs, RedisArgs},
    connect::LazyRedis,
    probes::Probe,
};
use chat_nats::{presence::CONN_EXPIRY_S, subjects};
use clap::{Args, Parser};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    conn_state::ConnState,
    consumers::{conn_reports::ConnReports, typing::TypingSignals},
    redis_link::RedisLink,
    sweeper::Sweeper,
};

/// Default admin port.
pub const DEFAULT_ADMIN_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9103);
/// The queue group of every presence replica.
pub const QUEUE_GROUP: &str = "presence";
/// Default of `CHAT_PRESENCE_OFFLINE_GRACE_MS`.
pub const DEFAULT_OFFLINE_GRACE_MS: u64 = 3000;
/// Default of `CHAT_PRESENCE_SWEEP_INTERVAL_MS`.
pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 5000;
/// Lanes per consumer: reports of one user (signals of one chat and user) stay in order.
const LANES: usize = 16;

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
    /// Timing of presence.
    #[command(flatten)]
    pub presence: PresenceArgs,
}

/// How long connections live and when users are announced offline.
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// A connection without a heartbeat for this long is gone (its edge died).
    #[arg(long = "conn-expiry-s", env = "CHAT_PRESENCE_CONN_EXPIRY_S", default_value_t = CONN_EXPIRY_S,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub conn_expiry_s: u64,
    /// A user without connections is announced offline this long after the last one.
    #[arg(long = "offline-grace-ms", env = "CHAT_PRESENCE_OFFLINE_GRACE_MS", default_value_t = DEFAULT_OFFLINE_GRACE_MS)]
    pub offline_grace_ms: u64,
    /// Time between two sweeps for expired connections and offline users.
    #[arg(long = "sweep-interval-ms", env = "CHAT_PRESENCE_SWEEP_INTERVAL_MS", default_value_t = DEFAULT_SWEEP_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub sweep_interval_ms: u64,
}

impl Default for PresenceArgs {
    fn default() -> Self {
        PresenceArgs {
            conn_expiry_s: CONN_EXPIRY_S,
            offline_grace_ms: DEFAULT_OFFLINE_GRACE_MS,
            sweep_interval_ms: DEFAULT_SWEEP_INTERVAL_MS,
        }
    }
}

/// A started presence worker.
pub struct Running {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    task: JoinHandle<()>,
    admin: JoinHandle<()>,
}

impl Running {
    /// Waits until it has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
        let _ = self.admin.await;
    }
}

/// Connects, subscribes and starts the consumers, the sweeper and the admin port; runs
/// until `shutdown`. Redis may be down: the worker then starts degraded.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    let timing = &config.presence;
    if timing.conn_expiry_s == 0 || timing.sweep_interval_ms == 0 {
        return Err(StartupError::Config("connection expiry and sweep interval must be positive".into()));
    }
    metrics::register();
    let nats = chat_core::connect::nats(&config.nats, "presence").await?;
    let redis = LazyRedis::new(&config.redis)?;
    let link = Arc::new(RedisLink::new(redis.clone()));
    if !link.check().await {
        tracing::warn!("redis unavailable at start-up; presence and typing degrade until it answers");
    }
    let subscribe = |subject: &'static str| {
        let nats = nats.clone();
        async move {
            nats.queue_subscribe(subject, QUEUE_GROUP.to_owned())
                .await
                .map_err(|error| StartupError::dependency("subscribing", error))
        }
    };
    let conn_subscriber = subscribe(subjects::PRESENCE_CONN_ALL).await?;
    let typing_subscriber = subscribe(subjects::SIGNAL_TYPING_ALL).await?;
    // The server knows the subscriptions once start returns.
    nats.flush().await.map_err(|error| StartupError::dependency("subscribing", error))?;

    let admin_addr = config.admin.admin_addr.unwrap_or(DEFAULT_ADMIN_ADDR);
    let probes = vec![Probe::nats(nats.clone()), Probe::lazy_redis(redis, false)];
    let admin_shutdown = CancellationToken::new();
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, admin_shutdown.clone()).await?;

    let state = Arc::new(ConnState::default());
    let reports = Arc::new(ConnReports {
        link: link.clone(),
        nats: nats.clone(),
        state: state.clone(),
        expiry_ms: millis(timing.conn_expiry_s.saturating_mul(1000)),
    });
    let typing = Arc::new(TypingSignals::new(link.clone(), nats.clone()));
    let sweeper = Sweeper {
        link: link.clone(),
        nats: nats.clone(),
        state,
        interval: Duration::from_millis(timing.sweep_interval_ms),
        grace_ms: millis(timing.offline_grace_ms),
    };
    let task = tokio::spawn(async move {
        tokio::join!(
            reports.run(conn_subscriber, LANES, shutdown.clone()),
            typing.run(typing_subscriber, LANES, shutdown.clone()),
            sweeper.run(shutdown.clone()),
            link.watch(shutdown.clone()),
        );
        let _ = nats.flush().await;
        admin_shutdown.cancel();
        tracing::info!("presence stopped");
    });
    tracing::info!(%admin_addr, "presence started");
    Ok(Running { admin_addr, task, admin })
}

/// A configured duration in ms as Redis scores want it.
fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_bus_contract() {
        let config = Config::try_parse_from(["presence"]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.presence.conn_expiry_s, CONN_EXPIRY_S);
        assert_eq!(config.presence.offline_grace_ms, 3000);
        assert_eq!(config.presence.sweep_interval_ms, 5000);
        let defaults = PresenceArgs::default();
        assert_eq!(defaults.conn_expiry_s, config.presence.conn_expiry_s);
        assert_eq!(defaults.offline_grace_ms, config.presence.offline_grace_ms);
        assert_eq!(defaults.sweep_interval_ms, config.presence.sweep_interval_ms);
    }

    #[test]
    fn a_zero_expiry_is_refused_at_parse_time() {
        assert!(Config::try_parse_from(["presence", "--conn-expiry-s", "0"]).is_err());
        assert!(Config::try_parse_from(["presence", "--sweep-interval-ms", "0"]).is_err());
    }
}
