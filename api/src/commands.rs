//! Writes: publish a command to `CHAT_CMD` with a private reply subject, then wait for
//! the persister's outcome. If the persister does not answer in time the command is
//! still queued; the client gets 503 and may retry safely (sends are idempotent on
//! `client_msg_id`, chat creation on its direct pair or generated id).

use bytes::Bytes;
use chat_nats::{
    commands::{Actor, Command, CommandEnvelope, CommandOutcome},
    headers,
    publish::{Outgoing, publish_one},
    subjects,
};
use futures::StreamExt;

use crate::{auth::Caller, error::ApiError, state::AppState};

/// Submits a command and waits for what the persister did with it.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    command: Command,
    traceparent: Option<&str>,
) -> Result<CommandOutcome, ApiError> {
    let inner = &state.inner;
    // Every REST write comes through here, validated by its route: only well-formed
    // writes count against the budgets.
    inner.write_budgets.take(caller.id(), &caller.0.roles, &command)?;
    let reply = inner.nats.new_inbox();
    let mut answers = inner
        .nats
        .subscribe(reply.clone())
        .await
        .map_err(|_| ApiError::unavailable("message bus is unavailable; retry later"))?;
    let envelope = CommandEnvelope {
        v: chat_nats::PAYLOAD_VERSION,
        id: chat_core::ids::new_id(),
        actor: Actor { user_id: caller.id().to_owned(), roles: caller.0.roles.clone() },
        reference: None,
        conn_id: None,
        reply: Some(reply),
        issued_at: chrono::Utc::now(),
        command,
    };
    let payload = serde_json::to_vec(&envelope).map_err(ApiError::internal)?;
    let subject = subjects::api_command(envelope.chat_id(), envelope.command.name());
    let mut outgoing = Outgoing::new(subject, envelope.id.clone(), Bytes::from(payload));
    if let Some(traceparent) = traceparent {
        outgoing = outgoing.with_header(headers::TRACEPARENT, traceparent);
    }
    publish_one(&inner.js, outgoing).await.map_err(|error| {
        tracing::warn!(%error, "command publish failed");
        ApiError::unavailable("message bus is unavailable; retry later")
    })?;
    let answer = tokio::time::timeout(inner.command_timeout, answers.next())
        .await
        .map_err(|_| ApiError::unavailable("accepted but not processed in time; retry with the same request"))?
        .ok_or_else(|| ApiError::unavailable("message bus connection lost; retry later"))?;
    let _ = answers.unsubscribe().await;
    serde_json::from_slice(&answer.payload).map_err(ApiError::internal)
}

/// Turns a rejection into the matching API error.
pub fn done_or_error(
    outcome: CommandOutcome,
) -> Result<(Option<chat_nats::model::Message>, Option<chat_nats::model::Chat>, bool), ApiError> {
    match outcome {
        CommandOutcome::Done { message, chat, created } => Ok((message.map(|m| *m), chat.map(|c| *c), created)),
        // Slow mode and a mute say when a retry can succeed: the `Retry-After` header.
        CommandOutcome::Rejected(rejection) => Err(ApiError {
            retry_after_s: rejection.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1)),
            ..ApiError::new(rejection.code, rejection.message)
        }),
        CommandOutcome::Reported { .. } => Err(ApiError::internal("the persister answered with a report")),
    }
}
