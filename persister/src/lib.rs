//! The persister: the only writer of `chats`, `messages` and `participants`.
//!
//! It pulls commands from `CHAT_CMD` in batches, authorises each one, assigns per-chat
//! sequence numbers, writes MongoDB with as few round trips as it can, publishes the
//! resulting events to `CHAT_EVT` (awaiting their acks together), answers the issuer,
//! and only then acks the commands. A crash anywhere leads to a redelivery that finds
//! the stored documents and republishes the same event ids.
//!
//! Layout: [`pipeline`] (fetching, batching, acking), [`commands`] (one file per
//! command), [`effects`] (what a batch publishes), [`metrics`].

pub mod commands;
pub mod effects;
pub mod metrics;
pub mod pipeline;

use std::{net::SocketAddr, time::Duration};

use chat_core::{
    StartupError,
    config::{AdminArgs, LogArgs, MongoArgs, NatsArgs, ShutdownArgs},
    probes::Probe,
};
use chat_nats::streams::{self, StreamSettings};
use chat_store::Store;
use clap::Parser;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// Connects, creates indexes, streams and the consumer, and starts consuming.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    metrics::register();
    let nats = chat_core::connect::nats(&config.nats, "persister").await?;
    let db = chat_core::connect::mongodb(&config.mongo, "persister").await?;
    let store = Store::new(db.clone());
    store.ensure_indexes().await.map_err(|error| StartupError::dependency("creating MongoDB indexes", error))?;
    let js = async_nats::jetstream::new(nats.clone());
    let settings = StreamSettings { replicas: config.nats.stream_replicas, ..Default::default() };
    streams::ensure_all_streams(&js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;
    let stream = streams::ensure_stream(&js, streams::command_stream(settings))
        .await
        .map_err(|error| StartupError::dependency("opening CHAT_CMD", error))?;
    let consumer = streams::ensure_consumer(&stream, streams::persister_consumer_config())
        .await
        .map_err(|error| StartupError::dependency("creating the persister consumer", error))?;

    let admin_addr = config
        .admin
        .admin_addr
        .unwrap_or_else(|| DEFAULT_ADMIN_ADDR.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9101))));
    let probes = vec![Probe::nats(nats.clone()), Probe::mongodb(db)];
    let admin_shutdown = CancellationToken::new();
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, admin_shutdown.clone()).await?;

    let pipeline = pipeline::Pipeline { store, nats: nats.clone(), js, batch_max: config.batch_max.max(1) };
    let grace = Duration::from_secs(config.shutdown.shutdown_grace_s);
    let task = tokio::spawn(async move {
        let result = pipeline.run(consumer, shutdown, grace).await;
        let _ = nats.flush().await;
        admin_shutdown.cancel();
        result
    });
    tracing::info!(%admin_addr, "persister started");
    Ok(Running { admin_addr, task, admin })
}
