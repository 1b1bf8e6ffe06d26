//! `msg.send` (the seed's MessageHandler): validate, then publish to
//! `chat.cmd.<chat_id>.msg.send`. The `msg.created` event follows from the persister.

use chat_nats::{
    commands::{Command, MsgSend},
    model::ErrorCode,
};

use super::{check_ids, reply_error, submit::submit};
use crate::{outbox::ConnHandle, session::Session, state::EdgeState};

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
    let mut ids = vec![(send.chat_id.as_str(), "chat_id"), (send.client_msg_id.as_str(), "client_msg_id")];
    if let Some(reply_to) = &send.reply_to {
        ids.push((reply_to, "reply_to"));
    }
    if let Err(reason) = check_ids(&ids) {
        reply_error(conn, reference, ErrorCode::Invalid, &reason, key);
        return "invalid";
    }
    if let Err((code, reason)) = super::check_text(&send.text) {
        reply_error(conn, reference, code, &reason, key);
        return "invalid";
    }
    if let chat_core::rate_limit::Verdict::Limited { retry_after_ms } = edge.message_budget.take(&session.user_id) {
        let frame = crate::protocol::ServerFrame::Error {
            reference,
            code: ErrorCode::RateLimited,
            message: "too many messages; slow down",
            client_msg_id: key,
            retry_after_ms: Some(retry_after_ms),
        };
        conn.offer(crate::outbox::Outbound::Frame(frame.to_text().into()));
        return "rate_limited";
    }
    if !edge.is_member(session, &send.chat_id).await {
        reply_error(conn, reference, ErrorCode::NotFound, "no such chat", key);
        return "rejected";
    }
    let command = Command::MsgSend(MsgSend {
        chat_id: send.chat_id,
        client_msg_id: send.client_msg_id,
        text: send.text,
        reply_to: send.reply_to,
    });
    submit(edge, session, conn, send.reference, command).await
}
