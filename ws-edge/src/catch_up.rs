//! Replaying one chat's persisted events from `CHAT_EVT` to a user who became a member
//! before this edge delivered the chat to them. The notifier names where the event
//! that made them a member is stored; between that event and the moment this edge's
//! subscription to the chat was in place, only the stream has what was published.
//!
//! An ordered consumer (ephemeral, filtered on the chat) reads from there until it has
//! caught up with the stream. The replay is bounded: a user who joined so long ago that
//! more than [`MAX_REPLAYED`] events followed gets the newest live events only and
//! resumes with `sync`, as after a reconnect.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;

/// Most events one replay delivers, the default send queue's length: more would close
/// the connection as a slow consumer anyway.
pub const MAX_REPLAYED: usize = 1024;

/// How long a replay may take before the user gets the live events only.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    /// `CHAT_EVT` or the consumer could not be reached.
    #[error("CHAT_EVT unavailable: {0}")]
    Unavailable(String),
    /// The stream did not answer in time.
    #[error("replay timed out")]
    TimedOut,
    /// More events followed the join than one replay delivers.
    #[error("more than {MAX_REPLAYED} events since the join")]
    TooFarBehind,
}

/// The chat's persisted events from `stream_seq` (inclusive) to the stream's end.
pub async fn events_from(
    js: &jetstream::Context,
    chat_id: &str,
    stream_seq: u64,
) -> Result<Vec<async_nats::Message>, CatchUpError> {
    tokio::time::timeout(REPLAY_TIMEOUT, read(js, chat_id, stream_seq)).await.map_err(|_| CatchUpError::TimedOut)?
}

async fn read(
    js: &jetstream::Context,
    chat_id: &str,
    stream_seq: u64,
) -> Result<Vec<async_nats::Message>, CatchUpError> {
    let unavailable = |error: &dyn std::fmt::Display| CatchUpError::Unavailable(error.to_string());
    let stream = js.get_stream(chat_nats::streams::EVT_STREAM).await.map_err(|e| unavailable(&e))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: chat_nats::subjects::chat_events(chat_id),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: stream_seq },
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
    let mut replayed = Vec::new();
    while let Some(next) = messages.next().await {
        let message = next.map_err(|e| unavailable(&e))?;
        let pending = message.info().map(|info| info.pending).unwrap_or(0);
        replayed.push(message.message);
        if pending == 0 {
            return Ok(replayed);
        }
        if replayed.len() >= MAX_REPLAYED {
            return Err(CatchUpError::TooFarBehind);
        }
    }
    Ok(replayed)
}
