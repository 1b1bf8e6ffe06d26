//! The persister: the only writer of `chats`, `messages`, `participants`, `reports`,
//! `message_history` and `audit`.
//!
//! Replicas share the partitions of `CHAT_CMD` ([`partitions`]); for each partition it
//! owns, a replica pulls commands in batches, authorises each one, assigns per-chat
//! sequence numbers, writes MongoDB with as few round trips as it can, publishes the
//! resulting events to `CHAT_EVT` (awaiting their acks together), answers the issuer,
//! and only then acks the commands. A crash anywhere leads to a replay that finds the
//! stored documents and republishes the same event ids.
//!
//! Layout: [`partitions`] (leases, shares, one pipeline per owned partition),
//! [`pipeline`] (fetching, batching, retrying, acking), [`fence`] (when a pipeline
//! must stop), [`command`] (what a handler gets besides its command, and how it
//! fails), [`commands`] (one file per command, each handler taking its own command's
//! struct), [`effects`] (what a batch publishes), [`plausibility`] (whether a
//! command's publisher may act for its actor), [`send_rules`] (what a chat's mode
//! lets a member post), [`audit`] (the audit trail's writer), [`retention`] (the
//! periodic purge of moderation records), [`metrics`], [`setup`] (streams and
//! consumers this binary owns).

pub mod audit;
pub mod authorization;
pub mod command;
pub mod commands;
pub mod effects;
pub mod fence;
pub mod group_commit;
pub mod head_copies;
pub mod known_chats;
pub mod metrics;
pub mod partitions;
pub mod pipeline;
pub mod plausibility;
pub mod retention;
pub mod send_rules;
pub mod setup;

use std::{net::SocketAddr, time::Duration};

use chat_core::{
    StartupError,
    config::{AdminArgs, LogArgs, MongoArgs, NatsArgs, ShutdownArgs},
    probes::Probe,
};
use chat_store::Store;
use clap::Parser;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::partitions::{coordinator::Coordinator, leases::Leases};

/// Default admin port.
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:9101";

/// The persister's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "persister", about = "Consumes chat commands, writes MongoDB, publishes events")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// MongoDB.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// Most commands handled in one batch.
    #[arg(long = "batch-max", env = "CHAT_PERSISTER_BATCH_MAX", default_value_t = 500)]
    pub batch_max: usize,
    /// Partition leases live this long without renewal (a dead replica's partitions
    /// are taken over within about this plus a third of it). Read from the lease
    /// bucket when it exists already.
    #[arg(long = "lease-ttl-ms", env = "CHAT_PERSISTER_LEASE_TTL_MS", default_value_t = 2500,
          value_parser = clap::value_parser!(u64).range(300..=60_000))]
    pub lease_ttl_ms: u64,
    /// How often the chat documents' copies of their heads are refreshed (the heads are
    /// what every reader uses; the copy is for whoever reads `chats` directly).
    #[arg(long = "head-copy-ms", env = "CHAT_PERSISTER_HEAD_COPY_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub head_copy_ms: u64,
    /// Limits of a chat (participants), enforced here, where every membership is written.
    #[command(flatten)]
    pub chats: chat_core::config::ChatLimitArgs,
    /// The messaging policy, enforced here, where every chat and membership is written.
    #[command(flatten)]
    pub policy: chat_core::policy::PolicyArgs,
    /// A name for this replica in the lease bucket (a random suffix keeps two replicas
    /// with one name apart); the pod name in Kubernetes.
    #[arg(long = "replica-name", env = "CHAT_PERSISTER_REPLICA_NAME", default_value = "persister")]
    pub replica_name: String,
    /// Who resolves reports (`CHAT_MODERATION_ROLES`).
    #[command(flatten)]
    pub moderation: chat_core::moderation::ModerationArgs,
    /// How long message history and deleted texts are kept (`CHAT_RETENTION_DAYS`).
    #[command(flatten)]
    pub retention: retention::RetentionArgs,
}

/// A started persister.
pub struct Running {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    task: JoinHandle<Result<(), pipeline::PipelineError>>,
    admin: JoinHandle<()>,
}

impl Running {
    /// Waits until the persister has drained and stopped.
    pub async fn wait(self) -> Result<(), pipeline::PipelineError> {
        let result = self.task.await.unwrap_or_else(|error| Err(pipeline::PipelineError::Panicked(error.to_string())));
        let _ = self.admin.await;
        result
    }
}

/// How long a JetStream request or publish ack may take before it is retried. While a
/// stream elects a new leader, a request sent before the election completes is never
/// answered; the client's default 5 s kept a batch waiting that long for each of its
/// event publishes, while a retry after the election is answered at once (and is
/// deduplicated by its `Nats-Msg-Id`).
const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects, creates indexes, streams and the lease bucket, and starts serving
/// partitions.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    metrics::register();
    let policy = config.policy.load().map_err(|error| StartupError::Config(error.to_string()))?;
    let nats = chat_core::connect::nats(&config.nats, "persister").await?;
    let db = chat_core::connect::mongodb(&config.mongo, "persister").await?;
    let store = Store::new(db.clone());
    store.ensure_indexes().await.map_err(|error| StartupError::dependency("creating MongoDB indexes", error))?;
    let mut js = async_nats::jetstream::new(nats.clone());
    js.set_timeout(JETSTREAM_TIMEOUT);
    let settings = config.nats.stream_settings();
    let stream = setup::command_stream(&js, settings).await?;
    let replica_id = format!("{}-{}", config.replica_name, chat_core::ids::new_id());
    let leases = Leases::open(&js, settings, Duration::from_millis(config.lease_ttl_ms), replica_id.clone())
        .await
        .map_err(|error| StartupError::dependency("opening the lease bucket", error))?;

    let admin_addr = config
        .admin
        .admin_addr
        .unwrap_or_else(|| DEFAULT_ADMIN_ADDR.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9101))));
    let probes = vec![Probe::nats(nats.clone()), Probe::mongodb(db)];
    let admin_shutdown = CancellationToken::new();
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, admin_shutdown.clone()).await?;

    retention::spawn(store.clone(), &config.retention, shutdown.clone());
    let sends = group_commit::SendWrites::new(&store, Duration::from_millis(config.head_copy_ms));
    let pipeline = pipeline::Pipeline {
        store,
        nats: nats.clone(),
        js: js.clone(),
        batch_max: config.batch_max.max(1),
        sends,
        chat_limits: config.chats.clone(),
        policy: std::sync::Arc::new(policy),
        moderation: config.moderation.clone(),
    };
    let grace = Duration::from_secs(config.shutdown.shutdown_grace_s);
    let coordinator = Coordinator { pipeline, stream, leases, partitions: settings.command_partitions, grace };
    let task = tokio::spawn(async move {
        coordinator.run(shutdown).await;
        let _ = nats.flush().await;
        admin_shutdown.cancel();
        Ok(())
    });
    tracing::info!(%admin_addr, replica = %replica_id, "persister started");
    Ok(Running { admin_addr, task, admin })
}
