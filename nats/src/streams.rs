//! Stream, consumer and bucket definitions, in one place.
//!
//! Each stream has one owner that creates it or brings it to its settings
//! ([`ensure_stream`]): the persister owns `CHAT_CMD` and `CHAT_EVT`, the notifier owns
//! `PUSH`. Every other binary only creates a missing stream ([`ensure_streams_exist`])
//! and never updates one, so that during a rolling upgrade two versions cannot take
//! turns rewriting a stream's settings.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    kv,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream, SubjectTransform},
};

use crate::subjects;

/// The work queue of commands for the persister.
pub const CMD_STREAM: &str = "CHAT_CMD";
/// The log of persisted events.
pub const EVT_STREAM: &str = "CHAT_EVT";
/// Push notification requests for the platform's push gateway.
pub const PUSH_STREAM: &str = "PUSH";
/// The single persister consumer of versions before partitioning; a persister that
/// finds it drains it before it serves partitions (see `docs/bus.md`).
pub const LEGACY_PERSISTER_CONSUMER: &str = "persister";
/// The consumer through which one persister replica drains what the legacy consumer
/// left, once, when upgrading to partitions.
pub const LEGACY_DRAIN_CONSUMER: &str = "persister-upgrade";
/// The durable consumer of partition `n` is named this prefix and `n`.
pub const PARTITION_CONSUMER_PREFIX: &str = "persister-";
/// The key-value bucket where persister replicas hold partition leases.
pub const PERSISTER_LEASES_BUCKET: &str = "CHAT_PERSISTER_LEASES";
/// Partitions of `CHAT_CMD` unless configured otherwise.
pub const DEFAULT_COMMAND_PARTITIONS: u32 = 16;
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
    /// Partitions of `CHAT_CMD`: the most persister replicas that can share the work.
    pub command_partitions: u32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 1,
            event_max_age: Duration::from_secs(7 * 24 * 3600),
            command_partitions: DEFAULT_COMMAND_PARTITIONS,
        }
    }
}

/// `CHAT_CMD`: commands, file storage, deleted once the persister acks them. The
/// stream stores `chat.cmd.<chat_id>.<command>` as `chat.cmd.<partition>.<chat_id>.<command>`,
/// the partition a hash of the chat id, so that each partition's consumer sees every
/// command of its chats in order and no other chat's.
pub fn command_stream(settings: StreamSettings) -> Config {
    Config {
        name: CMD_STREAM.to_owned(),
        description: Some("chat commands from edges and the api, consumed by the persister".into()),
        subjects: vec![subjects::CMD_ALL.to_owned()],
        subject_transform: Some(SubjectTransform {
            source: subjects::CMD_PUBLISHED.to_owned(),
            destination: subjects::cmd_partition_transform(settings.command_partitions),
        }),
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

/// The partitions `CHAT_CMD` is configured with, read from its subject transform
/// (`None` before partitioning).
pub fn command_partitions_of(config: &Config) -> Option<u32> {
    config.subject_transform.as_ref().and_then(|transform| subjects::partitions_in_transform(&transform.destination))
}

/// The name of the persister's durable consumer of one partition: `persister-<n>`.
pub fn partition_consumer_name(partition: u32) -> String {
    format!("{PARTITION_CONSUMER_PREFIX}{partition}")
}

/// The consumer of one partition: explicit acks, every command still in the stream
/// (a fresh consumer starts from the oldest unacknowledged one), bounded in-flight work.
pub fn partition_consumer_config(partition: u32) -> pull::Config {
    pull::Config {
        durable_name: Some(partition_consumer_name(partition)),
        description: Some(format!("the persister's partition {partition} of CHAT_CMD")),
        filter_subject: subjects::cmd_partition(partition),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        deliver_policy: DeliverPolicy::All,
        max_ack_pending: 2_000,
        max_deliver: -1,
        ..Default::default()
    }
}

/// The upgrade drain: every command still in the stream, oldest first; gone by itself
/// if the replica draining it dies, so that another one starts over.
pub fn legacy_drain_config() -> pull::Config {
    pull::Config {
        durable_name: Some(LEGACY_DRAIN_CONSUMER.to_owned()),
        description: Some("drains commands stored before CHAT_CMD was partitioned".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        deliver_policy: DeliverPolicy::All,
        max_deliver: -1,
        inactive_threshold: Duration::from_secs(10),
        ..Default::default()
    }
}

/// The lease bucket: one key per partition and one per live replica, each gone
/// `lease_ttl` after its last write unless renewed.
pub fn persister_leases_bucket(settings: StreamSettings, lease_ttl: Duration) -> kv::Config {
    kv::Config {
        bucket: PERSISTER_LEASES_BUCKET.to_owned(),
        description: "which persister replica owns which CHAT_CMD partition".into(),
        history: 1,
        max_age: lease_ttl,
        storage: StorageType::Memory,
        num_replicas: settings.replicas,
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

/// Creates each of the three streams that does not exist yet; existing ones are left
/// as their owner set them.
pub async fn ensure_streams_exist(js: &jetstream::Context, settings: StreamSettings) -> Result<(), SetupError> {
    for config in [command_stream(settings), event_stream(settings), push_stream(settings)] {
        let name = config.name.clone();
        if js.get_stream(&name).await.is_ok() {
            continue;
        }
        if let Err(create_error) = js.create_stream(config).await {
            // Another binary may have created it in between.
            js.get_stream(&name).await.map_err(|_| SetupError::Stream { name, source: Box::new(create_error) })?;
        }
    }
    Ok(())
}

/// Creates (or updates) a durable pull consumer on `stream`.
pub async fn ensure_consumer(stream: &Stream, config: pull::Config) -> Result<PullConsumer, SetupError> {
    let name = config.durable_name.clone().unwrap_or_default();
    stream.create_consumer(config).await.map_err(|source| SetupError::Consumer { name, source: Box::new(source) })
}
