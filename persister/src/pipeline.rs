//! Fetching, batching and acking. Consecutive `msg.send` commands are handled together
//! (one MongoDB round trip per step for the whole run); any other command is a barrier
//! handled on its own, so per-chat order is exactly the stream's order.

use std::time::Duration;

use async_nats::jetstream::{
    self, AckKind,
    consumer::{PullConsumer, pull},
};
use chat_nats::{
    commands::{Command, CommandEnvelope},
    publish,
};
use chat_store::{Store, StoreError};
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::{commands, effects::Effects, metrics};

/// How long a stopping persister waits for more of what it had fetched.
const QUIET: Duration = Duration::from_millis(50);

/// How long a command waits before redelivery after a transient failure.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The consumer's message stream could not be opened.
    #[error("cannot consume CHAT_CMD: {0}")]
    Consume(String),
    /// The pipeline task panicked.
    #[error("persister task panicked: {0}")]
    Panicked(String),
}

/// A failure that makes the rest of the batch wait for redelivery.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// MongoDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing events failed.
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
}

/// The consuming side of the persister.
pub struct Pipeline {
    /// MongoDB.
    pub store: Store,
    /// Core NATS, for answers.
    pub nats: async_nats::Client,
    /// JetStream, for events.
    pub js: jetstream::Context,
    /// Most commands per batch.
    pub batch_max: usize,
}

/// A parsed command with the NATS message to ack.
pub struct Incoming {
    /// The command.
    pub envelope: CommandEnvelope,
    /// Its trace context.
    pub traceparent: Option<String>,
    /// True when JetStream delivered it before (a crash or timeout happened).
    pub redelivered: bool,
    message: jetstream::Message,
}

impl Pipeline {
    /// Consumes until `shutdown`; the batch in flight is finished (or left unacked for
    /// redelivery) within `grace`.
    pub async fn run(
        self,
        consumer: PullConsumer,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), PipelineError> {
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.batch_max)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|error| PipelineError::Consume(error.to_string()))?;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = messages.next() => next,
            };
            let batch = match first {
                Some(Ok(message)) => self.fill_batch(message, &mut messages),
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer stream error; continuing");
                    continue;
                }
                None => return Err(PipelineError::Consume("consumer stream ended".into())),
            };
            // A batch runs to the end however long MongoDB makes it wait, except at
            // shutdown, where it gets the grace period and is otherwise left to be
            // redelivered to another replica.
            let work = self.handle_batch(batch);
            tokio::pin!(work);
            let deadline = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                () = &mut work => {}
                () = deadline => {
                    tracing::error!("batch did not finish within the grace period; it will be redelivered");
                    return Ok(());
                }
            }
        }
        let finished = self.finish_fetched(&mut messages, tokio::time::Instant::now() + grace).await;
        tracing::info!(finished, "persister drained");
        Ok(())
    }

    /// The batch that starts with `first`: whatever else is already fetched, up to the
    /// batch size.
    fn fill_batch(&self, first: jetstream::Message, messages: &mut pull::Stream) -> Vec<jetstream::Message> {
        let mut batch = vec![first];
        while batch.len() < self.batch_max {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        batch
    }

    /// At shutdown, handles what this replica had already fetched (until the stream is
    /// quiet for [`QUIET`], or `stop_by`). Dropped instead, those commands would wait
    /// out the ack wait while the next replica stored newer ones of the same chats.
    async fn finish_fetched(&self, messages: &mut pull::Stream, stop_by: tokio::time::Instant) -> usize {
        let mut finished = 0;
        loop {
            let quiet_until = stop_by.min(tokio::time::Instant::now() + QUIET);
            let batch = match tokio::time::timeout_at(quiet_until, messages.next()).await {
                Ok(Some(Ok(message))) => self.fill_batch(message, messages),
                Ok(Some(Err(_))) => continue,
                Ok(None) | Err(_) => return finished,
            };
            finished += batch.len();
            if tokio::time::timeout_at(stop_by, self.handle_batch(batch)).await.is_err() {
                tracing::error!("batch did not finish within the grace period; it will be redelivered");
                return finished;
            }
        }
    }

    /// Handles one batch in stream order and acks what was done.
    pub async fn handle_batch(&self, batch: Vec<jetstream::Message>) {
        metrics::BATCH_SIZE.observe(batch.len() as f64);
        let mut incoming = Vec::with_capacity(batch.len());
        for message in batch {
            match parse(message).await {
                Some(parsed) => incoming.push(parsed),
                None => continue,
            }
        }
        let mut rest = incoming.into_iter().peekable();
        while rest.peek().is_some() {
            let mut segment = Vec::new();
            while let Some(next) = rest.next_if(|next| matches!(next.envelope.command, Command::MsgSend { .. })) {
                segment.push(next);
            }
            if segment.is_empty() {
                segment.extend(rest.next());
            }
            if let Err(error) = self.handle_segment(&segment).await {
                tracing::warn!(%error, "batch failed; its commands will be redelivered");
                let remaining: Vec<Incoming> = rest.collect();
                for command in segment.iter().chain(remaining.iter()) {
                    metrics::COMMANDS.with_label_values(&[command.envelope.command.name(), "retried"]).inc();
                    let _ = command.message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                }
                return;
            }
        }
    }

    async fn handle_segment(&self, segment: &[Incoming]) -> Result<(), HandleError> {
        let mut effects = Effects::default();
        let Some(first) = segment.first() else { return Ok(()) };
        let store = &self.store;
        match &first.envelope.command {
            Command::MsgSend { .. } => commands::msg_send::handle(store, segment, &mut effects).await?,
            Command::MsgEdit { .. } => commands::msg_edit::handle(store, first, &mut effects).await?,
            Command::MsgDelete { .. } => commands::msg_delete::handle(store, first, &mut effects).await?,
            Command::Read { .. } => commands::read::handle(store, first, &mut effects).await?,
            Command::ChatCreate { .. } => commands::chat_create::handle(store, first, &mut effects).await?,
            Command::ChatUpdate { .. } => commands::chat_update::handle(store, first, &mut effects).await?,
            Command::MemberAdd { .. } => commands::member_add::handle(store, first, &mut effects).await?,
            Command::MemberRemove { .. } => commands::member_remove::handle(store, first, &mut effects).await?,
        }
        let now = chrono::Utc::now();
        for command in segment {
            let waited = (now - command.envelope.issued_at).num_microseconds().unwrap_or(0).max(0);
            metrics::PERSIST_SECONDS.observe(waited as f64 / 1e6);
        }
        publish::publish_all(&self.js, effects.outgoing_events(now.timestamp_micros())).await?;
        for (subject, body) in effects.notices {
            if let Err(error) = self.nats.publish(subject, body).await {
                tracing::warn!(%error, "cannot publish a notice");
            }
        }
        for command in segment {
            tracing::debug!(
                trace_id = command.traceparent.as_deref().and_then(chat_core::trace::trace_id),
                chat_id = command.envelope.chat_id(),
                user_id = %command.envelope.actor.user_id,
                command = command.envelope.command.name(),
                "command handled"
            );
            if let Err(error) = command.message.ack().await {
                tracing::warn!(%error, "ack failed; the command will be redelivered and found done");
            }
        }
        Ok(())
    }
}

async fn parse(message: jetstream::Message) -> Option<Incoming> {
    match serde_json::from_slice::<CommandEnvelope>(&message.payload) {
        Ok(envelope) => {
            let redelivered = message.info().map(|info| info.delivered > 1).unwrap_or(false);
            let traceparent = crate::effects::traceparent(message.headers.as_ref());
            Some(Incoming { envelope, traceparent, redelivered, message })
        }
        Err(error) => {
            tracing::error!(subject = %message.subject, %error, "malformed command dropped");
            metrics::COMMANDS.with_label_values(&["unknown", "malformed"]).inc();
            let _ = message.ack_with(AckKind::Term).await;
            None
        }
    }
}
