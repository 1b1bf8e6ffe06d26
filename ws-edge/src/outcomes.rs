//! The persister's answers to this edge's commands, through one subscription to
//! `edge.<edge_id>.outcome.>`: every command a connection publishes names its own
//! subject there (`edge.<edge_id>.outcome.<user_id>.<conn_id>`), so an outcome reaches
//! the edge and the socket that sent the command, and no other. A rejection becomes
//! the client's `error` with its `ref` (and `retry_after_ms` for slow mode or a mute); a command that was done needs nothing more (the
//! client had its `ack` when JetStream stored the command, and the event follows), so
//! the persister publishes no outcome for it here. One that arrives (from a persister
//! of an earlier version during a rolling upgrade) is ignored.

use chat_nats::{commands::CommandOutcome, subjects};
use futures::StreamExt;

use crate::{hub::Hub, protocol::ServerFrame, registry::AbortOnDrop};

/// Subscribes to this edge's outcome subjects (in place before this returns) and
/// serves them.
pub async fn start(
    nats: &async_nats::Client,
    edge_id: &str,
    hub: Hub,
) -> Result<AbortOnDrop, async_nats::SubscribeError> {
    let mut subscriber = nats.subscribe(subjects::edge_outcomes(edge_id)).await?;
    Ok(AbortOnDrop(tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let Some((user_id, conn_id)) = subjects::outcome_target_of(&message.subject) else { continue };
            match serde_json::from_slice::<CommandOutcome>(&message.payload) {
                Ok(CommandOutcome::Rejected(rejection)) => {
                    let frame = ServerFrame::Error {
                        reference: rejection.reference.as_deref(),
                        code: rejection.code,
                        message: &rejection.message,
                        client_msg_id: rejection.client_msg_id.as_deref(),
                        retry_after_ms: rejection.retry_after_ms,
                    }
                    .to_text();
                    hub.deliver_to_conn(user_id, conn_id, frame.into());
                }
                Ok(CommandOutcome::Done { .. } | CommandOutcome::Reported { .. }) => {}
                Err(error) => tracing::warn!(%error, user_id, conn_id, "unreadable command outcome"),
            }
        }
    })))
}
