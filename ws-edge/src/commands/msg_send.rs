//! `msg.send` (the seed's MessageHandler): validate, publish to
//! `chat.cmd.<chat_id>.msg.send`, and `ack` once JetStream has stored it. The
//! `msg.created` event follows from the persister.

use bytes::Bytes;
use chat_nats::{
    commands::{Actor, Command, CommandEnvelope},
    limits,
    model::ErrorCode,
    publish::Outgoing,
    subjects,
};

use super::reply_error;
use crate::{
    EdgeState,
    connection::{Outbound, Session},
    hub::ConnHandle,
    protocol::ServerFrame,
};

/// The fields of a send.
pub struct Send {
    /// The client's ref.
    pub reference: Option<String>,
    /// Target chat.
    pub chat_id: String,
    /// Idempotency key.
    pub client_msg_id: String,
    /// Text.
    pub text: String,
    /// Answered message.
    pub reply_to: Option<String>,
}

/// Handles one send.
pub async fn handle(edge: &EdgeState, session: &Session, conn: &ConnHandle, send: Send) -> &'static str {
    let reference = send.reference.as_deref();
    let key = Some(send.client_msg_id.as_str());
    if reference.is_some_and(|r| r.len() > crate::protocol::MAX_REF_LEN) {
        reply_error(conn, None, ErrorCode::Invalid, "ref is longer than 64 characters", key);
        return "invalid";
    }
    if let Err(reason) = limits::check_client_id(&send.client_msg_id, "client_msg_id")
        .and_then(|()| limits::check_client_id(&send.chat_id, "chat_id"))
        .and_then(|()| send.reply_to.as_deref().map_or(Ok(()), |id| limits::check_client_id(id, "reply_to")))
    {
        reply_error(conn, reference, ErrorCode::Invalid, &reason, key);
        return "invalid";
    }
    if let Err(reason) = limits::check_text(&send.text) {
        let code =
            if send.text.chars().count() > limits::MAX_TEXT_CHARS { ErrorCode::TooLarge } else { ErrorCode::Invalid };
        reply_error(conn, reference, code, &reason, key);
        return "invalid";
    }
    if !edge.is_member(session, &send.chat_id).await {
        reply_error(conn, reference, ErrorCode::NotFound, "no such chat", key);
        return "rejected";
    }

    let envelope = CommandEnvelope {
        v: chat_nats::PAYLOAD_VERSION,
        id: chat_core::ids::new_id(),
        actor: Actor { user_id: session.user_id.clone(), roles: session.roles.clone() },
        reference: send.reference.clone(),
        conn_id: Some(session.conn_id.to_string()),
        reply: None,
        issued_at: chrono::Utc::now(),
        command: Command::MsgSend {
            chat_id: send.chat_id,
            client_msg_id: send.client_msg_id.clone(),
            text: send.text,
            reply_to: send.reply_to,
        },
    };
    let Ok(payload) = serde_json::to_vec(&envelope) else {
        reply_error(conn, envelope.reference.as_deref(), ErrorCode::Internal, "cannot encode the command", None);
        return "failed";
    };
    let subject = subjects::command(envelope.chat_id(), envelope.command.name());
    let outgoing = Outgoing::new(subject, envelope.id.clone(), Bytes::from(payload));
    // The publish is written now, in the connection's order; only the ack is awaited
    // in the background so the next command is not held up by this one's round trip.
    match edge.publish_command(outgoing).await {
        Ok(ack) => {
            let conn = conn.clone();
            let client_msg_id = match &envelope.command {
                Command::MsgSend { client_msg_id, .. } => client_msg_id.clone(),
                _ => String::new(),
            };
            tokio::spawn(async move {
                match ack.await {
                    Ok(_) => {
                        let frame = ServerFrame::Ack { reference: envelope.reference.as_deref() };
                        conn.offer(Outbound::Frame(frame.to_text().into()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "command not stored by JetStream");
                        reply_error(
                            &conn,
                            envelope.reference.as_deref(),
                            ErrorCode::Unavailable,
                            "not accepted; retry with the same client_msg_id",
                            Some(&client_msg_id),
                        );
                    }
                }
            });
            "accepted"
        }
        Err(error) => {
            tracing::warn!(%error, "command publish failed");
            reply_error(
                conn,
                envelope.reference.as_deref(),
                ErrorCode::Unavailable,
                "message bus unavailable; retry",
                None,
            );
            "failed"
        }
    }
}
