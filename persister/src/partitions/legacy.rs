//! Upgrading from the single consumer `persister` of versions before partitioning.
//!
//! Such a `CHAT_CMD` may still hold commands under their unpartitioned subjects, and a
//! work queue refuses partition consumers while an unfiltered one exists. So before it
//! claims partitions, a replica that finds the old consumer deletes it and tries to
//! create the drain consumer `persister-upgrade` (unfiltered, deliver-all: the oldest
//! unacknowledged command first). Only one replica can create it; that one handles
//! commands in stream order until the first one stored under a partitioned subject
//! (everything after the transform was added is partitioned), then deletes the drain
//! consumer, and the partition consumers take over from there. If it dies, the drain
//! consumer disappears after ten seconds without pulls and another replica starts over.

use std::time::Duration;

use async_nats::jetstream::{self, ErrorCode, consumer::PullConsumer, context::ConsumerInfoErrorKind, stream::Stream};
use chat_nats::{commands::CommandEnvelope, streams, subjects};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{fence::Fence, known_chats::KnownChats, pipeline::Pipeline};

/// Returns once neither the old consumer nor a drain is left (or at `shutdown`).
pub async fn drain(stream: &Stream, pipeline: &Pipeline, shutdown: &CancellationToken, tick: Duration) {
    loop {
        let (legacy, draining) = (
            exists(stream, streams::LEGACY_PERSISTER_CONSUMER).await,
            exists(stream, streams::LEGACY_DRAIN_CONSUMER).await,
        );
        match (legacy, draining) {
            (Ok(false), Ok(false)) => return,
            (Ok(_), Ok(false)) => {
                tracing::warn!("CHAT_CMD has the pre-partition consumer `persister`; draining it first");
                let _ = stream.delete_consumer(streams::LEGACY_PERSISTER_CONSUMER).await;
                if let Ok(consumer) = stream.create_consumer_strict(streams::legacy_drain_config()).await {
                    match drain_through(consumer, pipeline, shutdown).await {
                        Ok(handled) => tracing::info!(handled, "pre-partition commands drained"),
                        Err(error) => tracing::error!(%error, "draining pre-partition commands failed; retrying"),
                    }
                    let _ = stream.delete_consumer(streams::LEGACY_DRAIN_CONSUMER).await;
                    continue;
                }
            }
            (Ok(_), Ok(true)) => tracing::info!("another replica is draining pre-partition commands"),
            (Err(error), _) | (_, Err(error)) => tracing::warn!(%error, "cannot read CHAT_CMD's consumers"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

async fn exists(stream: &Stream, name: &str) -> Result<bool, String> {
    match stream.consumer_info(name).await {
        Ok(_) => Ok(true),
        Err(error) => match error.kind() {
            ConsumerInfoErrorKind::NotFound => Ok(false),
            ConsumerInfoErrorKind::JetStream(inner) if inner.error_code() == ErrorCode::CONSUMER_NOT_FOUND => Ok(false),
            _ => Err(error.to_string()),
        },
    }
}

/// Handles commands in stream order up to the first partitioned one; returns how many.
async fn drain_through(
    consumer: PullConsumer,
    pipeline: &Pipeline,
    shutdown: &CancellationToken,
) -> Result<usize, async_nats::Error> {
    let mut handled = 0;
    while !shutdown.is_cancelled() {
        let mut fetched =
            consumer.fetch().max_messages(pipeline.batch_max).expires(Duration::from_secs(1)).messages().await?;
        let mut batch = Vec::new();
        let mut reached_partitions = false;
        while let Some(message) = fetched.next().await {
            let message = message?;
            if !stored_unpartitioned(&message) {
                reached_partitions = true;
                break;
            }
            batch.push(message);
        }
        let quiet = batch.is_empty();
        handled += batch.len();
        // Any of these may have reached the old consumer's owner: all count as replays.
        pipeline.handle_batch(batch, &Fence::always(), u64::MAX, &mut KnownChats::default()).await;
        if reached_partitions || quiet {
            return Ok(handled);
        }
    }
    Ok(handled)
}

/// True for a command stored before the partition transform (its subject is the one
/// it was published on); a payload that does not parse goes to the pipeline, which
/// drops it.
fn stored_unpartitioned(message: &jetstream::Message) -> bool {
    match serde_json::from_slice::<CommandEnvelope>(&message.payload) {
        Ok(envelope) => message.subject.as_str() == subjects::command(envelope.chat_id(), envelope.command.name()),
        Err(_) => true,
    }
}
