//! One file per client command (edits, deletes and read marks share one, as do the
//! moderation commands), and the
//! per-connection throttles some of them take from ([`throttles`]).

mod changes;
mod moderation;
mod msg_send;
mod presence_watch;
mod submit;
mod sync;
pub mod throttles;
pub mod typing;

use chat_nats::{
    commands::{ChatModerate, Command, MemberMute, MsgDelete, MsgEdit, MsgReport, Read},
    limits,
    model::ErrorCode,
};

use crate::{
    outbox::{ConnHandle, Outbound},
    protocol::{ClientCommand, ServerFrame},
    session::Session,
    state::EdgeState,
};

/// Runs a command; returns the outcome label for `chat_ws_commands_total`.
pub async fn dispatch(
    edge: &EdgeState,
    session: &Session,
    conn: &ConnHandle,
    throttles: &mut throttles::ConnThrottles,
    command: ClientCommand,
) -> &'static str {
    if command.reference().is_some_and(|r| r.len() > crate::protocol::MAX_REF_LEN) {
        reply_error(conn, None, ErrorCode::Invalid, "ref is longer than 64 characters", None);
        return "invalid";
    }
    match command {
        ClientCommand::Ping { reference } => {
            conn.offer(Outbound::Frame(ServerFrame::Pong { reference: reference.as_deref() }.to_text().into()));
            "accepted"
        }
        ClientCommand::MsgSend { reference, chat_id, client_msg_id, text, reply_to } => {
            let send = msg_send::Send { reference, chat_id, client_msg_id, text, reply_to };
            msg_send::handle(edge, session, conn, send).await
        }
        ClientCommand::MsgEdit { reference, chat_id, message_id, text } => {
            changes::handle(edge, session, conn, reference, Command::MsgEdit(MsgEdit { chat_id, message_id, text }))
                .await
        }
        ClientCommand::MsgDelete { reference, chat_id, message_id } => {
            changes::handle(edge, session, conn, reference, Command::MsgDelete(MsgDelete { chat_id, message_id })).await
        }
        ClientCommand::Read { reference, chat_id, up_to_seq } => {
            changes::handle(edge, session, conn, reference, Command::Read(Read { chat_id, up_to_seq })).await
        }
        ClientCommand::Typing { reference, chat_id, state } => {
            typing::handle(edge, session, conn, &mut throttles.typing, reference, chat_id, state).await
        }
        ClientCommand::Sync { reference, chats } => {
            if !throttles.take_sync(conn, reference.as_deref()) {
                return "rate_limited";
            }
            sync::handle(edge, session, conn, reference, chats).await
        }
        ClientCommand::PresenceWatch { reference, user_ids } => {
            if !throttles.take_watch(conn, reference.as_deref()) {
                return "rate_limited";
            }
            presence_watch::handle(edge, session, conn, reference, user_ids).await
        }
        // The connection loop owns the session's expiry and answers refreshes itself.
        ClientCommand::AuthRefresh { .. } => "invalid",
        ClientCommand::ChatModerate { reference, chat_id, posting, slow_mode_seconds, frozen } => {
            let command = ChatModerate { chat_id, posting, slow_mode_seconds, frozen };
            moderation::handle(edge, session, conn, reference, Command::ChatModerate(command)).await
        }
        ClientCommand::MemberMute { reference, chat_id, user_id, until } => {
            let command = MemberMute { chat_id, user_id, until };
            moderation::handle(edge, session, conn, reference, Command::MemberMute(command)).await
        }
        ClientCommand::MsgReport { reference, chat_id, message_id, reason, note } => {
            let report = Command::MsgReport(MsgReport { chat_id, message_id, reason, note });
            changes::handle(edge, session, conn, reference, report).await
        }
    }
}

/// Queues an `error` frame.
pub fn reply_error(
    conn: &ConnHandle,
    reference: Option<&str>,
    code: ErrorCode,
    message: &str,
    client_msg_id: Option<&str>,
) {
    let frame = ServerFrame::Error { reference, code, message, client_msg_id, retry_after_ms: None };
    conn.offer(Outbound::Frame(frame.to_text().into()));
}

/// Checks ids that will travel in subjects and queries.
fn check_ids(ids: &[(&str, &str)]) -> Result<(), String> {
    for (value, field) in ids {
        limits::check_client_id(value, field)?;
    }
    Ok(())
}

/// Checks message text; over-long text is `too_large`, anything else wrong `invalid`.
fn check_text(text: &str) -> Result<(), (ErrorCode, String)> {
    limits::check_text(text).map_err(|reason| {
        let code = if text.chars().count() > limits::MAX_TEXT_CHARS { ErrorCode::TooLarge } else { ErrorCode::Invalid };
        (code, reason)
    })
}
