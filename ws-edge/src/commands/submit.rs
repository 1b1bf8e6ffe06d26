//! Publishing a client command to `CHAT_CMD` and answering `ack` once JetStream stored
//! it. The publish is written in the connection's order; only its ack is awaited in the
//! background, so the next command is not held up by this one's round trip. The
//! command names this connection's outcome subject on this edge as its `reply`, where
//! [`outcomes`](crate::outcomes) hears whether the persister refused it.

use bytes::Bytes;
use chat_nats::{
    commands::{Actor, Command, CommandEnvelope},
    model::ErrorCode,
    publish::Outgoing,
    subjects,
};

use super::reply_error;
use crate::{
    outbox::{ConnHandle, Outbound},
    protocol::ServerFrame,
    session::Session,
    state::EdgeState,
};

/// Publishes `command` for the session's user; returns the metrics outcome.
pub async fn submit(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    reference: Option<String>,
    command: Command,
) -> &'static str {
    let client_msg_id = command.client_msg_id().map(str::to_owned);
    // Every command that reaches here was checked by its handler, so only well-formed
    // ones count; sends were counted by the message budget already.
    if let Err(over) = edge.write_budgets.take(&session.user_id, &session.roles, &command) {
        let frame = ServerFrame::Error {
            reference: reference.as_deref(),
            code: ErrorCode::RateLimited,
            message: over.kind.refusal(),
            client_msg_id: client_msg_id.as_deref(),
            retry_after_ms: Some(over.retry_after_ms),
        };
        conn.offer(Outbound::Frame(frame.to_text().into()));
        return "rate_limited";
    }
    let envelope = CommandEnvelope {
        v: chat_nats::PAYLOAD_VERSION,
        id: chat_core::ids::new_id(),
        actor: Actor { user_id: session.user_id.to_string(), roles: session.roles.clone() },
        reference,
        conn_id: Some(session.conn_id.to_string()),
        reply: Some(subjects::edge_outcome(&edge.edge_id, &session.user_id, &session.conn_id)),
        issued_at: chrono::Utc::now(),
        command,
    };
    let Ok(payload) = serde_json::to_vec(&envelope) else {
        reply_error(conn, envelope.reference.as_deref(), ErrorCode::Internal, "cannot encode the command", None);
        return "failed";
    };
    let subject = subjects::command(envelope.chat_id(), envelope.command.name());
    let traceparent = chat_core::trace::new_traceparent();
    tracing::debug!(
        trace_id = chat_core::trace::trace_id(&traceparent),
        conn_id = %session.conn_id,
        user_id = %session.user_id,
        chat_id = envelope.chat_id(),
        command = envelope.command.name(),
        "command published"
    );
    let outgoing = Outgoing::new(subject, envelope.id.clone(), Bytes::from(payload))
        .with_header(chat_nats::headers::TRACEPARENT, &traceparent);
    match edge.publish_command(outgoing).await {
        Ok(ack) => {
            let conn = conn.clone();
            tokio::spawn(async move {
                match ack.await {
                    Ok(_) => {
                        let frame = ServerFrame::Ack { reference: envelope.reference.as_deref() };
                        conn.offer(Outbound::Frame(frame.to_text().into()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "command not stored by JetStream");
                        let message = "not accepted; retry (sends with the same client_msg_id)";
                        let reference = envelope.reference.as_deref();
                        reply_error(&conn, reference, ErrorCode::Unavailable, message, client_msg_id.as_deref());
                    }
                }
            });
            "accepted"
        }
        Err(error) => {
            tracing::warn!(%error, "command publish failed");
            let reference = envelope.reference.as_deref();
            reply_error(
                conn,
                reference,
                ErrorCode::Unavailable,
                "message bus unavailable; retry",
                client_msg_id.as_deref(),
            );
            "failed"
        }
    }
}
