//! Stream and consumer definitions, in one place, created idempotently at start-up by
//! whichever binary needs them.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};

use crate::subjects;

/// The work queue of commands for the persister.
pub const CMD_STREAM: &str = "CHAT_CMD";
/// The log of persisted events.
pub const EVT_STREAM: &str = "CHAT_EVT";
/// Push notification requests for the platform's push gateway.
pub const PUSH_STREAM: &str = "PUSH";
/// The persister's durable pull consumer on `CHAT_CMD`.
pub const PERSISTER_CONSUMER: &str = "persister";
/// The notifier's durable pull consumer on `CHAT_EVT`.
pub const NOTIFIER_CONSUMER: &str = "notifier";

/// How long JetStream remembers a `Nats-Msg-Id` to drop a retried publish.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a delivered command may stay unacknowledged before it is redelivered.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// Stream settings that an operator may tune per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Copies of each stream in a cluster (3 in production, 1 locally).
    pub replicas: usize,
    /// How long persisted events stay in `CHAT_EVT`.
    pub event_max_age: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings { replicas: 1, event_max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// `CHAT_CMD`: commands, file storage, deleted once the persister acks them.
pub fn command_stream(settings: StreamSettings) -> Config {
    Config {
        name: CMD_STREAM.to_owned(),
        description: Some("chat commands from edges and the api, consumed by the persister".into()),
        subjects: vec![subjects::CMD_ALL.to_owned()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

/// `CHAT_EVT`: persisted events, kept for a while so that late consumers catch up.
pub fn event_stream(settings: StreamSettings) -> Config {
    Config {
        name: EVT_STREAM.to_owned(),
        description: Some("persisted chat events, fanned out to edges and the notifier".into()),
        subjects: vec![subjects::EVT_ALL.to_owned()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        max_age: settings.event_max_age,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// `PUSH`: push requests for offline users, kept a day for the gateway to drain.
pub fn push_stream(settings: StreamSettings) -> Config {
    Config {
        name: PUSH_STREAM.to_owned(),
        description: Some("push notification requests for the platform's push gateway".into()),
        subjects: vec![subjects::PUSH_ALL.to_owned()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        max_age: Duration::from_secs(24 * 3600),
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The persister's consumer: explicit acks, bounded in-flight work.
pub fn persister_consumer_config() -> pull::Config {
    pull::Config {
        durable_name: Some(PERSISTER_CONSUMER.to_owned()),
        description: Some("the persister's share of CHAT_CMD".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        deliver_policy: DeliverPolicy::All,
        max_ack_pending: 10_000,
        max_deliver: -1,
        ..Default::default()
    }
}

/// The notifier's consumer: every new event, explicit acks.
pub fn notifier_consumer_config() -> pull::Config {
    pull::Config {
        durable_name: Some(NOTIFIER_CONSUMER.to_owned()),
        description: Some("the notifier's view of CHAT_EVT".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        deliver_policy: DeliverPolicy::New,
        max_ack_pending: 10_000,
        ..Default::default()
    }
}

/// Errors while setting up streams and consumers.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A stream could not be created or updated.
    #[error("cannot create or update stream {name}: {source}")]
    Stream {
        /// The stream.
        name: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A consumer could not be created.
    #[error("cannot create consumer {name}: {source}")]
    Consumer {
        /// The consumer.
        name: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Creates the stream, or brings an existing one to `config`.
pub async fn ensure_stream(js: &jetstream::Context, config: Config) -> Result<Stream, SetupError> {
    let name = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(|source| SetupError::Stream { name: name.clone(), source: Box::new(source) })?;
    js.get_stream(&name).await.map_err(|source| SetupError::Stream { name, source: Box::new(source) })
}

/// Creates all three streams.
pub async fn ensure_all_streams(js: &jetstream::Context, settings: StreamSettings) -> Result<(), SetupError> {
    ensure_stream(js, command_stream(settings)).await?;
    ensure_stream(js, event_stream(settings)).await?;
    ensure_stream(js, push_stream(settings)).await?;
    Ok(())
}

/// Creates (or updates) a durable pull consumer on `stream`.
pub async fn ensure_consumer(stream: &Stream, config: pull::Config) -> Result<PullConsumer, SetupError> {
    let name = config.durable_name.clone().unwrap_or_default();
    stream.create_consumer(config).await.map_err(|source| SetupError::Consumer { name, source: Box::new(source) })
}
