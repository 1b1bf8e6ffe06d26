//! JetStream publishing: every publish carries a `Nats-Msg-Id` so a retry is stored
//! once, and batches await their acks together because one-at-a-time acks are about ten
//! times slower.

use async_nats::{
    HeaderMap,
    jetstream::{self, context::PublishErrorKind},
};
use bytes::Bytes;
use futures::future::try_join_all;

/// One message to publish to a stream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Subject inside the stream.
    pub subject: String,
    /// Deduplication id (`Nats-Msg-Id`).
    pub msg_id: String,
    /// Extra headers (trace context, timestamps).
    pub headers: HeaderMap,
    /// JSON body.
    pub payload: Bytes,
}

impl Outgoing {
    /// A message with a deduplication id and no other headers yet.
    pub fn new(subject: String, msg_id: String, payload: Bytes) -> Self {
        Outgoing { subject, msg_id, headers: HeaderMap::new(), payload }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The server did not take it (no stream, timeout, disconnected).
    #[error("publish to {subject} failed: {source}")]
    Rejected {
        /// Where it was going.
        subject: String,
        /// Why.
        source: jetstream::context::PublishError,
    },
}

impl PublishError {
    /// True when the cause is transient (timeout, no responders while the server
    /// restarts) and a retry may succeed.
    pub fn is_transient(&self) -> bool {
        let PublishError::Rejected { source, .. } = self;
        matches!(
            source.kind(),
            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound
        )
    }
}

/// Publishes one message and waits until the stream has stored it.
pub async fn publish_one(
    js: &jetstream::Context,
    message: Outgoing,
) -> Result<jetstream::publish::PublishAck, PublishError> {
    let mut acks = publish_all(js, vec![message]).await?;
    Ok(acks.remove(0))
}

/// Publishes every message, then waits for all their acks; the acks come back in order.
pub async fn publish_all(
    js: &jetstream::Context,
    messages: Vec<Outgoing>,
) -> Result<Vec<jetstream::publish::PublishAck>, PublishError> {
    let mut pending = Vec::with_capacity(messages.len());
    for message in messages {
        let subject = message.subject.clone();
        let future =
            send(js, message).await.map_err(|source| PublishError::Rejected { subject: subject.clone(), source })?;
        pending.push(async move { future.await.map_err(|source| PublishError::Rejected { subject, source }) });
    }
    try_join_all(pending).await
}

/// Writes one message with its `Nats-Msg-Id`; the returned future resolves when the
/// stream has stored it, so a caller can go on before the ack arrives.
pub async fn send(
    js: &jetstream::Context,
    message: Outgoing,
) -> Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError> {
    let mut headers = message.headers;
    headers.insert(async_nats::header::NATS_MESSAGE_ID, message.msg_id.as_str());
    js.publish_with_headers(message.subject, headers, message.payload).await
}
