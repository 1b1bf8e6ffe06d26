//! The notifier: reacts to persisted events on `CHAT_EVT` (durable consumer
//! `notifier`).
//!
//! Layout: [`deliveries`] turns membership events into `user.<id>.chat.joined` /
//! `chat.left` (edges start or stop delivering the chat at once); [`push`] makes a push
//! request on `push.<user_id>` (stream `PUSH`) for every offline member of a chat with
//! a new message, with the chat title, sender name, a preview and the unread badge;
//! [`directory`] remembers titles and names between messages, [`badges`] the unread
//! counts behind the badges.

use std::{net::SocketAddr, time::Duration};

pub mod badges;
pub mod deliveries;
pub mod directory;
pub mod metrics;
pub mod push;

use async_nats::jetstream::{self, AckKind};
use chat_core::{
    StartupError,
    config::{AdminArgs, LogArgs, MongoArgs, NatsArgs, RedisArgs, ShutdownArgs},
    connect::LazyRedis,
    probes::Probe,
};
use chat_nats::{
    events::{ChatEvent, EventBody},
    streams,
};
use chat_store::Store;
use clap::Parser;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The notifier's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "notifier", about = "User-scoped deliveries for persisted chat events")]
pub struct Config {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// MongoDB (reads: chats, users, read marks).
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Redis (presence reads; optional).
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Admin port.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
}

/// A started notifier.
pub struct Running {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub admin_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until it has stopped.
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Connects and consumes until `shutdown`.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartupError> {
    metrics::register();
    let nats = chat_core::connect::nats(&config.nats, "notifier").await?;
    let db = chat_core::connect::mongodb(&config.mongo, "notifier").await?;
    let store = Store::new(db.clone());
    let redis = LazyRedis::new(&config.redis)?;
    let js = jetstream::new(nats.clone());
    let settings = config.nats.stream_settings();
    streams::ensure_streams_exist(&js, settings)
        .await
        .map_err(|error| StartupError::dependency("creating streams", error))?;
    // The notifier owns PUSH; CHAT_EVT belongs to the persister.
    streams::ensure_stream(&js, streams::push_stream(settings))
        .await
        .map_err(|error| StartupError::dependency("updating PUSH", error))?;
    let stream = js
        .get_stream(streams::EVT_STREAM)
        .await
        .map_err(|error| StartupError::dependency("opening CHAT_EVT", error))?;
    let consumer = streams::ensure_consumer(&stream, streams::notifier_consumer_config())
        .await
        .map_err(|error| StartupError::dependency("creating the notifier consumer", error))?;
    // Subscribed before consuming, so no event after the first message goes unheard.
    let mut invalidations = directory::Invalidations::subscribe(&nats)
        .await
        .map_err(|error| StartupError::dependency("subscribing to membership events", error))?;
    let mut read_marks = badges::ReadMarks::subscribe(&nats)
        .await
        .map_err(|error| StartupError::dependency("subscribing to read marks", error))?;
    let mut messages =
        consumer.messages().await.map_err(|error| StartupError::dependency("consuming CHAT_EVT", error))?;

    let admin_addr = config.admin.admin_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9102)));
    let admin_shutdown = CancellationToken::new();
    let probes = vec![Probe::nats(nats.clone()), Probe::mongodb(db), Probe::lazy_redis(redis.clone(), false)];
    let (admin_addr, admin) = chat_core::admin::serve(admin_addr, probes, admin_shutdown.clone()).await?;
    let consume = tokio::spawn(async move {
        let mut directory = directory::Directory::default();
        let mut badges = badges::Badges::default();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(%error, "CHAT_EVT consumer error");
                    continue;
                }
                None => break,
            };
            let traceparent = message.headers.as_ref().and_then(|h| h.get(chat_nats::headers::TRACEPARENT));
            tracing::debug!(
                trace_id = traceparent.and_then(|t| chat_core::trace::trace_id(t.as_str())),
                subject = %message.subject,
                "event received"
            );
            invalidations.apply(&mut directory);
            read_marks.apply(&mut badges);
            let stream_seq = message.info().ok().map(|info| info.stream_sequence);
            let remembered = Remembered { directory: &mut directory, badges: &mut badges };
            match handle(&nats, &js, &store, remembered, &redis, &message.payload, stream_seq).await {
                Ok(()) => {
                    let _ = message.ack().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "delivery failed; retrying");
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_millis(500)))).await;
                }
            }
        }
        let _ = nats.flush().await;
        admin_shutdown.cancel();
    });
    tracing::info!(%admin_addr, "notifier started");
    Ok(Running { admin_addr, tasks: vec![consume, admin] })
}

/// What the consumer remembers between events.
struct Remembered<'a> {
    directory: &'a mut directory::Directory,
    badges: &'a mut badges::Badges,
}

async fn handle(
    nats: &async_nats::Client,
    js: &jetstream::Context,
    store: &Store,
    remembered: Remembered<'_>,
    redis: &LazyRedis,
    payload: &[u8],
    stream_seq: Option<u64>,
) -> Result<(), HandleError> {
    let Ok(event) = serde_json::from_slice::<ChatEvent>(payload) else {
        tracing::warn!("unreadable event skipped");
        return Ok(());
    };
    for (subject, delivery) in deliveries::for_event(&event, stream_seq) {
        if let Ok(body) = serde_json::to_vec(&delivery) {
            nats.publish(subject, body.into()).await?;
        }
    }
    remembered.badges.observe(&event);
    if let EventBody::MsgCreated { message } = &event.body {
        let pushed = push::for_message(store, remembered.directory, remembered.badges, redis, js, message).await?;
        metrics::PUSHES.inc_by(pushed as u64);
    }
    Ok(())
}

/// Why an event must be retried.
#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error(transparent)]
    Publish(#[from] async_nats::PublishError),
    #[error(transparent)]
    Push(#[from] push::PushError),
}
